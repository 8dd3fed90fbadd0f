"""The pipeline: raw frames in, per-symbol books, trade windows and densities out. Sans-I/O.

``Monitor.feed(recv_ns, raw)`` is the one entry point for watch, record and replay alike, so a
replay reproduces the live numbers exactly. Reading (:meth:`Monitor.snapshot` and the other
readers) changes nothing; frames and :meth:`Monitor.advance` are what move time.

The pipeline clock ``now_ms`` (exchange ms; the snapshot's ``ts``) follows this rule:

- Only data frames move it (book, trade and other topic frames): the largest ``ts`` seen.
  Acks, pongs and unknown objects never do, whatever ``ts`` they carry.
- A frame's ``ts`` outside [``TS_MIN_MS``, ``TS_MAX_MS``) (before 1970, after 2200) makes it a
  bad frame (see :mod:`bybitmon.core.protocol`).
- Where the frame has a receive time (``recv_ns > 0``: live, and recordings), its ``ts`` is
  trusted up to ``recv + MAX_LEAD_MS`` (clocks differ a little); a later one is taken at its
  receive time and counted in ``health.clock_jumps``. So one frame stamped in the year 2100
  cannot push every later trade out of the window: the clock keeps following the receive time.
- Without a receive time (captures with ``recv_ns == 0``), a forward jump of more than
  ``MAX_JUMP_MS`` moves the clock only when the next data frame confirms it (a real gap in a
  capture); a lone wild frame is taken at the current clock and counted in ``health.clock_jumps``.
- The frame's bounded ``ts`` is the time its book change and densities are stamped with.

Bounds (so no input can grow memory without limit): at most ``max_symbols`` symbols (frames of
further symbols are bad frames, "symbol over the limit"); per symbol, ``MAX_TRADES_HELD`` trades
(see :class:`~bybitmon.core.activity.TradeWindow`) and ``MAX_BOOK_LEVELS`` levels per side
(see :class:`~bybitmon.core.book.OrderBook`), what goes over them counted in ``health.overflow``;
``MAX_ENDED`` ended densities; 512 latency samples; ``bad_reasons`` keyed by a closed set of
reasons, with at most ``BAD_SAMPLES`` example details each.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

import orjson

from .activity import MAX_TRADES_HELD, Heat, HeatMeter, TradeWindow, WindowStats
from .book import MAX_BOOK_LEVELS, Applied, OrderBook
from .densities import MAX_ENDED, DensityTracker
from .events import BadFrame, BookUpdate, Event, OtherTopic, TradeBatch
from .protocol import BadReason, BookFields, TradesFields, route
from .snapshot import SNAPSHOT_VERSION, BookView, DensityView, Health, Snapshot, TradesView, field_names

__all__ = ["Monitor", "SymbolState", "SNAPSHOT_VERSION", "MAX_LEAD_MS", "MAX_JUMP_MS", "DEFAULT_MAX_SYMBOLS",
           "BAD_SAMPLES", "MAX_TRADES_HELD", "MAX_BOOK_LEVELS", "MAX_ENDED"]

MAX_LEAD_MS = 60_000        # a frame's ts may lead its receive time by this much
MAX_JUMP_MS = 600_000       # without receive times, a larger forward jump needs a second frame
DEFAULT_MAX_SYMBOLS = 4096  # Bybit lists ~500 linear and ~600 spot instruments
BAD_SAMPLES = 3             # example details kept per bad-frame reason
_MAX_REASONS = 32

_dumps = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE

_route_common = None
if not __file__.endswith(".py"):
    # This module runs compiled (see bybitmon/core/__init__.py): well-formed book and trade
    # frames take the compiled fast path's parser; it returns None for anything else, which
    # then goes through route(), the reference.
    try:
        from ._fast import route_common as _route_common
    except ImportError:
        pass
_TRADES_KEYS, _BOOK_KEYS, _HEALTH_KEYS = (
    field_names(TradesView), field_names(BookView), field_names(Health))
_TRADES_TEMPLATE, _BOOK_TEMPLATE, _HEALTH_TEMPLATE = (
    dict.fromkeys(_TRADES_KEYS), dict.fromkeys(_BOOK_KEYS), dict.fromkeys(_HEALTH_KEYS))


def _keyed(template: dict, keys: tuple, values: tuple) -> dict:
    """``dict(zip(keys, values))`` for a ``template`` of those keys: its copy (born at its
    size), with the values set. What snapshot_json makes each part of a snapshot line with."""
    d = template.copy()
    for i in range(len(keys)):
        d[keys[i]] = values[i]
    return d

# Reading a member through its class costs ~80 ns in Python 3.11; the hot paths use these.
_SNAPSHOT, _DELTA, _STALE, _DROPPED, _GAP, _CROSSED = (
    Applied.SNAPSHOT, Applied.DELTA, Applied.STALE, Applied.DROPPED, Applied.GAP, Applied.CROSSED)


class SymbolState:
    """One symbol's state (a plain slotted class, so that the compiled build can make it a C
    struct; see monitor.pxd)."""

    __slots__ = ("symbol", "book", "trades", "densities", "heat", "frames", "latency_ms", "price_decimals")

    def __init__(self, symbol: str, book: OrderBook, trades: TradeWindow, densities: DensityTracker,
                 heat: HeatMeter | None = None) -> None:
        self.symbol = symbol
        self.book = book
        self.trades = trades
        self.densities = densities
        self.heat = HeatMeter() if heat is None else heat
        self.frames = 0
        self.latency_ms: deque = deque(maxlen=512)
        self.price_decimals: int | None = None  # decimals of the tick, as seen on the wire (for display)


def _decimals(prices: list[float]) -> int | None:
    """The most decimals any of ``prices`` needs: the tick's, for a snapshot's levels."""
    if not prices:
        return None
    best = 0
    for p in prices:
        r = repr(p)
        if "e" in r or "E" in r:
            r = f"{p:.12f}".rstrip("0")
        if "." in r:
            best = max(best, len(r) - r.index(".") - 1)
    return min(best, 12)


class Monitor:
    """Books, trade activity and densities for the symbols of one category.

    Args:
        category: ``linear``, ``spot``, ``inverse``... (frames carry no category; the source knows it).
        window_ms: trade window W; trades with ``now - W < T <= now`` count.
        bps: depth band for depth/notional/imbalance, in basis points of mid.
        density_x: a level is a density when its size >= ``density_x`` x its side's median.
        density_min_notional: ... and its price x size is at least this (quote units).
        density_list_max: a snapshot lists at most this many active and this many ended
            densities (the strongest, the most recent).
        retention_ms: keep trades this long so longer windows can be asked for (default W).
        max_symbols: the most symbols followed; frames of further symbols are bad frames.
    """

    def __init__(self, category: str = "linear", window_ms: int = 60_000, bps: float = 50.0,
                 density_x: float = 5.0, density_min_notional: float = 0.0,
                 retention_ms: int | None = None, density_list_max: int = 20,
                 max_symbols: int = DEFAULT_MAX_SYMBOLS) -> None:
        self.category = category
        self.window_ms = window_ms
        self.retention_ms = retention_ms
        self.bps = bps
        self.density_x = density_x
        self.density_min_notional = density_min_notional
        self.density_list_max = density_list_max
        self.max_symbols = max_symbols
        self.now_ms: int | None = None
        self.states: dict[str, SymbolState] = {}
        self.frames = 0
        self.bad_frames = 0
        self.bad_reasons: dict[str, int] = {}
        self.bad_samples: dict[str, deque[str]] = {}
        self.clock_jumps = 0
        self._jump_pending = False
        self.needs_resync: set[str] = set()

    @property
    def symbols(self) -> list[str]:
        return sorted(self.states)

    def _new_state(self, symbol: str) -> SymbolState:
        return SymbolState(
            symbol, OrderBook(symbol), TradeWindow(self.window_ms, self.retention_ms),
            DensityTracker(self.density_x, self.density_min_notional, list_max=self.density_list_max),
        )

    def state(self, symbol: str) -> SymbolState:
        """``symbol``'s state, created if new (the max_symbols bound is the caller's to check)."""
        st = self.states.get(symbol)
        if st is None:
            st = self.states[symbol] = self._new_state(symbol)
        return st

    def feed(self, recv_ns: int, raw: str | bytes) -> None:
        """Apply one raw frame (never raises for bad input).

        Book and trade frames go from JSON straight into the book and the window as validated
        fields, without building event objects; :func:`~bybitmon.core.protocol.route` is the
        dispatch ``parse_frame`` uses too, so this equals ``feed_event(parse_frame(raw, recv_ns))``.
        """
        if _route_common is not None:
            f = _route_common(raw)
            if f is not None:
                self.frames += 1
                if len(f) == 9:
                    symbol, depth, ts_ms, cts_ms, u, seq, is_snapshot, bids, asks = f
                    self._book(recv_ns, symbol, depth, ts_ms, cts_ms, u, seq, is_snapshot, bids, asks)
                else:
                    symbol, ts_ms, trades = f
                    self._trades(recv_ns, symbol, ts_ms, trades)
                return
        r = route(raw, recv_ns)
        cls = type(r)
        self.frames += 1
        if cls is BookFields:
            self._book(recv_ns, *r)  # type: ignore[misc]
        elif cls is TradesFields:
            self._trades(recv_ns, *r)  # type: ignore[misc]
        else:
            self._event(r)  # type: ignore[arg-type]

    def feed_until(self, frames: Iterator[tuple[int, str | bytes]], until_ms: int) -> int:
        """:meth:`feed` the ``(recv_ns, raw)`` pairs of ``frames`` until the clock reaches
        ``until_ms`` (the frame that moves it there is fed) or ``frames`` ends; returns how
        many were fed. The replay's loop between two ``--json`` intervals, in one call."""
        n = 0
        for recv_ns, raw in frames:
            self.feed(recv_ns, raw)
            n += 1
            now = self.now_ms
            if now is not None and now >= until_ms:
                break
        return n

    def feed_event(self, ev: Event) -> None:
        """Apply one parsed event."""
        self.frames += 1
        cls = type(ev)
        if cls is BookUpdate:
            self._book(ev.recv_ns, ev.symbol, ev.depth, ev.ts_ms, ev.cts_ms, ev.update_id, ev.seq,  # type: ignore[union-attr]
                       ev.is_snapshot, ev.bids, ev.asks)  # type: ignore[union-attr]
        elif cls is TradeBatch:
            self._trades(ev.recv_ns, ev.symbol, ev.ts_ms, ev.trades)  # type: ignore[union-attr]
        else:
            self._event(ev)

    def _event(self, ev: Event) -> None:
        cls = type(ev)
        if cls is BadFrame:
            self._bad(ev.reason, ev.detail or ev.excerpt)  # type: ignore[union-attr]
        elif cls is OtherTopic and ev.ts_ms is not None:  # type: ignore[union-attr]
            # tickers, kline...: data frames, so they move the clock; nothing else is read.
            self._clock(ev.recv_ns, ev.ts_ms)  # type: ignore[union-attr]
        # Acks, pongs and unknown objects: nothing (their ts never moves the clock).

    def _bad(self, reason: str, detail: str) -> None:
        self.bad_frames += 1
        reasons = self.bad_reasons
        if reason not in reasons and len(reasons) >= _MAX_REASONS:
            reason = "other"
        reasons[reason] = reasons.get(reason, 0) + 1
        samples = self.bad_samples.get(reason)
        if samples is None:
            samples = self.bad_samples[reason] = deque(maxlen=BAD_SAMPLES)
        samples.append(detail[:200])

    def _clock(self, recv_ns: int, ts_ms: int) -> int:
        """Move the pipeline clock for a data frame stamped ``ts_ms``; returns the frame's
        time as bounded by the rule in the module docstring."""
        now = self.now_ms
        if recv_ns > 0:
            recv_ms = recv_ns // 1_000_000
            if ts_ms > recv_ms + MAX_LEAD_MS:
                self.clock_jumps += 1
                ts_ms = recv_ms if now is None or recv_ms > now else now
        elif now is not None and ts_ms > now and ts_ms > now + MAX_JUMP_MS:  # (no sum made unless ahead)
            if not self._jump_pending:
                self._jump_pending = True
                self.clock_jumps += 1
                return now
        if now is None or ts_ms > now:
            self.now_ms = ts_ms
        self._jump_pending = False
        return ts_ms

    def _arrive(self, symbol: str) -> SymbolState | None:
        """What every book or trade frame does first: find its symbol's state (None: over the
        symbol limit, dropped). Then the frame moves the clock (:meth:`_clock`) and
        :meth:`_count` takes it."""
        st = self.states.get(symbol)
        if st is None:
            if len(self.states) >= self.max_symbols:
                self._bad(BadReason.UNKNOWN_SYMBOL, symbol)
                return None
            st = self.state(symbol)
        return st

    def _count(self, st: SymbolState, recv_ns: int, ts_ms: int) -> None:
        """Count a frame of ``st`` at ``ts_ms`` (its time as the clock bounded it), note its
        latency, and settle densities whose grace period is over."""
        now = self.now_ms
        st.frames += 1
        if recv_ns:
            st.latency_ms.append(recv_ns / 1e6 - ts_ms)
        dens = st.densities
        if dens.n_ending and now >= dens.next_decide_ms:  # type: ignore[operator]
            dens.tick(now)  # type: ignore[arg-type]

    def _book(self, recv_ns: int, symbol: str, depth: int, ts_ms: int, cts_ms: int | None, u: int,
              seq: int | None, is_snapshot: bool, bids, asks) -> None:
        st = self._arrive(symbol)
        if st is None:
            return
        ts_ms = self._clock(recv_ns, ts_ms)
        self._count(st, recv_ns, ts_ms)
        dens = st.densities
        book = st.book
        applied = book.apply_fields(is_snapshot, u, seq, ts_ms, cts_ms, bids, asks)
        if applied is _DELTA:
            if dens.n_active or ts_ms >= dens.next_scan_ms:
                dens.on_book_fields(book, ts_ms, bids, asks, applied)
        elif applied is not _STALE and applied is not _DROPPED:
            if applied is _SNAPSHOT:
                book.topic_depth = depth
                if st.price_decimals is None:
                    st.price_decimals = _decimals(book.bid_px[-50:] + book.ask_px[:50])
            dens.on_book_fields(book, ts_ms, bids, asks, applied)
            if applied is _GAP or applied is _CROSSED:
                self.needs_resync.add(symbol)

    def _trades(self, recv_ns: int, symbol: str, ts_ms: int, trades) -> None:
        st = self._arrive(symbol)
        if st is None:
            return
        self._count(st, recv_ns, self._clock(recv_ns, ts_ms))
        dens = st.densities
        fresh = st.trades.add_many(trades, self.now_ms)  # type: ignore[arg-type]
        st.heat.add(fresh, self.now_ms)  # type: ignore[arg-type]
        if fresh and (dens.n_active or dens.n_ending):
            dens.on_trades(fresh)

    def advance(self, now_ms: int | None = None) -> None:
        """Settle time-dependent state at the pipeline clock: move every trade window to it,
        decide densities whose grace is over, forget old ended ones.

        Args:
            now_ms: move the clock forward to this exchange time first (never backwards), e.g.
                from an I/O layer that wants windows to age while no frame arrives.

        Snapshots read the same numbers with or without it; it keeps later reads cheap.
        """
        if now_ms is not None and (self.now_ms is None or now_ms > self.now_ms):
            self.now_ms = now_ms
        now = self.now_ms
        if now is None:
            return
        for st in self.states.values():
            st.trades.advance(now)
            st.heat.advance(now)
            st.densities.tick(now)

    def invalidate(self, symbol: str | None = None) -> None:
        """Mark one book (or all) not ready until its next snapshot, e.g. after a reconnect."""
        if symbol is None:
            states = list(self.states.values())
        else:
            states = [self.states[symbol]] if symbol in self.states else []
        for st in states:
            st.book.invalidate()
            st.densities.lose_sync()

    def forget(self, symbol: str) -> None:
        """Drop everything held for ``symbol`` (book, trades, densities, latencies), e.g. once
        it is delisted; a later frame of it starts afresh. Unknown symbols are ignored."""
        self.states.pop(symbol, None)
        self.needs_resync.discard(symbol)

    def finish(self) -> None:
        """End of input: decide every density still waiting for its fate."""
        for st in self.states.values():
            st.densities.finish()

    # -- reading --------------------------------------------------------------------------

    def heat(self, symbol: str) -> Heat | None:
        """``symbol``'s heat at the pipeline clock (see :class:`~bybitmon.core.activity.Heat`);
        None before its first trade frame. A pure read, cheap enough to sort every symbol by."""
        st = self.states.get(symbol)
        if st is None or self.now_ms is None:
            return None
        return st.heat.read(self.now_ms)

    def trade_stats(self, symbol: str, window_ms: int | None = None) -> WindowStats | None:
        """Trade activity of ``symbol`` at the pipeline clock (None before any data)."""
        st = self.states.get(symbol)
        if st is None or self.now_ms is None:
            return None
        return st.trades.stats(self.now_ms, window_ms)

    def latency(self, symbol: str) -> tuple[float, float] | None:
        """(p50, p99) of receive time minus exchange ts over the latest frames, ms."""
        st = self.states.get(symbol)
        if st is None or not st.latency_ms:
            return None
        xs = sorted(st.latency_ms)
        return xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.99))]

    def price_decimals(self, symbol: str) -> int | None:
        """Decimals of ``symbol``'s tick as seen on the wire (None before its first snapshot)."""
        st = self.states.get(symbol)
        return st.price_decimals if st is not None else None

    def ladder_levels(self, symbol: str, rows: int = 12) -> dict:
        """The ``rows`` best levels per side, best first: ``{"bids": [(p, s)], "asks": [...]}``
        (empty while the book is not ready)."""
        st = self.states.get(symbol)
        if st is None or not st.book.ready:
            return {"bids": [], "asks": []}
        b = st.book
        return {"bids": b.bid.items()[-rows:][::-1], "asks": b.ask.items()[:rows]}

    def snapshot(self, symbol: str) -> Snapshot:
        """The version-1 snapshot of ``symbol`` at the pipeline clock (see README). A pure read:
        an unknown symbol gets an empty snapshot and no state."""
        now, trades, book, densities, health = self._snapshot_values(symbol)
        return Snapshot(ts=now, symbol=symbol, category=self.category, trades=TradesView(*trades),
                        book=BookView(*book), densities=tuple([DensityView(*d) for d in densities]),
                        health=Health(*health))

    def snapshot_json(self, symbol: str, newline: bool = False) -> bytes:
        """``snapshot(symbol).to_json()``, byte for byte, without building the typed snapshot
        (orjson writes a dict with the same keys in the same order as the same bytes): what
        ``--json`` prints every interval, ending with a line feed when ``newline`` (written by
        orjson, not appended to a copy)."""
        now, trades, book, densities, health = self._snapshot_values(symbol, True)
        return _dumps({"type": "snapshot", "v": SNAPSHOT_VERSION, "ts": now, "symbol": symbol,
                       "category": self.category, "trades": _keyed(_TRADES_TEMPLATE, _TRADES_KEYS, trades),
                       "book": _keyed(_BOOK_TEMPLATE, _BOOK_KEYS, book),
                       "densities": densities,
                       "health": _keyed(_HEALTH_TEMPLATE, _HEALTH_KEYS, health)}, option=_NEWLINE if newline else 0)

    def _snapshot_values(self, symbol: str, json: bool = False) -> tuple[int, tuple, tuple, list, tuple]:
        """The snapshot's values: (ts, trades, book, densities, health), each part in its
        view's field order; the densities as JSON objects (``DensityTracker.json_rows``) when
        ``json``."""
        st = self.states.get(symbol)
        if st is None:
            st = self._new_state(symbol)
        now = self.now_ms if self.now_ms is not None else 0
        ts = st.trades.stats(now)
        heat = st.heat.values(now)
        book = st.book
        if book.ready and book.mid is not None:
            depth = book.depth(self.bps)
            book_part = (True, book.best_bid, book.best_ask, book.mid, book.spread_bps, self.bps,
                         depth.bid_depth, depth.ask_depth, depth.bid_notional,  # type: ignore[union-attr]
                         depth.ask_notional, depth.imbalance, book.update_id, book.seq)  # type: ignore[union-attr]
        else:
            # Not ready (or one side empty): no number is shown rather than a wrong one.
            book_part = (book.ready, None, None, None, None, self.bps, None, None, None, None, None,
                         book.update_id, book.seq)
        c = book.counters
        return (now,
                (ts.window_s, ts.count, ts.tps, ts.tpm, ts.buy_volume, ts.sell_volume, ts.volume_delta,
                 ts.buy_sell_ratio, ts.last_price, None if heat is None else heat[0],
                 None if heat is None else heat[1]),
                book_part,
                st.densities.json_rows(now) if json else st.densities.rows(now),
                (st.frames, self.bad_frames, c.stale, c.gaps, c.crossed, c.resets, c.dropped,
                 self.clock_jumps, st.trades.overflow + c.trimmed))
