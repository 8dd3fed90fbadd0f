"""The REST side of ``bybitmon serve``: Bybit's public market endpoints used for discovery.

:func:`handle` is a pure function of ``(path, query, market)``: the websockets glue passes it
plain HTTP GETs that arrive on the server's port and writes back what it returns. Shapes follow
Bybit's (protocol notes §11, https://bybit-exchange.github.io/docs/v5/market/instrument and
.../market/tickers): ``{"retCode":0,"retMsg":"OK","result":{"category":...,"list":[...],
"nextPageCursor":...},"retExtInfo":{},"time":...}``, numbers as strings.

- ``/v5/market/instruments-info?category=linear|inverse&limit=N&cursor=C``: pages of ``limit``
  (1..1000, default 500) instruments sorted by symbol, ``nextPageCursor`` already URL-encoded
  as Bybit sends it (``first%3DAAA%26last%3DBBB``) and empty on the last page;
  ``category=spot`` answers every pair in one page and refuses ``limit``/``cursor``.
- ``/v5/market/tickers?category=...``: every listed symbol with ``lastPrice``, ``turnover24h``
  and ``volume24h`` (and the best bid/ask).

:class:`RestMarket` is what is served, with the modes tests script: an error reply
(``error = (retCode, retMsg)`` or ``http_status``), a server that never answers (``hang``),
and instruments listed or delisted while running (:meth:`RestMarket.list_symbol`,
:meth:`RestMarket.delist`).
"""

from __future__ import annotations

import zlib
from decimal import Decimal, InvalidOperation
from typing import Callable, Iterable
from urllib.parse import quote, unquote

import orjson

__all__ = ["RestMarket", "handle", "REST_PREFIX", "QUOTES"]

REST_PREFIX = "/v5/market/"
#: Quote coins recognised at the end of a symbol, longest first (``BTCUSDT`` -> BTC / USDT).
QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH", "EUR")
_JSON = [("Content-Type", "application/json")]
_PLAIN = [("Content-Type", "text/plain; charset=utf-8")]

Reply = tuple[int, list[tuple[str, str]], bytes]


def _split(symbol: str) -> tuple[str, str]:
    for q in QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    return symbol, "USDT"


class RestMarket:
    """The instruments ``serve`` lists, per category, and the scripted modes.

    Args:
        symbols: ``{category: symbols}`` that exist (and stream) on each category.
        clock_ms: The server's clock for the ``time`` field, ms.
        book: ``(category, symbol) -> (bids, asks)`` as ``{price: size}`` strings, best first;
            used for ``lastPrice``, the best bid/ask and ``priceFilter.tickSize`` (None: defaults).

    Attributes:
        hidden: ``{category: symbols}`` that stream but are not listed (yet).
        error: ``(retCode, retMsg)`` answered to every call instead of the data (HTTP 200, as Bybit).
        error_after: with ``error``, answer that many calls normally first (a later page fails).
        http_status: answer every call with this HTTP status and an empty JSON object instead.
        hang: never answer (the glue keeps the request open until the server's own timeout).
        calls: every ``(path, query)`` asked, in order.
    """

    def __init__(self, symbols: dict[str, Iterable[str]], *, clock_ms: Callable[[], int] = lambda: 0,
                 book: Callable[[str, str], tuple[dict[str, str], dict[str, str]]] | None = None) -> None:
        self.symbols: dict[str, list[str]] = {c: list(dict.fromkeys(s)) for c, s in symbols.items()}
        self.hidden: dict[str, set[str]] = {c: set() for c in self.symbols}
        self.clock_ms = clock_ms
        self.book = book
        self.error: tuple[int, str] | None = None
        self.error_after = 0
        self.http_status: int | None = None
        self.hang = False
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._ticks: dict[tuple[str, str], str] = {}

    def listed(self, category: str) -> list[str]:
        """Symbols listed on ``category``, sorted (what instruments-info pages through)."""
        hidden = self.hidden.get(category, set())
        return sorted(s for s in self.symbols.get(category, ()) if s not in hidden)

    def hide(self, category: str, symbol: str) -> None:
        """Stop listing ``symbol`` (it keeps streaming): a delisting, or not listed yet."""
        self.hidden.setdefault(category, set()).add(symbol)

    delist = hide

    def list_symbol(self, category: str, symbol: str) -> None:
        """List ``symbol`` on ``category`` (a new listing while running)."""
        self.hidden.setdefault(category, set()).discard(symbol)
        syms = self.symbols.setdefault(category, [])
        if symbol not in syms:
            syms.append(symbol)

    def _sides(self, category: str, symbol: str) -> tuple[dict[str, str], dict[str, str]]:
        if self.book is None:
            return {}, {}
        try:
            return self.book(category, symbol)
        except (KeyError, ValueError):
            return {}, {}

    def tick_size(self, category: str, symbol: str) -> str:
        """The smallest gap between adjacent levels of the book (the tick), as a string."""
        key = (category, symbol)
        if key not in self._ticks:
            bids, asks = self._sides(category, symbol)
            try:
                px = sorted({Decimal(p) for p in (*bids, *asks)})
            except InvalidOperation:
                px = []
            gaps = [b - a for a, b in zip(px, px[1:]) if b > a]
            if not gaps:
                return "0.01"  # not cached: the book may simply not be there yet
            self._ticks[key] = format(min(gaps).normalize(), "f")
        return self._ticks[key]

    def instrument(self, category: str, symbol: str) -> dict:
        base, quote_coin = _split(symbol)
        tick = self.tick_size(category, symbol)
        item: dict = {"symbol": symbol, "status": "Trading", "baseCoin": base, "quoteCoin": quote_coin}
        if category == "spot":
            item.update({"innovation": "0", "marginTrading": "utaOnly", "symbolType": "",
                         "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                                           "minOrderQty": "0.000048", "maxOrderQty": "71.73956243",
                                           "minOrderAmt": "1", "maxOrderAmt": "2000000"},
                         "priceFilter": {"tickSize": tick}})
        else:
            inverse = category == "inverse"
            item.update({"contractType": "InversePerpetual" if inverse else "LinearPerpetual",
                         "settleCoin": base if inverse else quote_coin, "launchTime": "1585526400000",
                         "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": str(_decimals(tick)),
                         "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                         "priceFilter": {"minPrice": tick, "maxPrice": "1999999.80", "tickSize": tick},
                         "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                                           "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000",
                                           "minNotionalValue": "5"},
                         "unifiedMarginTrade": True, "fundingInterval": 480, "copyTrading": "both",
                         "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False,
                         "preListingInfo": None})
        return item

    def ticker(self, category: str, symbol: str) -> dict:
        bids, asks = self._sides(category, symbol)
        bid = next(iter(bids.items()), ("0", "0"))
        ask = next(iter(asks.items()), ("0", "0"))
        last = bid[0] if bids else ask[0]
        # Deterministic 24 h figures per symbol: turnover from 10^5 to 10^9, so filters can be tested.
        h = zlib.crc32(f"{category}:{symbol}".encode())
        turnover = 10 ** (5 + 4 * (h % 10_000) / 10_000)
        try:
            volume = turnover / float(last) if float(last) > 0 else 0.0
        except ValueError:
            volume = 0.0
        return {"symbol": symbol, "lastPrice": last, "bid1Price": bid[0], "bid1Size": bid[1],
                "ask1Price": ask[0], "ask1Size": ask[1], "prevPrice24h": last, "price24hPcnt": "0",
                "highPrice24h": last, "lowPrice24h": last, "turnover24h": f"{turnover:.4f}",
                "volume24h": f"{volume:.4f}"}


def _decimals(tick: str) -> int:
    return len(tick.split(".", 1)[1]) if "." in tick else 0


def _ok(market: RestMarket, result: dict) -> Reply:
    body = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": market.clock_ms()}
    return 200, list(_JSON), orjson.dumps(body)


def _err(market: RestMarket, code: int, msg: str) -> Reply:
    body = {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": market.clock_ms()}
    return 200, list(_JSON), orjson.dumps(body)


def _instruments(market: RestMarket, query: dict[str, str]) -> Reply:
    category = query.get("category", "")
    if category not in market.symbols:
        return _err(market, 10001, "params error: Category is invalid")
    listed = market.listed(category)
    if category == "spot":
        if "limit" in query or "cursor" in query:
            return _err(market, 10001, "params error: limit and cursor are not supported for spot")
        items = [market.instrument(category, s) for s in listed]
        return _ok(market, {"category": category, "list": items, "nextPageCursor": ""})
    try:
        limit = int(query.get("limit", "500"))
    except ValueError:
        return _err(market, 10001, "params error: limit is invalid")
    if not 1 <= limit <= 1000:
        return _err(market, 10001, "params error: limit must be 1..1000")
    start = 0
    if "cursor" in query:
        # The glue hands over the decoded query: "first=AAA&last=BBB".
        parts = dict(p.split("=", 1) for p in query["cursor"].split("&") if "=" in p)
        last = parts.get("last")
        if not last:
            return _err(market, 10001, "params error: cursor is invalid")
        start = next((i for i, s in enumerate(listed) if s > last), len(listed))
    page = listed[start:start + limit]
    more = start + limit < len(listed)
    cursor = quote(f"first={page[0]}&last={page[-1]}", safe="") if more and page else ""
    items = [market.instrument(category, s) for s in page]
    return _ok(market, {"category": category, "list": items, "nextPageCursor": cursor})


def _tickers(market: RestMarket, query: dict[str, str]) -> Reply:
    category = query.get("category", "")
    if category not in market.symbols:
        return _err(market, 10001, "params error: Category is invalid")
    wanted = query.get("symbol")
    syms = [s for s in market.listed(category) if wanted is None or s == wanted]
    return _ok(market, {"category": category, "list": [market.ticker(category, s) for s in syms]})


def handle(path: str, query: dict[str, str], market: RestMarket) -> Reply | None:
    """Answer one REST GET: ``(HTTP status, headers, body)``, or None to never answer.

    Args:
        path: Request path without the query string, e.g. ``/v5/market/tickers``.
        query: Decoded query parameters (the last value of a repeated one).
        market: What is listed, and the scripted mode.
    """
    market.calls.append((path, dict(query)))
    if market.hang:
        return None
    if market.http_status is not None:
        return market.http_status, list(_JSON), b"{}"
    if market.error is not None and len(market.calls) > market.error_after:
        return _err(market, *market.error)
    if path == "/v5/market/instruments-info":
        return _instruments(market, query)
    if path == "/v5/market/tickers":
        return _tickers(market, query)
    return 404, list(_PLAIN), f"no such endpoint {unquote(path)[:80]}\n".encode()
