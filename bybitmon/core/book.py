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
from typing import Any, NamedTuple, Sequence

from . import _fast_path
from .events import BookUpdate, Level

__all__ = ["Applied", "BookCounters", "BookSide", "OrderBook", "DepthStats", "MAX_BOOK_LEVELS"]

_BOUND_EPS = 1e-11
_INF = float("inf")
_BULK_CHANGES = 256  # a delta with more changes is applied in one go (see BookSide.update)
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


class BookSide:
    """One side of a book: price -> size, with its prices in ascending order, and which of its
    levels a delta set to a size >= ``touch_min`` since a reader last took them (the density
    scan, which raises ``touch_min`` to its threshold so that the many small levels are not
    noted). Sizes are never 0: a change to size 0 deletes the level.

    This is the reference; the compiled core uses ``_fast.Side``, the same methods on C
    arrays. Readers outside the core use :attr:`OrderBook.bids` and friends."""

    __slots__ = ("levels", "prices", "touched", "touch_min")

    def __init__(self) -> None:
        self.levels: dict[float, float] = {}
        self.prices: list[float] = []      # ascending
        self.touched: set[float] = set()   # prices of levels noted since the last take()
        self.touch_min = 0.0

    def __len__(self) -> int:
        return len(self.prices)

    def load(self, pairs: Sequence[Level]) -> None:
        """Replace every level by ``pairs`` (a snapshot; size-0 pairs are skipped, a repeated
        price takes its last non-zero size); nothing is noted."""
        self.levels = levels = {p: s for p, s in pairs if s != 0.0}
        self.prices = sorted(levels)
        self.touched = set()

    def update(self, changes: Sequence[Level]) -> None:
        """Apply a delta's ``(price, size)`` changes in order: size 0 deletes the level, any other
        size sets it (and notes it when >= ``touch_min``)."""
        levels = self.levels
        prices = self.prices
        touched = self.touched
        touch_min = self.touch_min
        if len(changes) > _BULK_CHANGES:
            # A frame of many changes (a hostile one can carry a million): the prices are
            # sorted once, not inserted one by one (each a move of the list).
            for p, s in changes:
                if s == 0.0:
                    if levels.pop(p, None) is not None:
                        touched.discard(p)
                else:
                    if s >= touch_min:
                        touched.add(p)
                    levels[p] = s
            self.prices = sorted(levels)
            return
        for p, s in changes:
            if s == 0.0:
                if p in levels:
                    del levels[p]
                    del prices[bisect_left(prices, p)]
                    touched.discard(p)
            else:
                if s >= touch_min:
                    touched.add(p)
                if p not in levels:
                    insort(prices, p)
                levels[p] = s

    def trim(self, keep: int, low: bool) -> int:
        """Delete the levels beyond the ``keep`` highest (``low``: the lowest go) or lowest
        prices; how many went."""
        extra = len(self.prices) - max(keep, 0)
        if extra <= 0:
            return 0
        gone = self.prices[:extra] if low else self.prices[-extra:]
        for p in gone:
            del self.levels[p]
            self.touched.discard(p)
        if low:
            del self.prices[:extra]
        else:
            del self.prices[-extra:]
        return extra

    def lowest(self) -> float | None:
        return self.prices[0] if self.prices else None

    def highest(self) -> float | None:
        return self.prices[-1] if self.prices else None

    def reaches(self, other: BookSide) -> bool:
        """Whether this side's highest price is at or above ``other``'s lowest (bids reaching
        asks: a crossed book); False when either is empty."""
        return bool(self.prices) and bool(other.prices) and self.prices[-1] >= other.prices[0]

    def size_at(self, price: float) -> float:
        """The size at ``price``, 0.0 without a level there."""
        return self.levels.get(price, 0.0)

    def sums(self, lo: float, hi: float) -> tuple[float, float]:
        """(sum of sizes, sum of price * size) of the levels with ``lo <= price <= hi``, each the
        correctly rounded sum of the exact values (``math.fsum``), summed in price order."""
        prices = self.prices
        band = prices[bisect_left(prices, lo):bisect_right(prices, hi)]
        levels = self.levels
        sizes = [levels[p] for p in band]
        return math.fsum(sizes), math.fsum([p * s for p, s in zip(band, sizes)])

    def median(self) -> float:
        """The median of the level sizes (the mean of the middle two for an even count); 0.0
        for an empty side."""
        sizes = sorted(self.levels.values())
        n = len(sizes)
        if not n:
            return 0.0
        return sizes[n // 2] if n & 1 else (sizes[n // 2 - 1] + sizes[n // 2]) / 2.0

    def take(self, threshold: float, every: bool) -> list[Level]:
        """The ``(price, size)`` levels with size >= ``threshold``, ascending by price: of every
        level when ``every``, else of those noted since the last take. Forgets what was noted
        and notes from now on sizes >= ``threshold``."""
        levels = self.levels
        if every:
            out = [(p, levels[p]) for p in self.prices if levels[p] >= threshold]
        else:
            out = [(p, levels[p]) for p in sorted(self.touched) if levels[p] >= threshold]
        self.touched.clear()
        self.touch_min = threshold
        return out

    def noted(self) -> bool:
        """Whether a level was noted since the last take."""
        return bool(self.touched)

    def changes_at(self, changes: Sequence[Level], prices: dict[float, Any]) -> list[Level]:
        """The ``(price, size)`` changes of a frame's side (``changes``, as applied to this
        side) at a price in ``prices``, in order: the few levels the densities follow, among
        those a delta changed (usually none)."""
        return [(p, s) for p, s in changes if p in prices]

    def items(self) -> list[Level]:
        """Every ``(price, size)``, ascending by price."""
        levels = self.levels
        return [(p, levels[p]) for p in self.prices]


_new_side = _fast_path(__file__, "Side", BookSide)


class OrderBook:
    """One symbol's book: two :class:`BookSide`. ``bids``/``asks`` read them as price -> size
    dicts, ``bid_px``/``ask_px`` as ascending price lists: copies, made at each read (readers
    outside the core: the ladder, ``serve``, tests), since only frames change a book."""

    __slots__ = ("symbol", "bid", "ask", "ready", "has_snapshot", "update_id", "seq", "ts_ms", "cts_ms",
                 "counters", "topic_depth")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bid = _new_side()
        self.ask = _new_side()
        self.ready = False
        self.has_snapshot = False
        self.update_id: int | None = None
        self.seq: int | None = None
        self.ts_ms: int | None = None
        self.cts_ms: int | None = None
        self.counters = BookCounters()
        # Levels per side the subscribed topic carries (orderbook.50 -> 50), when known: a level
        # pushed beyond them is deleted from the stream although it still rests in the market.
        self.topic_depth: int | None = None

    @property
    def bids(self) -> dict[float, float]:
        return dict(self.bid.items())

    @property
    def asks(self) -> dict[float, float]:
        return dict(self.ask.items())

    @property
    def bid_px(self) -> list[float]:
        return [p for p, _ in self.bid.items()]

    @property
    def ask_px(self) -> list[float]:
        return [p for p, _ in self.ask.items()]

    def apply(self, ev: BookUpdate) -> Applied:
        """Apply one book frame and say what happened (see :class:`Applied`)."""
        return self.apply_fields(ev.is_snapshot, ev.update_id, ev.seq, ev.ts_ms, ev.cts_ms, ev.bids, ev.asks)

    def apply_fields(self, is_snapshot: bool, u: int, seq: int | None, ts_ms: int, cts_ms: int | None,
                     bids: Sequence[Level], asks: Sequence[Level]) -> Applied:
        """:meth:`apply` on the fields of a frame (the Monitor's fast path skips the event)."""
        bid = self.bid
        ask = self.ask
        if is_snapshot or u == 1:
            if self.has_snapshot:
                self.counters.resets += 1
            self.has_snapshot = True
            bid.load(bids)
            ask.load(asks)
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
                bid.update(bids)
            if asks:
                ask.update(asks)
            result = _DELTA
        self.update_id = u
        self.seq = seq
        self.ts_ms = ts_ms
        self.cts_ms = cts_ms
        if len(bid) > MAX_BOOK_LEVELS or len(ask) > MAX_BOOK_LEVELS:
            # A server cannot grow the book without bound by sending ever new prices: the
            # MAX_BOOK_LEVELS levels per side nearest the mid are kept.
            self.counters.trimmed += bid.trim(MAX_BOOK_LEVELS, True) + ask.trim(MAX_BOOK_LEVELS, False)
        if bid.reaches(ask):
            self.counters.crossed += 1
            self.ready = False
            return _CROSSED
        self.ready = True
        return result

    def invalidate(self) -> None:
        """Mark the book not ready until the next snapshot (e.g. on reconnect)."""
        self.ready = False

    # -- metrics, computed on demand from the levels (so they never drift) --------------

    @property
    def best_bid(self) -> float | None:
        return self.bid.highest()

    @property
    def best_ask(self) -> float | None:
        return self.ask.lowest()

    @property
    def mid(self) -> float | None:
        """(best_bid + best_ask) / 2, or None without both sides."""
        bid = self.bid.highest()
        ask = self.ask.lowest()
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2.0

    @property
    def spread_bps(self) -> float | None:
        """(ask - bid) / mid * 1e4."""
        mid = self.mid
        if mid is None:
            return None
        return (self.ask.lowest() - self.bid.highest()) / mid * 1e4  # type: ignore[operator]

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
        bid_depth, bid_notional = self.bid.sums(lo, _INF)
        ask_depth, ask_notional = self.ask.sums(0.0, hi)
        return DepthStats(bid_depth, ask_depth, bid_notional, ask_notional)
