"""Every book depth of one symbol published from one deep book, as Bybit does. Sans-I/O.

Bybit publishes ``orderbook.1``, ``.50``, ``.200`` and ``.1000`` of a symbol at once, each with
its own push interval and its own ``u`` sequence; a level leaving a depth's window comes as an
explicit ``"0"`` delete and one entering it with its size, "so each side holds exactly
``depth`` levels after every frame"; level 1 pushes snapshots only, and re-sends its snapshot
with the same ``u`` when nothing changed for 3 s
(https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook).

A :class:`DepthView` is one such topic. It remembers what it last published (``{key: lots}``
per side) and the keys the market touched since (``dirty``), so a push costs the number of
changed levels plus the levels that crossed the window's edge, not the depth. A view that
nobody reads is inactive and costs nothing.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence

import orjson

from ..core.limits import BOOK_DEPTHS, BOOK_PUSH_MS
from ..errors import UsageError
from .market import MarketSimulator
from .state import CONSUMED, Side, SymbolState

__all__ = ["DepthMarket", "DepthView", "LEVEL1_RESEND_MS"]

#: "If there is no change for 3 seconds, a snapshot with the same u is pushed" (level 1 only).
LEVEL1_RESEND_MS = 3000
_BASE_DEPTH = 50


class DepthView:
    """One ``orderbook.{depth}.{symbol}`` topic over a deeper book.

    Attributes:
        depth: Levels per side.
        topic: ``orderbook.{depth}.{symbol}``.
        interval_ms: Push interval, ms.
        u: ``u`` of the last frame published (or of the next snapshot, when inactive).
        active: Whether the view publishes (someone subscribed).
        pub: ``(bids, asks)`` as published: ``{key: lots}``; empty while inactive.
        dirty: ``(bids, asks)``: keys the market touched since the last push.
        next_ms: Earliest time of the next push, ms.
        sent_ms: ``ts`` of the last frame published, ms.
        seq, cts: ``seq`` and ``cts`` of the last frame published.
    """

    __slots__ = ("depth", "topic", "interval_ms", "u", "active", "pub", "dirty", "edge", "next_ms", "sent_ms",
                 "seq", "cts", "snap")

    def __init__(self, depth: int, topic: str, interval_ms: int, u: int) -> None:
        self.depth = depth
        self.topic = topic
        self.interval_ms = interval_ms
        self.u = u
        self.active = False
        self.pub: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.dirty: list[set[int]] = [set(), set()]
        self.edge: list[int | None] = [None, None]  # last published key per side
        self.next_ms = 0
        self.sent_ms = 0
        self.seq = 0
        self.cts = 0
        self.snap: tuple[int, list[list[str]], list[list[str]]] | None = None  # levels of the last snapshot

    def top(self, side: Side) -> dict[int, int]:
        """The side's top ``depth`` levels as of the symbol's last push tick, ``{key: lots}``
        (changes since then are still pending and go out with the next tick)."""
        if side.pend:
            return dict(side.published()[: self.depth])
        sizes = side.sizes
        return {k: sizes[k] for k in side.keys[: self.depth]}

    def activate(self, sides: tuple[Side, Side], seq: int, cts: int, now_ms: int) -> None:
        """Start publishing: the current top levels become the published book, with a new ``u``."""
        self.pub = (self.top(sides[0]), self.top(sides[1]))
        self.dirty = [set(), set()]
        self.edge = [max(self.pub[0]) if self.pub[0] else None, max(self.pub[1]) if self.pub[1] else None]
        self.u += 1
        self.seq = seq
        self.cts = cts
        self.sent_ms = now_ms
        self.next_ms = now_ms + self.interval_ms
        self.active = True

    def deactivate(self) -> None:
        """Stop publishing and forget the published book."""
        self.active = False
        self.seq = 0
        self.cts = 0
        self.snap = None
        self.pub = ({}, {})
        self.dirty = [set(), set()]

    def diff(self, side: Side, idx: int) -> list[tuple[int, int]]:
        """Bring ``pub[idx]`` to the side's current top ``depth`` levels.

        Returns:
            ``(key, lots)`` changes, best first; ``lots == 0`` deletes the level.
        """
        pub = self.pub[idx]
        dirty = self.dirty[idx]
        keys = side.keys
        sizes = side.sizes
        depth = self.depth
        n = len(keys)
        new_edge = keys[depth - 1] if n >= depth else (keys[-1] if n else None)
        old_edge = self.edge[idx]
        self.edge[idx] = new_edge
        # Levels that crossed the window's edge without being touched themselves: the keys
        # between the old and the new last level (a level inserted above the edge pushes the
        # last one out; one removed above it pulls the next one in).
        cand = dirty
        self.dirty[idx] = set()
        if new_edge is not None and old_edge is not None and new_edge != old_edge:
            lo, hi = (new_edge, old_edge) if new_edge < old_edge else (old_edge, new_edge)
            cand.update(keys[bisect_left(keys, lo): bisect_right(keys, hi)])
            cand.add(old_edge)
        out: list[tuple[int, int]] = []
        for k in sorted(cand):
            lots = sizes.get(k, 0) if new_edge is not None and k <= new_edge else 0
            if lots != pub.get(k, 0):
                out.append((k, lots))
                if lots:
                    pub[k] = lots
                else:
                    del pub[k]
        return out


class DepthMarket(MarketSimulator):
    """A :class:`~bybitmon.sim.market.MarketSimulator` that publishes every book depth at once.

    One book per symbol, ``max(depths)`` levels deep, evolves as in the base class (its random
    activity every ``book_interval_ms``, trades at their own times); each depth is a
    :class:`DepthView` pushed at its own interval (Bybit's, from
    :data:`bybitmon.core.limits.BOOK_PUSH_MS`, unless ``push_ms`` says otherwise) with its own
    ``u``. Views start inactive: :meth:`set_active` turns one on when someone subscribes, and
    only active views cost CPU or emit frames. A symbol's push tick is the gcd of its active
    depths' intervals; as the tick also keeps the book at full depth (drawing far levels), the
    random path of the market depends on which depths were read when, not only on the seed.

    Args:
        symbols, seed, category, start_ms, book_interval_ms, trade_rate, plant_every_s: As for
            :class:`~bybitmon.sim.market.MarketSimulator`; ``book_interval_ms`` paces the
            market's random activity, not the pushes.
        depths: Depths published (default: all of Bybit's).
        push_ms: Push interval per depth, ms (default: Bybit's for the category).

    Raises:
        UsageError: an argument is out of range.
    """

    def __init__(self, symbols: Sequence[str], seed: int = 1, *, category: str = "linear",
                 depths: Sequence[int] = BOOK_DEPTHS, push_ms: Mapping[int, int] | None = None,
                 start_ms: int = 1_767_225_600_000, book_interval_ms: int = 20, trade_rate: float = 5.0,
                 plant_every_s: float = 20.0) -> None:
        wanted = sorted(set(depths))
        if not wanted or wanted[0] < 1:
            raise UsageError(f"depths must be >= 1, got {list(depths)}")
        intervals = dict(push_ms) if push_ms is not None else dict(BOOK_PUSH_MS.get(category, {}))
        for d in wanted:
            if intervals.get(d, 0) < 1:
                raise UsageError(f"no push interval for depth {d}")
        # Books start 50 deep (what the old one-depth server kept) and are deepened the first
        # time a deeper depth of the symbol is read: 500 symbols at 1000 levels would take
        # seconds to build for depths nobody may ask for.
        super().__init__(symbols, seed, category=category, depth=min(wanted[-1], _BASE_DEPTH), start_ms=start_ms,
                         book_interval_ms=book_interval_ms, trade_rate=trade_rate, plant_every_s=plant_every_s)
        self.depth = wanted[-1]
        self.depths = tuple(wanted)
        self.push_ms = {d: intervals[d] for d in wanted}
        # One event per symbol and tick: the market's activity when due (every book_interval_ms),
        # then the pushes due. The tick is the gcd of book_interval_ms and the active depths'
        # intervals, so depth 50 alone costs what the one-depth simulator did.
        self._ticks: list[int] = []
        self._next_activity: list[int] = []
        for sym in self._syms:
            self._add_views(sym)

    def _add_views(self, sym: SymbolState) -> None:
        rng = sym.rng
        sym.views = {d: DepthView(d, f"orderbook.{d}.{sym.name}", self.push_ms[d],
                                  rng.randrange(1_000_000, 90_000_000)) for d in self.depths}
        self._ticks.append(self.book_interval_ms)
        self._next_activity.append(0)


    # ------------------------------------------------------------------ public API

    def add_symbol(self, symbol: str) -> None:
        """List a new symbol now; its depths start inactive, like every other symbol's."""
        super().add_symbol(symbol)
        self._add_views(self._syms[-1])

    def topics(self, symbol: str) -> list[str]:
        """Every book topic of ``symbol``, shallowest first, then its trade topic."""
        sym = self._sym(symbol)
        return [v.topic for v in sym.views.values()] + [sym.trade_topic]

    def set_active(self, symbol: str, depth: int, active: bool) -> None:
        """Start (or stop) publishing ``orderbook.{depth}.{symbol}``.

        Starting takes the current top levels as the published book with a new ``u``, so
        :meth:`snapshot_frame` right after is the subscriber's first frame. Idempotent.

        Raises:
            KeyError: unknown symbol or depth.
        """
        sym = self._sym(symbol)
        view = sym.views[depth]
        if active == view.active:
            return
        if active:
            if depth > sym.depth:
                self._deepen(sym, depth)
            view.activate(sym.sides, sym.last_seq, sym.last_cts, self.now_ms)
        else:
            view.deactivate()
        sym.live = [v for v in sym.views.values() if v.active]
        self._ticks[sym.idx] = math.gcd(self.book_interval_ms, *(v.interval_ms for v in sym.live))

    def active_depths(self, symbol: str) -> tuple[int, ...]:
        """Depths of ``symbol`` being computed and published now."""
        return tuple(v.depth for v in self._sym(symbol).live)

    def snapshot_frame(self, symbol: str, depth: int | None = None) -> str:  # type: ignore[override]
        """A snapshot of depth ``depth`` (default: 50, else the deepest) as last published, for a
        client subscribing now; of the current book when the view is inactive. Draws nothing.

        Raises:
            KeyError: unknown symbol or depth.
        """
        sym = self._sym(symbol)
        view = sym.views[self._depth_or_default(depth)]
        cached = view.snap
        if view.active and cached is not None and cached[0] == view.u:
            b, a = cached[1], cached[2]  # resends between two pushes cost one dumps
        else:
            bids, asks = self._view_book(sym, view)
            pc, sc = sym.pcache, sym.scache
            b = [[pc.get(-k) or sym.price(-k), sc.get(n) or sym.size(n)] for k, n in sorted(bids.items())]
            a = [[pc.get(k) or sym.price(k), sc.get(n) or sym.size(n)] for k, n in sorted(asks.items())]
            view.snap = (view.u, b, a) if view.active else None
        return self._view_text(sym, view, "snapshot", self.now_ms, b, a, view.seq or sym.last_seq,
                               view.cts or sym.last_cts)

    def true_book(self, symbol: str, depth: int | None = None) -> tuple[dict[str, str], dict[str, str]]:  # type: ignore[override]
        """The book a correct client of ``orderbook.{depth}`` holds (default depth: 50, else
        the deepest): ``(bids, asks)`` as ``{price: size}`` strings, best first."""
        sym = self._sym(symbol)
        bids, asks = self._view_book(sym, sym.views[self._depth_or_default(depth)])
        return ({sym.price(-k): sym.size(n) for k, n in sorted(bids.items())},
                {sym.price(k): sym.size(n) for k, n in sorted(asks.items())})

    def book_now(self, symbol: str) -> tuple[dict[str, str], dict[str, str]]:
        """Every level of the market's book right now, published or not, best first."""
        sym = self._sym(symbol)
        return ({sym.price(-k): sym.size(sym.bids.sizes[k]) for k in sym.bids.keys},
                {sym.price(k): sym.size(sym.asks.sizes[k]) for k in sym.asks.keys})

    # ------------------------------------------------------------------ internals

    def _deepen(self, sym: SymbolState, depth: int) -> None:
        """Keep ``sym``'s book ``depth`` levels deep from now on. The new far levels count as
        published already: they lie beyond every window read so far, so no frame owes them."""
        sym.depth = depth
        before = [set(side.pend) for side in sym.sides]
        self._normalize(sym)
        for side, old in zip(sym.sides, before):
            pend = side.pend
            for k in [k for k in pend if k not in old]:
                del pend[k]

    def _depth_or_default(self, depth: int | None) -> int:
        if depth is not None:
            return depth
        return 50 if 50 in self.depths else self.depths[-1]

    def _view_book(self, sym: SymbolState, view: DepthView) -> tuple[dict[int, int], dict[int, int]]:
        if view.active:
            return view.pub
        return view.top(sym.bids), view.top(sym.asks)

    def _view_text(self, sym: SymbolState, view: DepthView, typ: str, ts: int, b: list[list[str]],
                   a: list[list[str]], seq: int, cts: int) -> str:
        data = {"s": sym.name, "b": b, "a": a, "u": view.u, "seq": seq}
        if self.category == "spot" or view.depth == 1:
            frame = {"topic": view.topic, "ts": ts, "type": typ, "data": data, "cts": cts}
        else:
            frame = {"topic": view.topic, "type": typ, "ts": ts, "data": data, "cts": cts}
        return orjson.dumps(frame).decode()

    def _emit_snapshot(self, sym: SymbolState, ts: int, out: list[tuple[int, str]]) -> None:
        # No view is active before the first advance: nothing to send, the book so far is "published".
        sym.bids.pend.clear()
        sym.asks.pend.clear()

    def _on_push(self, sym: SymbolState, t: int, out: list[tuple[int, str]]) -> int:
        """The symbol's tick at ``t``: the market's random activity when due, then the pushes due."""
        bids, asks = sym.bids, sym.asks
        idx = sym.idx
        if t >= self._next_activity[idx]:
            self._next_activity[idx] = t + self.book_interval_ms
            if t >= sym.next_plant or bids.plant is not None or asks.plant is not None:
                self._plant_lifecycle(sym, t)
            self._activity(sym)
        depth = sym.depth
        if len(bids.keys) != depth or len(asks.keys) != depth:
            self._normalize(sym)
        live = sym.live
        if bids.pend or asks.pend:
            # One engine state per tick: every depth pushed now carries the same seq and cts.
            sym.last_seq = self._next_seq()
            self._cts(sym, t)
            for view in live:
                view.dirty[0].update(bids.pend)
                view.dirty[1].update(asks.pend)
            bids.pend.clear()
            asks.pend.clear()
            for side in sym.sides:
                pl = side.plant
                if pl is not None and pl.phase == CONSUMED:
                    self._end_plant(side, pl, t)
        for view in live:
            if t < view.next_ms:
                continue
            view.next_ms = t + view.interval_ms
            b = view.diff(bids, 0)
            a = view.diff(asks, 1)
            if b or a:
                view.u += 1
                view.seq = sym.last_seq
                view.cts = sym.last_cts
                view.sent_ms = t
                if view.depth == 1:
                    # "Level 1 ... push snapshots only."
                    pb, pa = view.pub
                    b = sorted(pb.items())
                    a = sorted(pa.items())
                    typ = "snapshot"
                else:
                    typ = "delta"
                pc, sc = sym.pcache, sym.scache
                out.append((t, self._view_text(
                    sym, view, typ, t,
                    [[pc.get(-k) or sym.price(-k), (sc.get(n) or sym.size(n)) if n else "0"] for k, n in b],
                    [[pc.get(k) or sym.price(k), (sc.get(n) or sym.size(n)) if n else "0"] for k, n in a],
                    view.seq, view.cts)))
            elif view.depth == 1 and t - view.sent_ms >= LEVEL1_RESEND_MS:
                # Nothing changed for 3 s: the same snapshot again, with the same u.
                view.sent_ms = t
                pb, pa = view.pub
                out.append((t, self._view_text(
                    sym, view, "snapshot", t, [[sym.price(-k), sym.size(n)] for k, n in sorted(pb.items())],
                    [[sym.price(k), sym.size(n)] for k, n in sorted(pa.items())], view.seq, view.cts)))
        return t + self._ticks[idx]
