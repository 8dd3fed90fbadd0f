"""Bybit's public REST market endpoints that instrument discovery uses, answered by ``serve``. Sans-I/O.

``GET /v5/market/instruments-info`` and ``GET /v5/market/tickers`` on serve's own port, shaped as
Bybit shapes them (protocol notes §11; https://bybit-exchange.github.io/docs/v5/market/instrument,
https://bybit-exchange.github.io/docs/v5/market/tickers): ``{"retCode","retMsg","result":{...},
"retExtInfo":{},"time"}``. Linear and inverse paginate at ``limit`` (1..1000, default 500) with an
opaque, already URL-encoded ``nextPageCursor``; spot answers in one page and rejects ``limit`` and
``cursor``. :func:`answer` maps a path and query to ``(HTTP status, JSON body)``; the I/O layer
only sends it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..core.limits import SERVED_CATEGORIES

__all__ = ["REST_PATHS", "answer", "split_symbol"]

REST_PATHS = ("/v5/market/instruments-info", "/v5/market/tickers")
_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH", "EUR")
_PARAMS_ERROR = 10001  # Bybit's "params error"
#: spec(category, symbol) -> {"tickSize", "qtyStep", "lastPrice"}
Spec = Callable[[str, str], dict[str, str]]


def split_symbol(symbol: str) -> tuple[str, str]:
    """``(baseCoin, quoteCoin)`` of a symbol such as ``BTCUSDT`` (quote ``USDT`` when unknown)."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USDT"


def _reply(result: dict[str, Any] | None, code: int = 0, msg: str = "OK") -> dict[str, Any]:
    return {"retCode": code, "retMsg": msg, "result": result if result is not None else {}, "retExtInfo": {},
            "time": int(time.time() * 1000)}


def _instrument(category: str, symbol: str, spec: dict[str, str]) -> dict[str, Any]:
    base, quote = split_symbol(symbol)
    tick, step = spec["tickSize"], spec["qtyStep"]
    if category == "spot":
        return {"symbol": symbol, "baseCoin": base, "quoteCoin": quote, "innovation": "0", "status": "Trading",
                "marginTrading": "none", "symbolType": "", "stTag": "0",
                "lotSizeFilter": {"basePrecision": step, "quotePrecision": tick, "minOrderQty": step,
                                  "maxOrderQty": "100000", "minOrderAmt": "1", "maxOrderAmt": "2000000"},
                "priceFilter": {"tickSize": tick}}
    contract = "InversePerpetual" if category == "inverse" else "LinearPerpetual"
    settle = base if category == "inverse" else quote
    scale = str(len(tick.split(".")[1]) if "." in tick else 0)
    return {"symbol": symbol, "contractType": contract, "status": "Trading", "baseCoin": base, "quoteCoin": quote,
            "settleCoin": settle, "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "",
            "priceScale": scale,
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": tick, "maxPrice": "1999999.80", "tickSize": tick},
            "lotSizeFilter": {"minOrderQty": step, "maxOrderQty": "1000000", "maxMktOrderQty": "100000",
                              "qtyStep": step, "minNotionalValue": "5", "postOnlyMaxOrderQty": "1000000"},
            "unifiedMarginTrade": True, "fundingInterval": 480, "isPreListing": False, "preListingInfo": None}


def _ticker(category: str, symbol: str, spec: dict[str, str]) -> dict[str, Any]:
    last = spec["lastPrice"]
    # A 24 h volume that differs from symbol to symbol but never from run to run.
    volume = 1_000 + zlib.crc32(f"bybitmon.tickers:{symbol}".encode()) % 9_000_000
    price = float(last)
    if category == "inverse":  # volume in USD contracts, turnover in the base coin
        turnover = f"{volume / price:.8f}" if price > 0 else "0"
    else:
        turnover = f"{volume * price:.4f}"
    item = {"symbol": symbol, "lastPrice": last, "bid1Price": last, "bid1Size": "1", "ask1Price": last,
            "ask1Size": "1", "prevPrice24h": last, "price24hPcnt": "0", "highPrice24h": last, "lowPrice24h": last,
            "turnover24h": turnover, "volume24h": str(volume)}
    if category != "spot":
        item.update({"markPrice": last, "indexPrice": last, "openInterest": "0", "openInterestValue": "0",
                     "fundingRate": "0.0001", "nextFundingTime": "0"})
    return item


def answer(target: str, symbols: Callable[[str], list[str]], spec: Spec,
           categories: tuple[str, ...] = SERVED_CATEGORIES) -> tuple[int, dict[str, Any]]:
    """The reply to ``GET target`` (path and query).

    Args:
        target: e.g. ``/v5/market/instruments-info?category=linear&limit=1000``.
        symbols: ``symbols(category)``: listed symbols, in listing order.
        spec: Numbers of one symbol (see :data:`Spec`).
        categories: Categories served.

    Returns:
        ``(HTTP status, body)``; Bybit answers parameter errors with HTTP 200 and a non-zero
        ``retCode``, and an unknown path with 404.
    """
    parts = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    category = query.get("category", "")
    if parts.path not in REST_PATHS:
        return 404, _reply(None, 404, f"no such endpoint {parts.path}")
    if category not in categories:
        return 200, _reply(None, _PARAMS_ERROR, f"params error: category must be one of {', '.join(categories)}")
    names = sorted(symbols(category))
    if "symbol" in query:
        names = [s for s in names if s == query["symbol"]]
    if parts.path == "/v5/market/tickers":
        return 200, _reply({"category": category, "list": [_ticker(category, s, spec(category, s)) for s in names]})
    if query.get("status", "Trading") != "Trading":
        names = []
    if category == "spot":
        if "limit" in query or "cursor" in query:
            # Spot does not paginate: limit and cursor are invalid there (protocol notes §11).
            return 200, _reply(None, _PARAMS_ERROR, "params error: spot does not support limit or cursor")
        page, cursor = names, ""
    else:
        try:
            limit = int(query.get("limit", "500"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return 200, _reply(None, _PARAMS_ERROR, "params error: limit must be 1..1000")
        start = 0
        if query.get("cursor"):
            # Our cursor, like Bybit's, names the page's first and last symbols, URL-encoded.
            fields = dict(p.partition("=")[::2] for p in unquote(query["cursor"]).split("&"))
            last = fields.get("last", "")
            start = next((i for i, s in enumerate(names) if s > last), len(names))
        page = names[start:start + limit]
        more = start + limit < len(names)
        cursor = f"first%3D{page[0]}%26last%3D{page[-1]}" if page and more else ""
    items = [_instrument(category, s, spec(category, s)) for s in page]
    return 200, _reply({"category": category, "nextPageCursor": cursor, "list": items})
