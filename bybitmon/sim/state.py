"""The simulated market's mutable state: one book side, one symbol, one planted order. Sans-I/O.

Prices are ints in ticks and sizes ints in lots; strings are made only on output
(:meth:`SymbolState.price`, :meth:`SymbolState.size`). :class:`~bybitmon.sim.market.MarketSimulator`
drives these; nothing here draws randomness except through the symbol's own ``rng``.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, insort
from statistics import NormalDist

__all__ = ["QUANTILES", "RESTING", "ATTACK", "CONSUMED", "Plant", "Side", "SymbolState", "fmt_number"]

# symbol -> (base price, price decimals, tick in units of 10**-decimals, size decimals).
_LINEAR_SPECS: dict[str, tuple[float, int, int, int]] = {
    "BTCUSDT": (65000.0, 2, 10, 3),
    "ETHUSDT": (3500.0, 2, 1, 2),
    "SOLUSDT": (150.0, 3, 10, 1),
    "XRPUSDT": (2.0, 4, 1, 0),
    "DOGEUSDT": (0.2, 5, 1, 0),
}
_SPOT_SPECS: dict[str, tuple[float, int, int, int]] = {
    "BTCUSDT": (65000.0, 1, 1, 6),
    "ETHUSDT": (3500.0, 2, 1, 5),
}
_INVERSE_SPECS: dict[str, tuple[float, int, int, int]] = {
    "BTCUSD": (65000.0, 2, 50, 0),
    "ETHUSD": (3500.0, 2, 5, 0),
}

_LEVEL_NOTIONAL = 1500.0  # median resting level, quote currency (USD contracts for inverse)
_LEVEL_SIGMA = 1.1  # lognormal shape of level sizes
_LEVEL_CAP = 6.0  # ordinary levels stay below this many medians, so planted ones (>= 8) stand out
_TRADE_SIGMA = 1.1  # lognormal shape of taker order sizes
_TRADE_CAP = 4.0  # largest ordinary taker order, in median level sizes
# Standard normal quantiles: a lognormal draw is one table lookup instead of gauss() + exp().
QUANTILES = 1024
_Z = [NormalDist().inv_cdf((i + 0.5) / QUANTILES) for i in range(QUANTILES)]

RESTING, ATTACK, CONSUMED = 0, 1, 2  # phases of a planted order
_INF = float("inf")


class Plant:
    """Mutable state of the active planted order on one side."""

    __slots__ = ("key", "lots", "left", "fate", "phase", "end_at", "rec")

    def __init__(self, key: int, lots: int, fate: str, end_at: float, rec: int) -> None:
        self.key = key  # side key (see Side)
        self.lots = lots  # size when placed, lots
        self.left = lots  # still resting, lots
        self.fate = fate
        self.phase = RESTING
        self.end_at = end_at  # ms: pull time, or start of the attack for "eaten"
        self.rec = rec  # index into MarketSimulator.planted


class Side:
    """One side of a book: ints only.

    Keys are ``sign * price_ticks`` (bids ``-p``, asks ``p``) so both sides sort ascending with
    the best level first and "one tick better" is always ``key - 1``. ``pend`` maps every key
    touched since the last push to its size (lots, 0 = absent) at that push.
    """

    __slots__ = ("sign", "keys", "sizes", "pend", "plant", "plant_key", "attacked", "block_key",
                 "block_until")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.sizes: dict[int, int] = {}
        self.pend: dict[int, int] = {}
        self.plant: Plant | None = None
        self.plant_key: int | None = None  # no random change, trade or drift touches this key
        self.attacked = False  # an eaten plant is being walked to: no new levels in front of it
        self.block_key: int | None = None  # a just-pulled plant: no ordinary trade there ...
        self.block_until = -1  # ... while the trade's ms <= this

    def set(self, key: int, lots: int) -> None:
        sizes = self.sizes
        if key not in self.pend:
            self.pend[key] = sizes.get(key, 0)
        if key not in sizes:
            insort(self.keys, key)
        sizes[key] = lots

    def remove(self, key: int) -> None:
        sizes = self.sizes
        if key not in self.pend:
            self.pend[key] = sizes[key]
        del sizes[key]
        keys = self.keys
        del keys[bisect_left(keys, key)]

    def published(self) -> list[tuple[int, int]]:
        """(key, lots) of the book as of the last push, best first."""
        if not self.pend:
            sizes = self.sizes
            return [(k, sizes[k]) for k in self.keys]
        book = dict(self.sizes)
        for k, old in self.pend.items():
            if old:
                book[k] = old
            else:
                book.pop(k, None)
        return sorted(book.items())


def fmt_number(n: int, dec: int, trim: bool) -> str:
    """Format ``n * 10**-dec`` with ``dec`` fixed decimals (trailing zeros cut if ``trim``)."""
    s = str(n)
    if dec == 0:
        return s
    if len(s) <= dec:
        s = "0" * (dec + 1 - len(s)) + s
    s = s[:-dec] + "." + s[-dec:]
    if trim:
        s = s.rstrip("0").rstrip(".")
    return s


class SymbolState:
    """Per-symbol state: spec, RNG, book, trade process, plants."""

    __slots__ = ("name", "idx", "rng", "pdec", "tick_units", "sdec", "trim", "bids", "asks",
                 "sides", "u", "last_seq", "last_cts", "last_T", "book_topic", "trade_topic",
                 "level_med", "level_sizes", "trade_sizes", "last_p", "up", "trade_t", "burst_start",
                 "burst_end", "burst_buy", "next_plant", "tid", "pcache", "scache", "views", "live", "depth")

    def __init__(self, name: str, idx: int, seed: int, category: str, depth: int) -> None:
        self.name = name
        self.idx = idx
        rng = self.rng = random.Random(f"bybitmon.simulate:{seed}:{name}")
        table = {"linear": _LINEAR_SPECS, "spot": _SPOT_SPECS, "inverse": _INVERSE_SPECS}[category]
        spec = table.get(name)
        if spec is None and name in _LINEAR_SPECS:
            # Same coin on another category: linear price and tick; inverse sizes are contracts.
            base, pdec, tick_units, sdec = _LINEAR_SPECS[name]
            spec = (base, pdec, tick_units, 0 if category == "inverse" else sdec)
        if spec is not None:
            base, pdec, tick_units, sdec = spec
            base *= 1.0 + 0.02 * (2.0 * rng.random() - 1.0)
        else:
            base = math.exp(rng.uniform(math.log(0.1), math.log(500.0)))
            tick_exp = round(math.log10(base / 10_000.0))  # tick ~ price / 10000, a power of 10
            pdec = max(0, -tick_exp)
            tick_units = 10 ** (tick_exp + pdec)
            sdec = 0 if category == "inverse" else min(4, max(0, round(math.log10(base / 5.0))))
        self.pdec, self.tick_units, self.sdec = pdec, tick_units, sdec
        self.trim = category == "spot"
        tick = tick_units / 10**pdec
        lot = 10.0**-sdec
        if category == "inverse":
            self.level_med = max(1.0, _LEVEL_NOTIONAL / lot)
        else:
            self.level_med = max(1.0, _LEVEL_NOTIONAL / (base * lot))
        med = self.level_med
        level_cap = max(1, int(_LEVEL_CAP * med))
        self.level_sizes = [min(level_cap, max(1, int(med * math.exp(_LEVEL_SIGMA * z)))) for z in _Z]
        trade_med = 0.4 * med
        trade_cap = max(1, int(_TRADE_CAP * med))
        self.trade_sizes = [min(trade_cap, max(1, int(trade_med * math.exp(_TRADE_SIGMA * z)))) for z in _Z]
        self.bids = Side(-1)
        self.asks = Side(1)
        self.sides = (self.bids, self.asks)
        self.book_topic = f"orderbook.{depth}.{name}"
        self.trade_topic = f"publicTrade.{name}"
        self.u = rng.randrange(1_000_000, 90_000_000) - 1  # u of the last book frame
        self.last_seq = 0
        self.last_cts = 0
        self.last_T = 0
        mid = max(2, round(base / tick))
        self.last_p = mid
        self.up = True
        self.tid = rng.randrange(2_200_000_000_000_000_000, 2_300_000_000_000_000_000)  # spot ids
        # Trade process and plant schedule, ms; set by MarketSimulator.
        self.trade_t = _INF
        self.burst_start = _INF
        self.burst_end = _INF
        self.burst_buy = 0.5  # P(taker is a buyer) during the burst
        self.next_plant = _INF
        self.depth = depth  # levels per side the book is kept at
        self.views: dict = {}  # depth -> DepthView (DepthMarket only)
        self.live: list = []  # the active ones
        self.pcache: dict[int, str] = {}
        self.scache: dict[int, str] = {}
        # Initial book: one-tick spread, mostly contiguous levels.
        self._fill(self.bids, -mid, depth)
        self._fill(self.asks, mid + 1, depth)
        self.bids.pend.clear()
        self.asks.pend.clear()

    def level_size(self) -> int:
        """A random resting level size, lots: lognormal, >= 1, < ``_LEVEL_CAP`` medians."""
        return self.level_sizes[int(self.rng.random() * QUANTILES)]

    def gap(self) -> int:
        """Ticks between neighbouring levels: mostly 1, with occasional holes."""
        r = self.rng.random()
        if r < 0.72:
            return 1
        if r < 0.92:
            return 2
        return 3 + int(self.rng.random() * 3)

    def _fill(self, side: Side, first_key: int, depth: int) -> None:
        # Keys only grow here, so they are appended in order (no insort, no pend: the side is new).
        key = first_key
        keys = side.keys
        sizes = side.sizes
        for _ in range(depth):
            if side.sign < 0 and key >= 0:  # bid price would be <= 0
                break
            keys.append(key)
            sizes[key] = self.level_size()
            key += self.gap()

    def price(self, key_price: int) -> str:
        """Price string of ``key_price`` ticks."""
        s = self.pcache.get(key_price)
        if s is None:
            s = self.pcache[key_price] = fmt_number(key_price * self.tick_units, self.pdec, self.trim)
        return s

    def size(self, lots: int) -> str:
        """Size string of ``lots`` lots."""
        s = self.scache.get(lots)
        if s is None:
            if len(self.scache) > 100_000:
                self.scache.clear()
            s = self.scache[lots] = fmt_number(lots, self.sdec, self.trim)
        return s
