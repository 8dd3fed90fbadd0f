"""Trade activity per symbol over a sliding window of exchange time. Sans-I/O.

Clock: exchange time. ``now_ms`` is the pipeline clock (the largest frame ``ts`` seen),
passed in by the caller, never the wall clock. A trade counts when ``now - W < T <= now``.

Volumes are summed exactly: each size string is held as an integer number of 1e-12 units,
so adding and removing trades never leaves float residue (an emptied window shows exactly
0 volume) and a sum converts to the correctly rounded float of the exact decimal sum.
"""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Sequence

from ..errors import UsageError
from .events import Trade

__all__ = ["parse_window", "MAX_DURATION_MS", "MAX_TRADES_HELD", "size_units", "UNITS_PER_BASE", "WindowStats", "TradeWindow", "TradeActivity", "SeedTradeGetters"]

UNITS_PER_BASE = 10**12
MAX_TRADES_HELD = 200_000  # trades one window holds (future + in window + retained); see TradeWindow
_POW10 = [10 ** (12 - n) for n in range(13)]
_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$", re.ASCII)
_WINDOW_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, None: 1000}
MAX_DURATION_MS = 366 * 86_400_000  # a year: longer durations are typos (and overflow timers)


def parse_window(text: str | int | float, *, what: str = "window", bare_seconds: bool = True) -> int:
    """The one duration grammar: ``"10s"``, ``"60s"``, ``"5m"``, ``"1h"``, ``"500ms"``, ``"1.5m"``
    -> milliseconds (rounded to whole ms).

    ``NUMBER [ms|s|m|h]`` with a plain decimal NUMBER (no sign, no exponent); a bare number (a
    string without a unit, or an int/float) means seconds, as the seed's ``"60s"`` suggests.

    Args:
        text: the duration.
        what: what it is, for the message (``window``, ``interval``, ``duration``, ...).
        bare_seconds: False to require a unit (the server's fault grammar, where a bare number
            is a probability).

    Raises:
        UsageError: anything else, a bare number when ``bare_seconds`` is False, or a duration
            that is not more than 0 ms or longer than a year (one line, saying what to write).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not bare_seconds:
            raise UsageError(f"bad {what} {text!r}: give a unit, e.g. 10s, 5m or 500ms")
        seconds = float(text)
        if not math.isfinite(seconds):
            raise UsageError(f"bad {what} {text!r}: use a duration such as 10s, 60s, 5m or 500ms")
        ms = round(seconds * 1000)
    else:
        m = _WINDOW_RE.match(text) if isinstance(text, str) else None
        if not m:
            raise UsageError(f"bad {what} {text!r}: use a duration such as 10s, 60s, 5m or 500ms")
        if m.group(2) is None and not bare_seconds:
            raise UsageError(f"bad {what} {text!r}: give a unit, e.g. 10s, 5m or 500ms")
        value = float(m.group(1))
        if not math.isfinite(value):
            raise UsageError(f"bad {what} {text!r}: it is longer than a year")
        ms = round(value * _WINDOW_UNIT_MS[m.group(2)])
    if ms <= 0:
        raise UsageError(f"bad {what} {text!r}: it must be longer than 0")
    if ms > MAX_DURATION_MS:
        raise UsageError(f"bad {what} {text!r}: it is longer than a year")
    return ms


def size_units(size: str) -> int:
    """A decimal size string as an exact integer count of 1e-12 base units.

    Sizes with more than 12 decimals (Bybit sends at most 8) are rounded to 1e-12.
    """
    head, _, frac = size.partition(".")
    if len(frac) <= 12 and (head + frac).isdigit():
        return int(head + frac) * _POW10[len(frac)]
    try:
        return int((Decimal(size) * UNITS_PER_BASE).to_integral_value())
    except InvalidOperation:
        raise ValueError(f"bad size {size!r}") from None


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Trade activity over ``window_ms`` ending at ``now_ms`` (exchange time)."""

    now_ms: int
    window_ms: int
    count: int
    buy_volume: float
    sell_volume: float
    last_price: float | None

    @property
    def window_s(self) -> float:
        return self.window_ms / 1000

    @property
    def tps(self) -> float:
        """Trades per second: count / window_s."""
        return self.count / self.window_s

    @property
    def tpm(self) -> float:
        """Trades per minute: count * 60 / window_s."""
        return self.count * 60 / self.window_s

    @property
    def volume_delta(self) -> float:
        """Taker buy volume minus taker sell volume (base units)."""
        return self.buy_volume - self.sell_volume

    @property
    def buy_sell_ratio(self) -> float | None:
        """buy_volume / sell_volume; None when no sell volume."""
        if self.sell_volume == 0.0:
            return None
        return self.buy_volume / self.sell_volume


# Heap entry: (T ms, signed size units: + taker buy, - taker sell, hash of the trade id). Ties
# on T compare the later fields, which is harmless. The id is held as its hash, not the string: a trade id is a
# 36-character UUID on linear, and with ~6,000 trades per busy symbol in a 60 s window the
# strings were a third of the memory. Two different ids of one symbol sharing a 64-bit hash
# within one window is beyond any practical chance.
_Entry = tuple[int, int, int]


def _at_or_before(heap: list[_Entry], bound: int) -> list[_Entry]:
    """The entries of a min-heap with time <= ``bound``, without changing it: a node above the
    bound has no descendant below it, so only the matching entries (and their children) are read."""
    out: list[_Entry] = []
    if not heap or heap[0][0] > bound:
        return out
    n = len(heap)
    todo = [0]
    while todo:
        i = todo.pop()
        entry = heap[i]
        if entry[0] <= bound:
            out.append(entry)
            child = 2 * i + 1
            if child < n:
                todo.append(child)
                if child + 1 < n:
                    todo.append(child + 1)
    return out


class TradeWindow:
    """One symbol's trades within a window, with running exact sums.

    Three heaps by fill time: ``_future`` (T > now: not yet countable), ``_active`` (in the
    primary window, included in the running sums) and ``_retained`` (older, kept until
    ``retention_ms`` so longer windows can still be asked for). Trade ids of every held trade
    are remembered so a trade seen twice counts once.

    Memory is bounded by the retention and, whatever the rate, by ``max_held`` trades (about
    200 bytes each): at the bound the oldest retained trade is forgotten first (only windows
    longer than the primary one miss it), and when none is retained a new trade is refused.
    Both are counted in ``overflow``, so a window that undercounts says so.
    """

    __slots__ = ("window_ms", "retention_ms", "_future", "_active", "_retained", "_ids",
                 "count", "_buy_units", "_sell_units", "last_price", "now_ms", "max_held", "overflow")

    def __init__(self, window_ms: int = 60_000, retention_ms: int | None = None,
                 max_held: int = MAX_TRADES_HELD) -> None:
        self.window_ms = window_ms
        self.retention_ms = max(retention_ms or window_ms, window_ms)
        self._future: list[_Entry] = []
        self._active: list[_Entry] = []
        self._retained: list[_Entry] = []
        self._ids: set[str] = set()
        self.count = 0
        self._buy_units = 0
        self._sell_units = 0
        self.last_price: float | None = None
        self.now_ms = -(2**62)
        self.max_held = max_held
        self.overflow = 0

    def add(self, trade: Trade, now_ms: int) -> bool:
        """Add one trade; returns False when it is a duplicate (ignored). See :meth:`add_many`."""
        return bool(self.add_many((trade,), now_ms))

    def add_many(self, trades: Sequence[Trade], now_ms: int) -> list[Trade]:
        """Add a frame's trades at ``now_ms``; returns those that were not duplicates.

        A trade is a duplicate when an earlier trade with the same id is still held, i.e. its
        fill time is after ``now - retention``. Older ids are forgotten, which is what keeps
        memory bounded by the window; a re-sent trade carries its original fill time, so it
        falls outside the window just as its first copy did.
        """
        self.advance(now_ms)
        ids = self._ids
        oldest = now_ms - self.retention_ms
        start = now_ms - self.window_ms
        fresh = []
        for trade in trades:
            tid = hash(trade.trade_id)
            if tid in ids:
                continue
            fresh.append(trade)
            self.last_price = trade.price
            t = trade.ts_ms
            if t <= oldest:
                continue  # too old to matter for any window we answer
            if len(ids) >= self.max_held and not self._make_room():
                self.overflow += 1
                continue
            units = size_units(trade.size_str)
            if not trade.is_buy:
                units = -units
            ids.add(tid)
            if t > now_ms:
                heapq.heappush(self._future, (t, units, tid))
            elif t > start:
                heapq.heappush(self._active, (t, units, tid))
                self.count += 1
                if units > 0:
                    self._buy_units += units
                else:
                    self._sell_units -= units
            else:
                heapq.heappush(self._retained, (t, units, tid))
        return fresh

    def _make_room(self) -> bool:
        """Forget the oldest retained trade to stay within ``max_held``; False when none is."""
        if not self._retained:
            return False
        self._ids.discard(heapq.heappop(self._retained)[2])
        self.overflow += 1
        return True

    def advance(self, now_ms: int) -> None:
        """Move the window's end to ``now_ms`` (never backwards)."""
        if now_ms <= self.now_ms:
            return
        self.now_ms = now_ms
        future, active, retained = self._future, self._active, self._retained
        start = now_ms - self.window_ms
        while future and future[0][0] <= now_ms:
            entry = heapq.heappop(future)
            if entry[0] > start:
                heapq.heappush(active, entry)
                self.count += 1
                units = entry[1]
                if units > 0:
                    self._buy_units += units
                else:
                    self._sell_units -= units
            else:
                heapq.heappush(retained, entry)
        while active and active[0][0] <= start:
            entry = heapq.heappop(active)
            self.count -= 1
            units = entry[1]
            if units > 0:
                self._buy_units -= units
            else:
                self._sell_units += units
            heapq.heappush(retained, entry)
        keep_from = now_ms - self.retention_ms
        while retained and retained[0][0] <= keep_from:
            self._ids.discard(heapq.heappop(retained)[2])

    def stats(self, now_ms: int, window_ms: int | None = None) -> WindowStats:
        """Activity over ``window_ms`` (default: the primary window) ending at ``now_ms``.

        A pure read: the window is not moved (:meth:`advance` does that). When it was last
        advanced to ``now_ms`` the primary window's running sums answer at once; otherwise
        the held trades are counted, with the same result.

        Raises:
            UsageError: when ``window_ms`` is longer than the retention.
        """
        now_ms = max(now_ms, self.now_ms)
        if window_ms is None or window_ms == self.window_ms:
            count, buy, sell = self.count, self._buy_units, self._sell_units
            if now_ms != self.now_ms:
                # What advance(now_ms) would move: trades leaving the window (the active heap's
                # entries at or before the new start) and trades entering it (the future heap's
                # entries up to now_ms). Read off the heaps without popping: cost ~ what moves.
                start = now_ms - self.window_ms
                for _, units, _ in _at_or_before(self._active, start):
                    count -= 1
                    if units > 0:
                        buy -= units
                    else:
                        sell += units
                for t, units, _ in _at_or_before(self._future, now_ms):
                    if t > start:
                        count += 1
                        if units > 0:
                            buy += units
                        else:
                            sell -= units
            return WindowStats(now_ms, self.window_ms, count, buy / UNITS_PER_BASE, sell / UNITS_PER_BASE,
                               self.last_price)
        elif window_ms > self.retention_ms:
            raise UsageError(f"window {window_ms} ms is longer than the {self.retention_ms} ms kept")
        start = now_ms - window_ms
        count = buy = sell = 0
        for heap in (self._future, self._active, self._retained):
            for t, units, _ in heap:
                if start < t <= now_ms:
                    count += 1
                    if units > 0:
                        buy += units
                    else:
                        sell -= units
        return WindowStats(now_ms, window_ms, count, buy / UNITS_PER_BASE, sell / UNITS_PER_BASE,
                           self.last_price)

    def __len__(self) -> int:
        return len(self._future) + len(self._active) + len(self._retained)


class SeedTradeGetters:
    """The seed's getters (``get_tpm(symbol, "60s")``, ...) over a ``stats(symbol, window,
    now_ms)`` method, shared by the sans-I/O :class:`TradeActivity` and the async facade.

    ``window`` goes through :func:`parse_window`: ``"60s"``, ``"5m"``, or a bare number of
    seconds (``60`` is a minute); 0, negative or malformed windows raise ``UsageError``."""

    def stats(self, symbol: str, window: str | float | None = None, now_ms: int | None = None) -> WindowStats | None:
        raise NotImplementedError

    def get_tpm(self, symbol: str, window: str | float = "60s", now_ms: int | None = None) -> float:
        """Trades per minute over ``window`` (0.0 for an unknown symbol)."""
        s = self.stats(symbol, window, now_ms)
        return s.tpm if s else 0.0

    def get_tps(self, symbol: str, window: str | float = "60s", now_ms: int | None = None) -> float:
        """Trades per second over ``window`` (0.0 for an unknown symbol)."""
        s = self.stats(symbol, window, now_ms)
        return s.tps if s else 0.0

    def get_vol_delta(self, symbol: str, window: str | float = "60s", now_ms: int | None = None) -> float:
        """Taker buy minus sell volume over ``window``, base units (0.0 for an unknown symbol)."""
        s = self.stats(symbol, window, now_ms)
        return s.volume_delta if s else 0.0

    def get_buy_sell_ratio(self, symbol: str, window: str | float = "60s", now_ms: int | None = None) -> float | None:
        """Buy volume / sell volume over ``window``; None without sell volume."""
        s = self.stats(symbol, window, now_ms)
        return s.buy_sell_ratio if s else None


class TradeActivity(SeedTradeGetters):
    """Trade windows for many symbols, with the seed's getters. Sans-I/O.

    Every getter reads at ``now_ms`` (exchange ms); by default the latest clock fed, never
    the wall clock.
    """

    def __init__(self, window: str | float = "60s", retention: str | float | None = None) -> None:
        self.window_ms = parse_window(window)
        ret = None if retention is None else parse_window(retention, what="retention")
        self.retention_ms = max(ret or self.window_ms, self.window_ms)
        self.windows: dict[str, TradeWindow] = {}
        self.now_ms = 0

    def window(self, symbol: str) -> TradeWindow:
        w = self.windows.get(symbol)
        if w is None:
            w = self.windows[symbol] = TradeWindow(self.window_ms, self.retention_ms)
        return w

    def add(self, symbol: str, trades: tuple[Trade, ...], now_ms: int) -> int:
        """Add a batch; returns how many were new (not duplicates)."""
        if now_ms > self.now_ms:
            self.now_ms = now_ms
        return len(self.window(symbol).add_many(trades, now_ms))

    def stats(self, symbol: str, window: str | float | None = None, now_ms: int | None = None) -> WindowStats | None:
        window_ms = None if window is None else parse_window(window)
        w = self.windows.get(symbol)
        if w is None:
            return None
        return w.stats(self.now_ms if now_ms is None else now_ms, window_ms)
