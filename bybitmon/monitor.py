"""The pipeline: raw frames in, per-symbol books, trade windows and densities out. Sans-I/O.

``Monitor.feed(recv_ns, raw)`` is the one entry point for watch, record and replay alike, so a
replay reproduces the live numbers exactly. The pipeline clock ``now_ms`` is the largest
exchange ``ts`` of any well-formed frame fed so far: replay never looks at the wall clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .activity import TradeWindow, WindowStats
from .book import Applied, OrderBook
from .densities import DensityTracker
from .events import BadFrame, BookUpdate, Event, OtherTopic, TradeBatch, UnknownFrame
from .protocol import parse_frame

__all__ = ["Monitor", "SymbolState", "SNAPSHOT_VERSION"]

SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class SymbolState:
    symbol: str
    book: OrderBook
    trades: TradeWindow
    densities: DensityTracker
    frames: int = 0
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=512))


class Monitor:
    """Books, trade activity and densities for the symbols of one category.

    Args:
        category: ``linear``, ``spot``, ``inverse``... (frames carry no category; the source knows it).
        window_ms: trade window W; trades with ``now - W < T <= now`` count.
        bps: depth band for depth/notional/imbalance, in basis points of mid.
        density_x: a level is a density when its size >= ``density_x`` x its side's median.
        density_min_notional: ... and its price x size is at least this (quote units).
        retention_ms: keep trades this long so longer windows can be asked for (default W).
    """

    def __init__(self, category: str = "linear", window_ms: int = 60_000, bps: float = 50.0,
                 density_x: float = 5.0, density_min_notional: float = 0.0,
                 retention_ms: int | None = None) -> None:
        self.category = category
        self.window_ms = window_ms
        self.retention_ms = retention_ms
        self.bps = bps
        self.density_x = density_x
        self.density_min_notional = density_min_notional
        self.now_ms: int | None = None
        self.states: dict[str, SymbolState] = {}
        self.frames = 0
        self.bad_frames = 0
        self.bad_reasons: dict[str, int] = {}
        self.needs_resync: set[str] = set()

    @property
    def symbols(self) -> list[str]:
        return sorted(self.states)

    def state(self, symbol: str) -> SymbolState:
        st = self.states.get(symbol)
        if st is None:
            st = self.states[symbol] = SymbolState(
                symbol, OrderBook(symbol), TradeWindow(self.window_ms, self.retention_ms),
                DensityTracker(self.density_x, self.density_min_notional),
            )
        return st

    def feed(self, recv_ns: int, raw: str | bytes) -> Event:
        """Parse one raw frame and apply it; returns the event (never raises for bad input)."""
        ev = parse_frame(raw, recv_ns)
        self.feed_event(ev)
        return ev

    def feed_event(self, ev: Event) -> None:
        self.frames += 1
        cls = type(ev)
        if cls is BookUpdate:
            self._clock(ev.ts_ms)
            st = self.state(ev.symbol)
            st.frames += 1
            self._latency(st, ev.recv_ns, ev.ts_ms)
            dens = st.densities
            dens.tick(self.now_ms)
            applied = st.book.apply(ev)
            dens.on_book(st.book, ev, applied)
            if applied is Applied.GAP or applied is Applied.CROSSED:
                self.needs_resync.add(ev.symbol)
        elif cls is TradeBatch:
            self._clock(ev.ts_ms)
            st = self.state(ev.symbol)
            st.frames += 1
            self._latency(st, ev.recv_ns, ev.ts_ms)
            st.densities.tick(self.now_ms)
            now = self.now_ms
            add = st.trades.add
            fresh = [t for t in ev.trades if add(t, now)]
            if fresh:
                st.densities.on_trades(fresh)
        elif cls is BadFrame:
            self.bad_frames += 1
            self.bad_reasons[ev.reason] = self.bad_reasons.get(ev.reason, 0) + 1
        elif cls is OtherTopic or cls is UnknownFrame:
            if ev.ts_ms is not None:
                self._clock(ev.ts_ms)

    def _clock(self, ts_ms: int) -> None:
        if self.now_ms is None or ts_ms > self.now_ms:
            self.now_ms = ts_ms

    @staticmethod
    def _latency(st: SymbolState, recv_ns: int, ts_ms: int) -> None:
        if recv_ns:
            st.latency_ms.append(recv_ns / 1e6 - ts_ms)

    def invalidate(self, symbol: str | None = None) -> None:
        """Mark one book (or all) not ready until its next snapshot, e.g. after a reconnect."""
        if symbol is None:
            states = list(self.states.values())
        else:
            states = [self.states[symbol]] if symbol in self.states else []
        for st in states:
            st.book.invalidate()
            st.densities.lose_sync()

    def finish(self) -> None:
        """End of input: decide every density still waiting for its fate."""
        for st in self.states.values():
            st.densities.finish()

    # -- reading --------------------------------------------------------------------------

    def trade_stats(self, symbol: str, window_ms: int | None = None) -> WindowStats | None:
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

    def ladder_levels(self, symbol: str, rows: int = 12) -> dict:
        """The ``rows`` best levels per side, best first: ``{"bids": [(p, s)], "asks": [...]}``
        (empty while the book is not ready)."""
        st = self.states.get(symbol)
        if st is None or not st.book.ready:
            return {"bids": [], "asks": []}
        b = st.book
        return {
            "bids": [(p, b.bids[p]) for p in reversed(b.bid_px[-rows:])],
            "asks": [(p, b.asks[p]) for p in b.ask_px[:rows]],
        }

    def snapshot(self, symbol: str) -> dict:
        """The version-1 snapshot of ``symbol`` at the pipeline clock (see README)."""
        st = self.state(symbol)
        now = self.now_ms if self.now_ms is not None else 0
        st.densities.tick(now)
        ts = st.trades.stats(now)
        book = st.book
        ready = book.ready and book.mid is not None
        if ready:
            depth = book.depth(self.bps)
            book_part = {
                "ready": True,
                "best_bid": book.best_bid,
                "best_ask": book.best_ask,
                "mid": book.mid,
                "spread_bps": book.spread_bps,
                "bps": self.bps,
                "bid_depth": depth.bid_depth,
                "ask_depth": depth.ask_depth,
                "bid_notional": depth.bid_notional,
                "ask_notional": depth.ask_notional,
                "imbalance": depth.imbalance,
                "update_id": book.update_id,
                "seq": book.seq,
            }
        else:
            book_part = {
                "ready": False, "best_bid": None, "best_ask": None, "mid": None,
                "spread_bps": None, "bps": self.bps, "bid_depth": None, "ask_depth": None,
                "bid_notional": None, "ask_notional": None, "imbalance": None,
                "update_id": book.update_id, "seq": book.seq,
            }
        c = book.counters
        return {
            "type": "snapshot",
            "v": SNAPSHOT_VERSION,
            "ts": now,
            "symbol": symbol,
            "category": self.category,
            "trades": {
                "window_s": ts.window_s,
                "count": ts.count,
                "tps": ts.tps,
                "tpm": ts.tpm,
                "buy_volume": ts.buy_volume,
                "sell_volume": ts.sell_volume,
                "volume_delta": ts.volume_delta,
                "buy_sell_ratio": ts.buy_sell_ratio,
                "last_price": ts.last_price,
            },
            "book": book_part,
            "densities": [d.as_dict() for d in st.densities.listing()],
            "health": {
                "frames": st.frames,
                "bad_frames": self.bad_frames,
                "stale": c.stale,
                "gaps": c.gaps,
                "crossed": c.crossed,
                "resets": c.resets,
                "dropped": c.dropped,
            },
        }

