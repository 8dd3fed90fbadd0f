"""Instrument discovery over Bybit's public REST: every instrument of a category with status
``Trading``, optionally filtered by quote coin and 24 h turnover, and the diff between two lists.

Bybit (protocol notes §11, https://bybit-exchange.github.io/docs/v5/market/instrument):
``GET /v5/market/instruments-info?category=linear&limit=1000`` answers at most ``limit`` items
and a ``nextPageCursor`` to pass back as ``cursor`` ("there are now more than 500 linear
symbols"); **spot does not paginate** (``limit`` and ``cursor`` are invalid there) and answers
every pair in one reply. ``GET /v5/market/tickers?category=...`` without a symbol answers every
symbol of the category in one reply; its ``turnover24h`` is in the quote coin on spot and
linear, in the base coin on inverse.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass
from typing import Iterable

from ..errors import RestError, UsageError, printable
from ..core.limits import SERVED_CATEGORIES
from ..transport.rest import rest_get

__all__ = ["SYMBOL_RE", "Instrument", "discover", "fetch_turnover", "diff_symbols", "PAGE_LIMIT", "MAX_PAGES",
           "MAX_INSTRUMENTS", "LISTING_TIMEOUTS", "INSTRUMENTS_PATH", "TICKERS_PATH"]

log = logging.getLogger("bybitmon.discovery")

#: What a symbol from outside must look like before it is subscribed, shown or written:
#: upper-case letters and digits, dated futures' dashes (``BTC-26DEC25``), at most 30 characters.
SYMBOL_RE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{0,28}[A-Z0-9])?")
_COIN_RE = re.compile(r"[A-Z0-9]{1,20}")
#: Instruments asked for per page on linear/inverse (Bybit's maximum).
PAGE_LIMIT = 1000
#: Bounds against a hostile or broken server: pages followed, instruments kept per category, and
#: the whole listing's time as a multiple of one call's timeout (Bybit lists linear in one page).
MAX_PAGES = 50
MAX_INSTRUMENTS = 10_000
LISTING_TIMEOUTS = 3
INSTRUMENTS_PATH = "/v5/market/instruments-info"
TICKERS_PATH = "/v5/market/tickers"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable instrument as discovered (names checked against :data:`SYMBOL_RE`)."""

    category: str
    symbol: str
    base_coin: str
    quote_coin: str
    turnover_24h: float | None = None   # from the tickers call, when a turnover filter asked for it


def _coin(v: object) -> str:
    return v if type(v) is str and _COIN_RE.fullmatch(v) else ""


def _parse_items(category: str, items: list[dict], out: dict[str, Instrument], bad: list) -> None:
    """Trading instruments of ``items`` into ``out``; ``bad`` = [count, first example] of the
    unusable symbol names (any type, any length: only a clipped repr is kept)."""
    for it in items:
        sym = it.get("symbol")
        if type(sym) is not str or not SYMBOL_RE.fullmatch(sym):
            if not bad:
                bad += [0, printable(repr(sym)[:40], 40)]
            bad[0] += 1
            continue
        if it.get("status") != "Trading":
            continue
        out.setdefault(sym, Instrument(category, sym, _coin(it.get("baseCoin")), _coin(it.get("quoteCoin"))))


async def _instruments(category: str, base_url: str, timeout_s: float) -> list[Instrument]:
    found: dict[str, Instrument] = {}
    bad: list = []
    loop = asyncio.get_running_loop()
    budget = LISTING_TIMEOUTS * timeout_s
    deadline = loop.time() + budget

    def call_timeout() -> float:
        left = deadline - loop.time()
        if left <= 0:
            raise RestError(f"{INSTRUMENTS_PATH}: the {category} listing took over {budget:g} s; giving up")
        return min(timeout_s, left)

    def bounded() -> None:
        if len(found) > MAX_INSTRUMENTS:
            raise RestError(f"{INSTRUMENTS_PATH}: more than {MAX_INSTRUMENTS:,} {category} instruments; "
                            f"refusing to follow them all")

    if category == "spot":
        # Spot rejects limit and cursor: one page holds every pair.
        reply = await rest_get(base_url, INSTRUMENTS_PATH, {"category": "spot"}, timeout_s=timeout_s)
        _check_category(reply.result, category)
        _parse_items(category, reply.items, found, bad)
        bounded()
    else:
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            reply = await rest_get(base_url, INSTRUMENTS_PATH, {"category": category, "limit": str(PAGE_LIMIT)},
                                   cursor=cursor, timeout_s=call_timeout())
            _check_category(reply.result, category)
            if len(reply.items) > PAGE_LIMIT:
                raise RestError(f"{INSTRUMENTS_PATH}: {len(reply.items)} items on one page, over the limit={PAGE_LIMIT} asked for")
            _parse_items(category, reply.items, found, bad)
            bounded()
            cursor = reply.cursor
            if cursor is None or not reply.items:
                break
            if cursor in seen:
                raise RestError(f"{INSTRUMENTS_PATH}: nextPageCursor repeats ({cursor[:40]}); the listing would never end")
            seen.add(cursor)
        else:
            raise RestError(f"{INSTRUMENTS_PATH}: still more pages after {MAX_PAGES}; refusing to follow them all")
    if bad:
        log.warning("%d %s instruments with unusable symbol names skipped (e.g. %s)", bad[0], category, bad[1])
    return sorted(found.values(), key=lambda i: i.symbol)


def _check_category(result: dict, category: str) -> None:
    got = result.get("category")
    if got is not None and got != category:
        raise RestError(f"{INSTRUMENTS_PATH}: asked for {category}, the reply is for {printable(str(got)[:20], 20)!r}")


def _number(v: object) -> float | None:
    if type(v) is not str or len(v) > 40:
        return None
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) and x >= 0 else None


async def fetch_turnover(category: str, base_url: str, *, timeout_s: float = 10.0) -> dict[str, float]:
    """``{symbol: turnover24h}`` of every symbol of ``category`` (one tickers call).

    Units: quote coin on spot and linear, base coin on inverse (Bybit's tickers doc).
    Items with a bad symbol or a non-numeric turnover are left out.
    """
    reply = await rest_get(base_url, TICKERS_PATH, {"category": category}, timeout_s=timeout_s)
    out: dict[str, float] = {}
    for it in reply.items:
        sym = it.get("symbol")
        if type(sym) is not str or not SYMBOL_RE.fullmatch(sym):
            continue
        t = _number(it.get("turnover24h"))
        if t is not None:
            out[sym] = t
    return out


async def discover(category: str, base_url: str, quote: str | None = None, min_turnover: float | None = None,
                   *, timeout_s: float = 10.0) -> list[Instrument]:
    """Every instrument of ``category`` with status ``Trading``, sorted by symbol.

    Args:
        category: ``linear``, ``inverse`` (paginated, ``limit=1000``, cursor followed) or
            ``spot`` (one page, no ``limit``/``cursor``).
        base_url: REST base, e.g. ``https://api.bybit.com`` or ``http://127.0.0.1:8765``.
        quote: Keep only instruments whose ``quoteCoin`` is this (e.g. ``USDT``).
        min_turnover: Keep only instruments whose 24 h turnover (tickers call; quote coin on
            spot/linear, base coin on inverse) is at least this; one without a ticker is dropped.
        timeout_s: Bound of each HTTP call.

    Raises:
        RestError: any call failed or answered something unusable; never a partial list.
        UsageError: a category bybitmon does not follow.
    """
    if category not in SERVED_CATEGORIES:
        raise UsageError(f"bad category {category!r}: one of {', '.join(SERVED_CATEGORIES)}")
    found = await _instruments(category, base_url, timeout_s)
    if quote:
        q = quote.upper()
        found = [i for i in found if i.quote_coin == q]
    if min_turnover is not None:
        turnover = await fetch_turnover(category, base_url, timeout_s=timeout_s)
        found = [Instrument(i.category, i.symbol, i.base_coin, i.quote_coin, turnover[i.symbol])
                 for i in found if turnover.get(i.symbol, -1.0) >= min_turnover]
    return found


def diff_symbols(old: Iterable[str], new: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(listed, delisted)``: symbols in ``new`` but not ``old``, and the reverse, sorted."""
    a, b = set(old), set(new)
    return sorted(b - a), sorted(a - b)
