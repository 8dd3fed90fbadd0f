"""Heat: how unusual a symbol's trading is right now, against its own recent past. Sans-I/O.

Clock: exchange time. Trades are bucketed by their fill time ``T`` (ms) and queries take the
pipeline clock ``now_ms`` explicitly; nothing here reads a clock.

Definition (``k = now_ms // 1000`` is the current second, ``K = k // 10`` the current
10-second block; both windows include the current, partly elapsed, second or block)::

    short window   seconds k-9 .. k                      (10 s)
    long window    10-second blocks K-89 .. K            (15 min)
    span_s         = min(900, 10 * (K - K0 + 1))         K0: block of the first trade fed
    rate_x         = (n_short / 10) / max(n_long / span_s, FLOOR_TPS)
    volume_x       = (v_short / 10) / max(v_long / span_s, FLOOR_TPS * v_short / n_short)
    heat           = sqrt(rate_x * volume_x)             0 when no trade in the short window

``n`` counts trades, ``v`` sums their sizes (base units; contracts on inverse). ``rate_x`` is
"trades per second now, in multiples of this symbol's usual rate"; ``volume_x`` the same for
volume; heat is their geometric mean, so it is high when trading is unusually frequent *and*
heavy. The floors (``FLOOR_TPS`` = 0.1 trades/s: one trade per short window, of the short
window's average size for volume) keep a single trade at a heat of at most 1, however large and
however quiet the symbol was: a spike needs more than one trade. A symbol
followed for less than 15 minutes is compared with the time it has been seen (``span_s``), so
heat starts near 1 rather than at a burst of false alarms. The long window includes the short
one, so a burst raises its own baseline a little (10 s of 900) and heat is at most 90.

Memory is constant per symbol: 10 one-second and 90 ten-second buckets of a count and a volume.
"""

from __future__ import annotations

import math
from typing import Iterable

__all__ = ["FLOOR_TPS", "SHORT_S", "LONG_BLOCKS", "BLOCK_S", "Heat", "HeatParts"]

#: Baseline floor, trades per second: one trade per short window.
FLOOR_TPS = 0.1
#: Short window, seconds (one-second buckets).
SHORT_S = 10
#: Long window in blocks of BLOCK_S seconds: 90 x 10 s = 15 min.
BLOCK_S = 10
LONG_BLOCKS = 90
_LONG_S = BLOCK_S * LONG_BLOCKS


class HeatParts(tuple):
    """``(heat, rate_x, volume_x)`` of one symbol at one time."""

    __slots__ = ()

    def __new__(cls, heat: float, rate_x: float, volume_x: float) -> HeatParts:
        return tuple.__new__(cls, (heat, rate_x, volume_x))

    @property
    def heat(self) -> float:
        return self[0]

    @property
    def rate_x(self) -> float:
        return self[1]

    @property
    def volume_x(self) -> float:
        return self[2]


class Heat:
    """One symbol's trade counts and volumes in ring buckets; :meth:`value` computes heat."""

    __slots__ = ("_n1", "_v1", "_n10", "_v10", "_head_s", "_head_b", "_first_b")

    def __init__(self) -> None:
        self._n1 = [0] * SHORT_S
        self._v1 = [0.0] * SHORT_S
        self._n10 = [0] * LONG_BLOCKS
        self._v10 = [0.0] * LONG_BLOCKS
        self._head_s: int | None = None   # newest second held
        self._head_b: int | None = None   # newest block held
        self._first_b: int | None = None  # block of the first trade fed (K0)

    def add(self, ts_ms: int, size: float) -> None:
        """Count one trade filled at ``ts_ms`` (exchange ms) of ``size``."""
        s = ts_ms // 1000
        b = s // BLOCK_S
        if self._first_b is None or b < self._first_b:
            self._first_b = b
        head_s = self._head_s
        if head_s is None or s > head_s:
            self._advance_seconds(s)
            head_s = s
        if s > head_s - SHORT_S:
            i = s % SHORT_S
            self._n1[i] += 1
            self._v1[i] += size
        head_b = self._head_b
        if head_b is None or b > head_b:
            self._advance_blocks(b)
            head_b = b
        if b > head_b - LONG_BLOCKS:
            j = b % LONG_BLOCKS
            self._n10[j] += 1
            self._v10[j] += size

    def add_many(self, trades: Iterable) -> None:
        """Count trades with ``ts_ms`` and ``size`` attributes (:class:`~bybitmon.core.events.Trade`)."""
        for t in trades:
            self.add(t.ts_ms, t.size)

    def _advance_seconds(self, s: int) -> None:
        head = self._head_s
        if head is not None:
            for x in range(max(head + 1, s - SHORT_S + 1), s + 1):
                self._n1[x % SHORT_S] = 0
                self._v1[x % SHORT_S] = 0.0
        self._head_s = s

    def _advance_blocks(self, b: int) -> None:
        head = self._head_b
        if head is not None:
            for x in range(max(head + 1, b - LONG_BLOCKS + 1), b + 1):
                self._n10[x % LONG_BLOCKS] = 0
                self._v10[x % LONG_BLOCKS] = 0.0
        self._head_b = b

    def parts(self, now_ms: int) -> HeatParts:
        """``(heat, rate_x, volume_x)`` at ``now_ms`` (pipeline clock). A pure read."""
        if self._head_s is None:
            return HeatParts(0.0, 0.0, 0.0)
        k = now_ms // 1000
        K = k // BLOCK_S
        head_s, head_b = self._head_s, self._head_b
        # Buckets held: seconds head_s-9..head_s, blocks head_b-89..head_b; the windows asked
        # for are seconds k-9..k and blocks K-89..K. Their overlap is what counts.
        n_s = 0
        v_s: list[float] = []
        for x in range(max(k, head_s) - SHORT_S + 1, min(k, head_s) + 1):
            n_s += self._n1[x % SHORT_S]
            v_s.append(self._v1[x % SHORT_S])
        if n_s == 0:
            return HeatParts(0.0, 0.0, 0.0)
        n_l = 0
        v_l: list[float] = []
        lo = max(K, head_b) - LONG_BLOCKS + 1  # type: ignore[arg-type]
        for x in range(lo, min(K, head_b) + 1):  # type: ignore[arg-type]
            n_l += self._n10[x % LONG_BLOCKS]
            v_l.append(self._v10[x % LONG_BLOCKS])
        span_s = min(_LONG_S, BLOCK_S * (K - self._first_b + 1))  # type: ignore[operator]
        vol_s = math.fsum(v_s)
        vol_l = math.fsum(v_l)
        if n_l == 0 or span_s <= 0:
            # The short window's trades are always in the long window too, unless the query
            # time is before them (a stale now_ms): no baseline, so no heat.
            return HeatParts(0.0, 0.0, 0.0)
        rate_x = (n_s / SHORT_S) / max(n_l / span_s, FLOOR_TPS)
        floor_v = FLOOR_TPS * (vol_s / n_s)
        base_v = max(vol_l / span_s, floor_v)
        volume_x = (vol_s / SHORT_S) / base_v if base_v > 0 else rate_x
        return HeatParts(math.sqrt(rate_x * volume_x), rate_x, volume_x)

    def value(self, now_ms: int) -> float:
        """Heat at ``now_ms`` (see the module docstring); 0.0 with no trade in the last 10 s."""
        return self.parts(now_ms)[0]
