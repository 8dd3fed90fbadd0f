"""Order book for one (category, symbol), applying Bybit v5 snapshot/delta rules. Sans-I/O.

Rules (https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook):
- a snapshot, or a delta with ``u == 1``, replaces the whole book ("If you receive a new
  snapshot message, you will have to reset your local orderbook");
- a delta level of size "0" deletes the price, any other size overwrites it;
- ``u`` rises by one per message: a delta with ``u <= last`` is stale (dropped), one with
  ``u > last + 1`` means frames were lost (gap): the book is not ready until a new snapshot;
- a crossed book (best bid >= best ask) means lost or misapplied frames: not ready either.

Levels are keyed by ``float(price_string)``: distinct Bybit prices stay distinct and
``"16493.5"``/``"16493.50"`` meet. Keys are never produced by arithmetic.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from . import _fast_path
from .events import BookUpdate, Level

__all__ = ["Applied", "BookCounters", "OrderBook", "DepthStats", "MAX_BOOK_LEVELS"]

_BOUND_EPS = 1e-11
MAX_BOOK_LEVELS = 5000  # levels kept per side; Bybit's deepest topic carries 1000


class Applied(enum.Enum):
    """What :meth:`OrderBook.apply` did with an update."""

    SNAPSHOT = "snapshot"   # book replaced
    DELTA = "delta"         # levels applied
    STALE = "stale"         # u <= last u: dropped
    DROPPED = "dropped"     # delta while not ready (before a snapshot, or after a gap): dropped
    GAP = "gap"             # u jumped: book now not ready
    CROSSED = "crossed"     # applied, but the result is crossed: book now not ready


# Reading a member through the class costs ~80 ns in Python 3.11; the hot paths use these.
_SNAPSHOT, _DELTA, _STALE, _DROPPED, _GAP, _CROSSED = (
    Applied.SNAPSHOT, Applied.DELTA, Applied.STALE, Applied.DROPPED, Applied.GAP, Applied.CROSSED)


@dataclass(slots=True)
class BookCounters:
    stale: int = 0
    gaps: int = 0
    crossed: int = 0
    resets: int = 0
    dropped: int = 0
    trimmed: int = 0    # levels beyond MAX_BOOK_LEVELS removed (farthest from the mid first)


class DepthStats(NamedTuple):
    """Liquidity within ``bps`` of mid: sizes in base units, notionals in quote units (a named
    tuple: built for every snapshot, about 5x cheaper than a frozen dataclass)."""

    bid_depth: float
    ask_depth: float
    bid_notional: float
    ask_notional: float

    @property
    def imbalance(self) -> float | None:
        """(bid_depth - ask_depth) / (bid_depth + ask_depth); None when both are 0."""
        total = self.bid_depth + self.ask_depth
        if total == 0.0:
            return None
        return (self.bid_depth - self.ask_depth) / total


class OrderBook:
    """One symbol's book. ``bids``/``asks`` map price -> size; ``*_px`` are ascending price lists."""

    __slots__ = ("symbol", "bids", "asks", "bid_px", "ask_px", "ready", "has_snapshot",
                 "update_id", "seq", "ts_ms", "cts_ms", "counters", "touched_bid", "touched_ask",
                 "touch_min_bid", "touch_min_ask", "topic_depth")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_px: list[float] = []   # ascending; best bid is the last
        self.ask_px: list[float] = []   # ascending; best ask is the first
        self.ready = False
        self.has_snapshot = False
        self.update_id: int | None = None
        self.seq: int | None = None
        self.ts_ms: int | None = None
        self.cts_ms: int | None = None
        self.counters = BookCounters()
        # Prices that deltas set to a size >= touch_min_* since a reader (the density scan) last
        # cleared them. The scan only needs prices that may qualify, so it raises the minimum
        # to its threshold and the book skips the set for the many small levels.
        self.touched_bid: set[float] = set()
        self.touched_ask: set[float] = set()
        self.touch_min_bid = 0.0
        self.touch_min_ask = 0.0
        # Levels per side the subscribed topic carries (orderbook.50 -> 50), when known: a level
        # pushed beyond them is deleted from the stream although it still rests in the market.
        self.topic_depth: int | None = None

    def apply(self, ev: BookUpdate) -> Applied:
        """Apply one book frame and say what happened (see :class:`Applied`)."""
        return self.apply_fields(ev.is_snapshot, ev.update_id, ev.seq, ev.ts_ms, ev.cts_ms, ev.bids, ev.asks)

    def apply_fields(self, is_snapshot: bool, u: int, seq: int | None, ts_ms: int, cts_ms: int | None,
                     bids: Sequence[Level], asks: Sequence[Level]) -> Applied:
        """:meth:`apply` on the fields of a frame (the Monitor's fast path skips the event)."""
        if is_snapshot or u == 1:
            if self.has_snapshot:
                self.counters.resets += 1
            self.has_snapshot = True
            self.bids = levels = {p: s for p, s in bids if s != 0.0}
            self.bid_px = sorted(levels)
            self.asks = levels = {p: s for p, s in asks if s != 0.0}
            self.ask_px = sorted(levels)
            result = _SNAPSHOT
        elif not self.ready:
            self.counters.dropped += 1
            return _DROPPED
        elif u != self.update_id + 1:  # type: ignore[operator]
            if u <= self.update_id:  # type: ignore[operator]
                self.counters.stale += 1
                return _STALE
            self.counters.gaps += 1
            self.ready = False
            return _GAP
        else:
            if bids:
                _update(self.bids, self.bid_px, bids, self.touched_bid, self.touch_min_bid)
            if asks:
                _update(self.asks, self.ask_px, asks, self.touched_ask, self.touch_min_ask)
            result = _DELTA
        self.update_id = u
        self.seq = seq
        self.ts_ms = ts_ms
        self.cts_ms = cts_ms
        bid_px = self.bid_px
        ask_px = self.ask_px
        if len(bid_px) > MAX_BOOK_LEVELS or len(ask_px) > MAX_BOOK_LEVELS:
            self._trim()
        if bid_px and ask_px and bid_px[-1] >= ask_px[0]:
            self.counters.crossed += 1
            self.ready = False
            return _CROSSED
        self.ready = True
        return result

    def _trim(self) -> None:
        """Keep the MAX_BOOK_LEVELS levels per side nearest the mid: a server cannot grow the
        book without bound by sending ever new prices."""
        extra = len(self.bid_px) - MAX_BOOK_LEVELS
        if extra > 0:
            for p in self.bid_px[:extra]:
                del self.bids[p]
            del self.bid_px[:extra]
            self.counters.trimmed += extra
        extra = len(self.ask_px) - MAX_BOOK_LEVELS
        if extra > 0:
            for p in self.ask_px[-extra:]:
                del self.asks[p]
            del self.ask_px[-extra:]
            self.counters.trimmed += extra

    def invalidate(self) -> None:
        """Mark the book not ready until the next snapshot (e.g. on reconnect)."""
        self.ready = False

    # -- metrics, computed on demand from the levels (so they never drift) --------------

    @property
    def best_bid(self) -> float | None:
        return self.bid_px[-1] if self.bid_px else None

    @property
    def best_ask(self) -> float | None:
        return self.ask_px[0] if self.ask_px else None

    @property
    def mid(self) -> float | None:
        """(best_bid + best_ask) / 2, or None without both sides."""
        if not self.bid_px or not self.ask_px:
            return None
        return (self.bid_px[-1] + self.ask_px[0]) / 2.0

    @property
    def spread_bps(self) -> float | None:
        """(ask - bid) / mid * 1e4."""
        mid = self.mid
        if mid is None:
            return None
        return (self.ask_px[0] - self.bid_px[-1]) / mid * 1e4

    def depth(self, bps: float) -> DepthStats | None:
        """Liquidity within ``bps`` of mid: bids with price >= mid*(1 - bps/1e4), asks with
        price <= mid*(1 + bps/1e4), both bounds inclusive. None without both sides."""
        mid = self.mid
        if mid is None:
            return None
        # The bounds are inclusive in exact decimal arithmetic; float rounding of mid and of
        # the product can put a level that sits exactly on a bound a hair outside it, so the
        # band is widened by a relative 1e-11 (far below any tick: Bybit ticks are >= 1e-8 of price).
        lo = mid * (1.0 - bps / 1e4) * (1.0 - _BOUND_EPS)
        hi = mid * (1.0 + bps / 1e4) * (1.0 + _BOUND_EPS)
        bid_depth, bid_notional = _sums(self.bids, self.bid_px, bisect_left(self.bid_px, lo), len(self.bid_px))
        ask_depth, ask_notional = _sums(self.asks, self.ask_px, 0, bisect_right(self.ask_px, hi))
        return DepthStats(bid_depth, ask_depth, bid_notional, ask_notional)


def _sums(levels: dict[float, float], prices: list[float], start: int, stop: int) -> tuple[float, float]:
    """(sum of sizes, sum of price * size) of the levels at ``prices[start:stop]``, each the
    correctly rounded sum of the exact values (``math.fsum``)."""
    band = prices[start:stop]
    sizes = [levels[p] for p in band]
    return math.fsum(sizes), math.fsum([p * s for p, s in zip(band, sizes)])


def _update(levels: dict[float, float], prices: list[float], changes: Sequence[Level], touched: set[float],
            touch_min: float) -> None:
    for p, s in changes:
        if s == 0.0:
            if p in levels:
                del levels[p]
                del prices[bisect_left(prices, p)]
        else:
            if s >= touch_min:
                touched.add(p)
            if p not in levels:
                insort(prices, p)
            levels[p] = s


# Compiled (see bybitmon/core/__init__.py), these become the _fast paths, which hand anything but
# plain floats to the functions above, their references.
_update = _fast_path(__file__, "update_side", _update)
_sums = _fast_path(__file__, "side_sums", _sums)
