"""Seeded, deterministic simulated market emitting Bybit v5 public frames.

Sans-I/O: no sockets, no clocks, no asyncio. Time is an argument (exchange time, ms since the
epoch) and randomness comes from ``random.Random`` instances owned by the simulator, seeded from
``(seed, symbol)`` strings (never ``hash()``, which is salted per process). The same constructor
arguments and the same ``advance()`` calls give byte-identical frames; the frames do not depend
on how the time range is cut into ``advance()`` calls either.

Frames imitate the linear stream byte for byte (key order, string numbers, fixed decimals):

* ``orderbook.{depth}.{symbol}``: one ``snapshot`` per symbol at ``start_ms``, then a ``delta``
  every ``book_interval_ms`` carrying only the levels that changed since the previous push (sent
  only when something changed). Levels leaving the depth window come as explicit ``"0"``
  deletes and levels entering it with their size, so each side holds exactly ``depth`` levels
  after every frame, as on Bybit. ``u`` rises by exactly 1 per book frame of a symbol; ``seq``
  is one cross sequence shared by all topics.
  "Level 1 (linear, inverse, spot): ... push snapshots only" -- with ``depth=1`` every book
  frame is a ``snapshot`` (https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook).
* ``publicTrade.{symbol}``: Poisson arrivals with bursts. A buy takes the best ask(s), a sell
  the best bid(s); the consumed size is removed from the book and shows up in the next book push,
  so a trade frame always precedes the delta that reflects it.

Large "planted" orders (densities) are placed every ``plant_every_s`` or so per symbol, 2-8 ticks
behind the touch, 8-25 times the median level size; each one is either eaten (the price walks to
it and trades of the opposite side consume its whole size at its price) or pulled (cancelled with
no trade at its price while it rests). :attr:`MarketSimulator.planted` is the ground truth.

Internally prices are ints in ticks and sizes ints in lots; strings are made only on output.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from heapq import heapify, heappop, heapreplace

import orjson

from ..errors import UsageError
from .plants import EAT_BID, PlantedOrder, Plants
from .state import CONSUMED, QUANTILES, Side, SymbolState

__all__ = ["MarketSimulator", "PlantedOrder"]

_dumps = orjson.dumps


_CATEGORIES = ("linear", "inverse", "spot")
# Exponential quantiles, floored: random book changes per push (mean ~2) and the book index
# each change hits (mean ~4.5, so most activity is near the touch).
_CHANGES = [int(-2.5 * math.log(1.0 - (i + 0.5) / QUANTILES)) for i in range(QUANTILES)]
_TOP_INDEX = [int(-5.0 * math.log(1.0 - (i + 0.5) / QUANTILES)) for i in range(QUANTILES)]
_BURST_FACTOR = 10.0  # trade rate multiplier during a burst
_BURST_GAP_MS = 45_000.0  # mean time between bursts
_MAX_WALK = 5  # an ordinary taker order walks at most this many levels
_DRIFT_PROB = 0.02  # chance per book push of a 1-3 tick mid-price move

_INF = float("inf")
_TRADE, _PUSH = 0, 3  # event kinds (eating a plant: 1 and 2, in .plants); also the order at equal times


class MarketSimulator(Plants):
    """A seeded simulated market producing Bybit v5 public frames for some symbols.

    Args:
        symbols: Instruments, e.g. ``["BTCUSDT", "ETHUSDT"]``. Known ones (BTCUSDT, ETHUSDT,
            SOLUSDT, XRPUSDT, DOGEUSDT, on any category; inverse BTCUSD/ETHUSD) get realistic
            price, tick and lot decimals; others get a random price in 0.1-500 and a tick of
            about price/10000 rounded to a power of ten.
        seed: Seed of every random choice.
        category: ``"linear"`` (default), ``"inverse"`` (same frame shape) or ``"spot"`` (spot
            key order ``topic,ts,type,...``, trimmed numbers, numeric trade ids, no ``L``).
        depth: Levels per side of the ``orderbook.{depth}`` topic. Planted orders need
            ``depth >= 10``; below that none are placed.
        start_ms: Exchange time of the first snapshot, ms since the epoch.
        book_interval_ms: Book push interval, ms (Bybit: 20 for depth 50, 100 for 200).
        trade_rate: Mean ordinary taker orders per second per symbol outside bursts (x10 in a
            burst); 0 disables them (eaten plants still trade; see ``plant_every_s``).
        plant_every_s: Mean time between planted large orders per symbol, seconds; <= 0 disables.

    Raises:
        UsageError: an argument is out of range.
    """

    def __init__(self, symbols: Sequence[str], seed: int = 1, *, category: str = "linear",
                 depth: int = 50, start_ms: int = 1_767_225_600_000,
                 book_interval_ms: int = 20, trade_rate: float = 5.0,
                 plant_every_s: float = 20.0) -> None:
        names = list(symbols)
        if not names:
            raise UsageError("simulator needs at least one symbol")
        if len(set(names)) != len(names) or not all(isinstance(s, str) and s for s in names):
            raise UsageError(f"simulator symbols must be distinct non-empty strings: {names!r}")
        if category not in _CATEGORIES:
            raise UsageError(f"unsupported simulator category {category!r} (use linear, inverse or spot)")
        if depth < 1:
            raise UsageError(f"book depth must be >= 1, got {depth}")
        if book_interval_ms < 1:
            raise UsageError(f"book_interval_ms must be >= 1, got {book_interval_ms}")
        if not trade_rate >= 0 or math.isinf(trade_rate):
            raise UsageError(f"trade_rate must be a finite number >= 0, got {trade_rate}")
        self.category = category
        self.depth = depth
        self.start_ms = start_ms
        self.book_interval_ms = book_interval_ms
        self.trade_rate = float(trade_rate)
        self.plant_every_s = float(plant_every_s)
        #: Simulated exchange clock, ms: the latest ``to_ms`` passed to :meth:`advance`.
        self.now_ms: int = start_ms
        #: Ground truth of the planted large orders, in placement order.
        self.planted: list[PlantedOrder] = []
        self._rng = random.Random(f"bybitmon.simulate:{seed}")
        self._seq = self._rng.randrange(100_000_000_000, 800_000_000_000)
        self._linear_keys = category != "spot"
        self._ts_first = category == "spot" or depth == 1
        self._snap_only = depth == 1
        self._plants_on = plant_every_s > 0 and depth >= 10
        self._per_ms = self.trade_rate / 1000.0
        self._started = False
        self._syms: list[SymbolState] = []
        self._by_name: dict[str, SymbolState] = {}
        self._heap: list[tuple[int, int, int]] = []
        self._seed = seed
        self._sym_depth = depth
        for name in names:
            self._add(name, start_ms)
        heapify(self._heap)

    def _add(self, name: str, start_ms: int) -> SymbolState:
        """Create ``name``'s state and schedule its first events (the heap is heapified by the caller)."""
        i = len(self._syms)
        sym = SymbolState(name, i, self._seed, self.category, self._sym_depth)
        sym.last_seq = self._seq
        sym.last_cts = start_ms - 1
        rng = sym.rng
        sym.burst_start = start_ms + rng.expovariate(1.0 / _BURST_GAP_MS)
        sym.burst_end = sym.burst_start + rng.uniform(2000.0, 6000.0)
        sym.burst_buy = 0.75 if rng.random() < 0.5 else 0.25
        every_ms = self.plant_every_s * 1000.0
        sym.next_plant = start_ms + every_ms * (0.3 + 0.7 * rng.random()) if self._plants_on else _INF
        sym.trade_t = self._next_arrival(sym, float(start_ms))
        self._syms.append(sym)
        self._by_name[name] = sym
        heap = self._heap
        if sym.trade_t != _INF:
            heap.append((int(sym.trade_t) + 1, _TRADE, i))
        heap.append((start_ms + 1 + rng.randrange(self.book_interval_ms), _PUSH, i))
        return sym

    # ------------------------------------------------------------------ public API

    def add_symbol(self, symbol: str) -> None:
        """List a new symbol now (at :attr:`now_ms`); it trades and pushes from then on.

        Raises:
            UsageError: an empty name or one already simulated.
        """
        if not isinstance(symbol, str) or not symbol or symbol in self._by_name:
            raise UsageError(f"cannot add symbol {symbol!r}: empty or already simulated")
        self._add(symbol, self.now_ms)
        heapify(self._heap)

    def symbols(self) -> list[str]:
        """The simulated symbols, in the order they were listed."""
        return [s.name for s in self._syms]

    def topics(self, symbol: str) -> list[str]:
        """Topics this simulator publishes for ``symbol``: ``[orderbook.{depth}.SYM, publicTrade.SYM]``."""
        sym = self._sym(symbol)
        return [sym.book_topic, sym.trade_topic]

    def advance(self, to_ms: int) -> list[tuple[int, str]]:
        """Run the market up to and including ``to_ms``.

        The first call that reaches ``start_ms`` emits one snapshot per symbol first (``ts`` =
        ``start_ms``). Calls with ``to_ms`` at or before :attr:`now_ms` return no new frames.

        Args:
            to_ms: Exchange time to run to, ms since the epoch (inclusive).

        Returns:
            The frames generated, in time order, as ``(ts_ms, frame_text)``.
        """
        out: list[tuple[int, str]] = []
        if not self._started:
            if to_ms < self.start_ms:
                return out
            self._started = True
            for sym in self._syms:
                self._emit_snapshot(sym, self.start_ms, out)
        heap = self._heap
        syms = self._syms
        # Handlers only schedule later events, so heap[0] stays the one being handled and
        # rescheduling it is a single heapreplace.
        while heap:
            t, kind, i = heap[0]
            if t > to_ms:
                break
            if kind == _PUSH:
                nxt = self._on_push(syms[i], t, out)
            elif kind == _TRADE:
                nxt = self._on_trades(syms[i], t, out)
            else:
                nxt = self._on_eat(syms[i], kind - EAT_BID, t, out)
            if nxt:
                heapreplace(heap, (nxt, kind, i))
            else:
                heappop(heap)
        if to_ms > self.now_ms:
            self.now_ms = to_ms
        return out

    def frames(self, duration_ms: int, step_ms: int = 20) -> Iterator[tuple[int, str]]:
        """Advance in steps of ``step_ms`` up to ``start_ms + duration_ms``, yielding frames.

        Args:
            duration_ms: Simulated time to cover from ``start_ms``, ms.
            step_ms: Simulated time per :meth:`advance` call, ms. The frames do not depend on it.

        Yields:
            ``(ts_ms, frame_text)`` in time order.
        """
        if step_ms < 1:
            raise UsageError(f"step_ms must be >= 1, got {step_ms}")
        end = self.start_ms + duration_ms
        t = self.now_ms if self._started else self.start_ms
        while True:
            yield from self.advance(t)
            if t >= end:
                return
            t = min(t + step_ms, end)

    def snapshot_frame(self, symbol: str) -> str:
        """A snapshot frame of the book as published so far, for a client subscribing now.

        It carries the ``u`` and ``seq`` of the symbol's last book frame (so the next delta has
        ``u + 1``) and ``ts`` = :attr:`now_ms`. Draws no randomness: calling it never changes
        the frames that follow.
        """
        sym = self._sym(symbol)
        b = [[sym.price(-k), sym.size(n)] for k, n in sym.bids.published()]
        a = [[sym.price(k), sym.size(n)] for k, n in sym.asks.published()]
        return self._book_text(sym, "snapshot", self.now_ms, b, a, sym.u, sym.last_seq, sym.last_cts)

    def true_book(self, symbol: str) -> tuple[dict[str, str], dict[str, str]]:
        """The book a correct client holds after the last emitted book frame.

        Returns:
            ``(bids, asks)`` as ``{price_string: size_string}``, bids best (highest) first, asks
            best (lowest) first. Trades since the last push are not in it yet.
        """
        sym = self._sym(symbol)
        bids = {sym.price(-k): sym.size(n) for k, n in sym.bids.published()}
        asks = {sym.price(k): sym.size(n) for k, n in sym.asks.published()}
        return bids, asks

    # ------------------------------------------------------------------ frames

    def _sym(self, symbol: str) -> SymbolState:
        try:
            return self._by_name[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} is not simulated (have {list(self._by_name)})") from None

    def _next_seq(self) -> int:
        self._seq += 1 + int(self._rng.random() * 400)
        return self._seq

    def _book_text(self, sym: SymbolState, typ: str, ts: int, b: list[list[str]], a: list[list[str]],
                   u: int, seq: int, cts: int) -> str:
        data = {"s": sym.name, "b": b, "a": a, "u": u, "seq": seq}
        if self._ts_first:
            frame = {"topic": sym.book_topic, "ts": ts, "type": typ, "data": data, "cts": cts}
        else:
            frame = {"topic": sym.book_topic, "type": typ, "ts": ts, "data": data, "cts": cts}
        return orjson.dumps(frame).decode()

    def _cts(self, sym: SymbolState, ts: int) -> int:
        cts = ts - 1 - int(sym.rng.random() * 3)
        if cts < sym.last_T:
            cts = sym.last_T
        if cts < sym.last_cts:
            cts = sym.last_cts
        sym.last_cts = cts
        return cts

    def _emit_snapshot(self, sym: SymbolState, ts: int, out: list[tuple[int, str]]) -> None:
        b = [[sym.price(-k), sym.size(n)] for k, n in sym.bids.published()]
        a = [[sym.price(k), sym.size(n)] for k, n in sym.asks.published()]
        sym.bids.pend.clear()
        sym.asks.pend.clear()
        sym.u += 1
        seq = sym.last_seq = self._next_seq()
        out.append((ts, self._book_text(sym, "snapshot", ts, b, a, sym.u, seq, self._cts(sym, ts))))

    def _diff(self, sym: SymbolState, side: Side) -> list[list[str]]:
        pend = side.pend
        if not pend:
            return []
        sizes = side.sizes
        sign = side.sign
        pcache = sym.pcache
        scache = sym.scache
        out = []
        for k in sorted(pend):
            new = sizes.get(k, 0)
            if new != pend[k]:
                p = sign * k
                out.append([pcache.get(p) or sym.price(p),
                            (scache.get(new) or sym.size(new)) if new else "0"])
        pend.clear()
        return out

    def _emit_trades(self, sym: SymbolState, t: int, fills: list[tuple[bool, int, int]],
                     out: list[tuple[int, str]]) -> None:
        """One publicTrade frame at ``ts=t`` (fill time ``T=t-1``); fills are (buy, price, lots)."""
        seq = self._next_seq()
        T = t - 1
        sym.last_T = T
        name = sym.name
        data = []
        last_p = sym.last_p
        up = sym.up
        rng = sym.rng
        linear = self._linear_keys
        for buy, p, lots in fills:
            ps = sym.price(p)
            vs = sym.size(lots)
            side = "Buy" if buy else "Sell"
            if linear:
                if p > last_p:
                    tick, up = "PlusTick", True
                elif p < last_p:
                    tick, up = "MinusTick", False
                else:
                    tick = "ZeroPlusTick" if up else "ZeroMinusTick"
                last_p = p
                h = f"{rng.getrandbits(128):032x}"
                tid = f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
                data.append({"T": T, "s": name, "S": side, "v": vs, "p": ps, "L": tick, "i": tid,
                             "BT": False, "RPI": False, "seq": seq})
            else:
                last_p = p
                sym.tid += 1
                data.append({"i": str(sym.tid), "T": T, "p": ps, "v": vs, "S": side, "seq": seq,
                             "s": name, "BT": False, "RPI": False})
        sym.last_p = last_p
        sym.up = up
        if self._ts_first and not linear:
            frame = {"topic": sym.trade_topic, "ts": t, "type": "snapshot", "data": data}
        else:
            frame = {"topic": sym.trade_topic, "type": "snapshot", "ts": t, "data": data}
        out.append((t, orjson.dumps(frame).decode()))

    # ------------------------------------------------------------------ trades

    def _next_arrival(self, sym: SymbolState, t: float) -> float:
        """Next taker arrival after ``t`` (ms): piecewise Poisson, x10 inside bursts."""
        base = self._per_ms
        if base <= 0.0:
            return _INF
        rng = sym.rng
        while True:
            in_burst = sym.burst_start <= t < sym.burst_end
            nxt = t + rng.expovariate(base * _BURST_FACTOR if in_burst else base)
            boundary = sym.burst_end if in_burst else sym.burst_start
            if nxt < boundary:
                return nxt
            # Crossing a regime boundary: Poisson is memoryless, so restart from it.
            t = boundary
            if in_burst:
                sym.burst_start = t + rng.expovariate(1.0 / _BURST_GAP_MS)
                sym.burst_end = sym.burst_start + rng.uniform(2000.0, 6000.0)
                sym.burst_buy = 0.75 if rng.random() < 0.5 else 0.25

    def _take(self, sym: SymbolState, buy: bool, lots: int, t: int, fills: list[tuple[bool, int, int]]) -> None:
        """An ordinary taker order of ``lots``: walk the opposite side, never into a plant."""
        side = sym.asks if buy else sym.bids
        keys = side.keys
        sizes = side.sizes
        pend = side.pend
        sign = side.sign
        stop = side.plant_key
        block = side.block_key if t <= side.block_until else None
        n = len(keys)
        i = 0
        full = 0
        while lots > 0 and i < n and i < _MAX_WALK:
            k = keys[i]
            if k == stop or k == block:
                break
            sz = sizes[k]
            take = lots if lots < sz else sz
            if take == sz and i == n - 1:  # never empty a side
                take = sz - 1
                if take <= 0:
                    break
            if k not in pend:
                pend[k] = sz
            fills.append((buy, sign * k, take))
            lots -= take
            i += 1
            if take < sz:
                sizes[k] = sz - take
                break
            del sizes[k]
            full += 1
        # Fully consumed levels are a prefix of keys.
        if full:
            del keys[:full]

    def _on_trades(self, sym: SymbolState, t: int, out: list[tuple[int, str]]) -> int:
        """Taker orders arriving in ms ``t`` (one frame); returns the next arrival ms (0: none)."""
        rng = sym.rng
        fills: list[tuple[bool, int, int]] = []
        while True:
            tf = sym.trade_t
            p_buy = sym.burst_buy if sym.burst_start <= tf < sym.burst_end else 0.5
            buy = rng.random() < p_buy
            lots = sym.trade_sizes[int(rng.random() * QUANTILES)]
            self._take(sym, buy, lots, t, fills)
            sym.trade_t = self._next_arrival(sym, tf)
            if sym.trade_t == _INF or int(sym.trade_t) + 1 != t:
                break
        if fills:
            self._emit_trades(sym, t, fills, out)
        return 0 if sym.trade_t == _INF else int(sym.trade_t) + 1

    # ------------------------------------------------------------------ book pushes

    def _on_push(self, sym: SymbolState, t: int, out: list[tuple[int, str]]) -> int:
        """The book push at ms ``t``; returns the ms of the next one."""
        bids, asks = sym.bids, sym.asks
        if t >= sym.next_plant or bids.plant is not None or asks.plant is not None:
            self._plant_lifecycle(sym, t)
        self._activity(sym)
        depth = self.depth
        if len(bids.keys) != depth or len(asks.keys) != depth:
            self._normalize(sym)
        b = self._diff(sym, bids) if bids.pend else []
        a = self._diff(sym, asks) if asks.pend else []
        if b or a:
            u = sym.u = sym.u + 1
            seq = sym.last_seq = self._next_seq()
            cts = self._cts(sym, t)
            if self._snap_only:
                b = [[sym.price(-k), sym.size(n)] for k, n in bids.published()]
                a = [[sym.price(k), sym.size(n)] for k, n in asks.published()]
                out.append((t, self._book_text(sym, "snapshot", t, b, a, u, seq, cts)))
            elif self._ts_first:
                out.append((t, self._book_text(sym, "delta", t, b, a, u, seq, cts)))
            else:  # the hot path, inlined
                out.append((t, _dumps({"topic": sym.book_topic, "type": "delta", "ts": t, "data": {
                    "s": sym.name, "b": b, "a": a, "u": u, "seq": seq}, "cts": cts}).decode()))
            for side in sym.sides:
                pl = side.plant
                if pl is not None and pl.phase == CONSUMED:
                    self._end_plant(side, pl, t)
        return t + self.book_interval_ms

    def _activity(self, sym: SymbolState) -> None:
        """Random adds, resizes and cancels near the top; spread refill; occasional drift."""
        r = sym.rng.random
        table = sym.level_sizes
        bids, asks = sym.bids, sym.asks
        for _ in range(_CHANGES[int(r() * QUANTILES)]):
            if r() < 0.5:
                side, other = bids, asks
            else:
                side, other = asks, bids
            keys = side.keys
            idx = _TOP_INDEX[int(r() * QUANTILES)]
            if idx >= len(keys):
                idx = len(keys) - 1
            k = keys[idx]
            x = r()
            if x < 0.55:  # resize
                if k != side.plant_key:
                    pend = side.pend
                    if k not in pend:
                        pend[k] = side.sizes[k]
                    side.sizes[k] = table[int(r() * QUANTILES)]
            elif x < 0.75:  # cancel
                if k != side.plant_key and len(keys) > 1:
                    side.remove(k)
            else:  # add one tick better (fills a hole or improves the touch)
                nk = k - 1
                if nk in side.sizes:
                    if nk != side.plant_key:
                        side.set(nk, table[int(r() * QUANTILES)])
                elif (idx or nk + other.keys[0] > 0) and not (side.attacked and nk <= side.plant_key):
                    if side.sign < 0 or nk > 0:
                        side.set(nk, table[int(r() * QUANTILES)])
        spread = asks.keys[0] + bids.keys[0]  # ticks
        if spread > 1 and r() < 0.6:
            # Liquidity comes back into a wide spread, on a side not being walked to a plant.
            side = bids if r() < 0.5 else asks
            if side.attacked:
                side = asks if side is bids else bids
            if not side.attacked:
                side.set(side.keys[0] - 1 - int(r() * (spread - 1)), table[int(r() * QUANTILES)])
        if r() < _DRIFT_PROB and not bids.attacked and not asks.attacked:
            # Mid-price move of 1-3 ticks: one side backs off, the other follows it.
            up = r() < 0.5
            gone, grow = (asks, bids) if up else (bids, asks)
            limit = gone.keys[0] + 1 + int(r() * 3)
            keys = gone.keys
            while len(keys) > 1 and keys[0] < limit and keys[0] != gone.plant_key:
                gone.remove(keys[0])
            nk = grow.keys[0] - 1
            while nk + keys[0] > 0:
                if r() < 0.7 and (grow.sign < 0 or nk > 0):
                    grow.set(nk, table[int(r() * QUANTILES)])
                nk -= 1

    def _normalize(self, sym: SymbolState) -> None:
        """Trim or extend each side at its far end to exactly ``sym.depth`` levels."""
        depth = sym.depth
        r = sym.rng.random
        table = sym.level_sizes
        for side in sym.sides:
            keys = side.keys
            n = len(keys)
            if n == depth:
                continue
            while n > depth:
                k = keys[-1]
                side.remove(k if k != side.plant_key else keys[-2])
                n -= 1
            while n < depth:
                nk = keys[-1] + sym.gap()
                if side.sign < 0 and nk >= 0:
                    break
                side.set(nk, table[int(r() * QUANTILES)])
                n += 1
