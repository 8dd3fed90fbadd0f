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
from bisect import insort
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Sequence

from ..errors import UsageError
from .events import Trade

__all__ = ["parse_window", "MAX_DURATION_MS", "MAX_TRADES_HELD", "Heat", "HeatMeter", "HEAT_SHORT_S", "HEAT_LONG_S", "HEAT_TPS_FLOOR", "size_units", "UNITS_PER_BASE", "WindowStats", "TradeWindow", "TradeActivity", "SeedTradeGetters"]

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


# size string -> units for the strings seen lately: a trade's size is converted for the window
# and again for the heat meter, and a market repeats its sizes ("0.001", "0.010", ...). Bounded:
# cleared when full (a size string is at most protocol._MAX_NUM_CHARS long).
_UNITS_SEEN: dict[str, int] = {}
_UNITS_SEEN_MAX = 4096


def size_units(size: str) -> int:
    """A decimal size string as an exact integer count of 1e-12 base units.

    Sizes with more than 12 decimals (Bybit sends at most 8) are rounded to 1e-12.
    """
    seen = _UNITS_SEEN
    units = seen.get(size)
    if units is not None:
        return units
    head, _, frac = size.partition(".")
    if len(frac) <= 12 and (head + frac).isdigit():
        units = int(head + frac) * _POW10[len(frac)]
    else:
        try:
            units = int((Decimal(size) * UNITS_PER_BASE).to_integral_value())
        except InvalidOperation:
            raise ValueError(f"bad size {size!r}") from None
    if len(seen) >= _UNITS_SEEN_MAX:
        seen.clear()
    seen[size] = units
    return units


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
_FEW_LATE = 32  # late trades of one frame put in place one by one; more are sorted in at once


def _insert_in_order(entries: list[_Entry | None], head: int, entry: _Entry) -> None:
    """Put ``entry`` into ``entries[head:]``, kept in order: at the end (a trade in order)
    without a search."""
    if len(entries) == head or entry >= entries[-1]:  # type: ignore[operator]
        entries.append(entry)
    else:
        insort(entries, entry, lo=head)


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

    Three collections by fill time: ``_future`` (a heap; T > now: not yet countable),
    ``_active`` (in the primary window, included in the running sums: a list in order from
    index ``_active_head``, appended to as trades arrive in order, which they nearly always do,
    and read off its front as they leave; the slots before the head are None until the front is
    cut off, so that a leaving trade's entry is freed at once) and ``_retained`` (a heap; older, kept until
    ``retention_ms`` so longer windows can still be asked for). Trade ids of every held trade
    are remembered so a trade seen twice counts once.

    Memory is bounded by the retention and, whatever the rate, by ``max_held`` trades (about
    200 bytes each): at the bound the oldest retained trade is forgotten first (only windows
    longer than the primary one miss it), and when none is retained a new trade is refused.
    Both are counted in ``overflow``, so a window that undercounts says so.
    """

    __slots__ = ("window_ms", "retention_ms", "_future", "_active", "_active_head", "_retained", "_ids",
                 "count", "_buy_units", "_sell_units", "last_price", "now_ms", "max_held", "overflow")

    def __init__(self, window_ms: int = 60_000, retention_ms: int | None = None,
                 max_held: int = MAX_TRADES_HELD) -> None:
        self.window_ms = window_ms
        self.retention_ms = max(retention_ms or window_ms, window_ms)
        self._future: list[_Entry] = []
        self._active: list[_Entry | None] = []
        self._active_head = 0
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
        active = self._active
        late = None  # in-window trades that go before the last held one
        fresh = []
        for trade in trades:
            # Compiled, hash() is a C integer, and each use would make an int object of it (one
            # for the id set, one for the entry: +0.3 MB per busy symbol, BENCHMARKS, Memory);
            # activity.pxd types tid as an object, so both hold the one made here.
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
                entry = (t, units, tid)
                if len(active) == self._active_head or entry >= active[-1]:
                    active.append(entry)
                elif late is None:
                    late = [entry]
                else:
                    late.append(entry)
                self.count += 1
                if units > 0:
                    self._buy_units += units
                else:
                    self._sell_units -= units
            else:
                heapq.heappush(self._retained, (t, units, tid))
        if late is not None:
            if len(late) <= _FEW_LATE:
                for entry in late:  # each before the last held entry, which only grows
                    insort(active, entry, lo=self._active_head)
            else:
                # Many trades out of order (a hostile frame can carry 200,000 newest first):
                # one sort of the window, not a move of it per trade.
                head = self._active_head
                tail = active[head:]
                tail.extend(late)
                tail.sort()
                del active[head:]
                active.extend(tail)
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
        ids = self._ids
        start = now_ms - self.window_ms
        # A trade leaving the window that is already past the retention is forgotten at once
        # rather than pushed to _retained and popped again below (the same end state; with
        # the default retention, the window's, that is every trade).
        keep_from = now_ms - self.retention_ms
        while future and future[0][0] <= now_ms:
            entry = heapq.heappop(future)
            if entry[0] > start:
                _insert_in_order(active, self._active_head, entry)
                self.count += 1
                units = entry[1]
                if units > 0:
                    self._buy_units += units
                else:
                    self._sell_units -= units
            elif entry[0] > keep_from:
                heapq.heappush(retained, entry)
            else:
                ids.discard(entry[2])
        head = self._active_head
        n = len(active)
        while head < n and active[head][0] <= start:  # type: ignore[index]
            entry = active[head]
            active[head] = None
            head += 1
            self.count -= 1
            units = entry[1]
            if units > 0:
                self._buy_units -= units
            else:
                self._sell_units += units
            if entry[0] > keep_from:
                heapq.heappush(retained, entry)
            else:
                ids.discard(entry[2])
        if head >= 64 and head * 2 >= n:
            del active[:head]  # the front's empty slots, once they are half the list
            head = 0
        self._active_head = head
        while retained and retained[0][0] <= keep_from:
            ids.discard(heapq.heappop(retained)[2])

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
                # What advance(now_ms) would move: trades leaving the window (the front of the
                # active list, at or before the new start) and trades entering it (the future
                # heap's entries up to now_ms). Read without moving anything: cost ~ what moves.
                start = now_ms - self.window_ms
                active = self._active
                for i in range(self._active_head, len(active)):
                    entry = active[i]
                    if entry[0] > start:  # type: ignore[index]
                        break
                    units = entry[1]  # type: ignore[index]
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
        for held in (self._future, self._active[self._active_head:], self._retained):
            for t, units, _ in held:  # type: ignore[misc]
                if start < t <= now_ms:
                    count += 1
                    if units > 0:
                        buy += units
                    else:
                        sell -= units
        return WindowStats(now_ms, window_ms, count, buy / UNITS_PER_BASE, sell / UNITS_PER_BASE,
                           self.last_price)

    def __len__(self) -> int:
        return len(self._future) + len(self._active) - self._active_head + len(self._retained)


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


HEAT_SHORT_S = 10        # the "now" of heat: the last 10 whole seconds
HEAT_LONG_S = 900        # the symbol's own baseline: the last 15 minutes
HEAT_TPS_FLOOR = 0.1     # trades/s: a baseline below this counts as this (one trade is no spike)
_HEAT_PENDING_MAX = 1024  # future seconds held until the clock reaches them


@dataclass(frozen=True, slots=True)
class Heat:
    """How unusual a symbol's activity is right now, against its own recent past.

    By whole seconds of fill time ``T``: the short window is the last ``short_s`` seconds up to
    and including the clock's second, the long one the last ``long_s``. Rates divide by the
    window's length, shortened to the seconds since the symbol's first trade frame (so a symbol
    just subscribed is not a spike).

    - ``heat = tps_short / max(tps_long, HEAT_TPS_FLOOR)``;
    - ``heat_volume = vol_short / max(vol_long, HEAT_TPS_FLOOR * mean trade size)``, volumes
      per second (base units, both sides), the mean size over the long window.
    """

    heat: float
    heat_volume: float
    tps_short: float
    tps_long: float


class HeatMeter:
    """Per-second trade counts and exact volumes of one symbol over the last ``long_s`` seconds.

    A ring of ``long_s`` one-second buckets with running totals: adding a trade and reading
    cost O(1) plus the seconds the clock moved. Memory: ``long_s`` buckets and at most
    ``_HEAT_PENDING_MAX`` future seconds (trades further ahead are counted in ``overflow``).
    """

    __slots__ = ("short_s", "long_s", "_count", "_units", "_second", "_pending", "cur", "start",
                 "long_count", "long_units", "overflow")

    def __init__(self, short_s: int = HEAT_SHORT_S, long_s: int = HEAT_LONG_S) -> None:
        self.short_s = short_s
        self.long_s = long_s
        self._count = [0] * long_s
        self._units = [0] * long_s
        self._second = [-(2**62)] * long_s     # which second each slot holds
        self._pending: dict[int, list[int]] = {}  # second -> [count, units], seconds > cur
        self.cur: int | None = None             # the clock's second
        self.start: int | None = None           # the second of the first trade frame
        self.long_count = 0
        self.long_units = 0
        self.overflow = 0

    def add(self, trades: Sequence[Trade], now_ms: int) -> None:
        """Count ``trades`` (not duplicates) at the clock ``now_ms``."""
        self.advance(now_ms)
        cur = self.cur
        if self.start is None:
            self.start = cur
        long_s = self.long_s
        oldest = cur - long_s  # type: ignore[operator]
        second, count, held = self._second, self._count, self._units
        for t in trades:
            s = t.ts_ms // 1000
            if s <= oldest:
                continue
            units = size_units(t.size_str)
            if s > cur:  # type: ignore[operator]
                slot = self._pending.get(s)
                if slot is None:
                    if len(self._pending) >= _HEAT_PENDING_MAX:
                        self.overflow += 1
                        continue
                    slot = self._pending[s] = [0, 0]
                slot[0] += 1
                slot[1] += units
                continue
            i = s % long_s
            count[i] += 1
            held[i] += units
            second[i] = s
            self.long_count += 1
            self.long_units += units

    def advance(self, now_ms: int) -> None:
        """Move to the clock's second: seconds that left the long window are dropped, held
        future seconds that arrived are counted."""
        c = now_ms // 1000
        cur = self.cur
        if cur is not None and c <= cur:
            return
        self.cur = c
        if cur is not None:
            if c - cur >= self.long_s:  # everything held has left the window
                self._count = [0] * self.long_s
                self._units = [0] * self.long_s
                self._second = [-(2**62)] * self.long_s
                self.long_count = self.long_units = 0
            else:
                for s in range(cur - self.long_s + 1, c - self.long_s + 1):
                    i = s % self.long_s
                    if self._second[i] == s:
                        self.long_count -= self._count[i]
                        self.long_units -= self._units[i]
                        self._count[i] = self._units[i] = 0
                        self._second[i] = -(2**62)
        if self._pending:
            for s in [s for s in self._pending if s <= c]:
                n, units = self._pending.pop(s)
                if s > c - self.long_s:
                    i = s % self.long_s
                    if self._second[i] != s:
                        self._count[i] = self._units[i] = 0
                        self._second[i] = s
                    self._count[i] += n
                    self._units[i] += units
                    self.long_count += n
                    self.long_units += units

    def _totals(self, first: int, last: int) -> tuple[int, int]:
        """(count, units) over the seconds first..last as of the clock's second ``last``, read
        without moving anything (held future seconds that are due included)."""
        n = units = 0
        long_s = self.long_s
        second, count, held = self._second, self._count, self._units
        pending = self._pending
        for s in range(max(first, last - long_s + 1), last + 1):
            i = s % long_s
            if second[i] == s:
                n += count[i]
                units += held[i]
            if pending:
                p = pending.get(s)
                if p is not None:
                    n += p[0]
                    units += p[1]
        return n, units

    def _long_totals(self, c: int) -> tuple[int, int]:
        """(count, units) of the long window at the clock's second ``c`` >= ``cur``, read
        without moving anything: the running totals less the seconds that left, plus the held
        future seconds that are due. Costs the seconds the clock moved since :meth:`advance`."""
        cur = self.cur
        if c == cur:
            return self.long_count, self.long_units
        if c - cur >= self.long_s:  # type: ignore[operator]
            n = units = 0
        else:
            n, units = self.long_count, self.long_units
            for s in range(cur - self.long_s + 1, c - self.long_s + 1):  # type: ignore[operator]
                i = s % self.long_s
                if self._second[i] == s:
                    n -= self._count[i]
                    units -= self._units[i]
        for s, (pn, pu) in self._pending.items():
            if c - self.long_s < s <= c:
                n += pn
                units += pu
        return n, units

    def read(self, now_ms: int) -> Heat | None:
        """Heat at the clock ``now_ms`` (a pure read); None before the first trade frame."""
        values = self.values(now_ms)
        return None if values is None else Heat(*values)

    def values(self, now_ms: int) -> tuple[float, float, float, float] | None:
        """:meth:`read`'s fields in :class:`Heat`'s order, without the object (what a snapshot
        line takes two of, every interval)."""
        if self.start is None:
            return None
        c = max(now_ms // 1000, self.cur)  # type: ignore[type-var]
        span = min(self.long_s, c - self.start + 1)
        short_span = min(self.short_s, span)
        long_n, long_u = self._long_totals(c)
        short_n, short_u = self._totals(c - self.short_s + 1, c)
        tps_short = short_n / short_span
        tps_long = long_n / span
        heat = tps_short / max(tps_long, HEAT_TPS_FLOOR)
        vol_short = short_u / short_span
        vol_long = long_u / span
        mean = long_u / long_n if long_n else (short_u / short_n if short_n else 0)
        floor = HEAT_TPS_FLOOR * mean
        heat_volume = vol_short / max(vol_long, floor) if vol_short else 0.0
        return heat, heat_volume, tps_short, tps_long
