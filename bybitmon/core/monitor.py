"""The pipeline: raw frames in, per-symbol books, trade windows and densities out. Sans-I/O.

``Monitor.feed(recv_ns, raw)`` is the one entry point for watch, record and replay alike, so a
replay reproduces the live numbers exactly. The pipeline clock ``now_ms`` is the largest
exchange ``ts`` of any well-formed frame fed so far: replay never looks at the wall clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import orjson

from .activity import TradeWindow, WindowStats
from .book import _CROSSED, _DELTA, _DROPPED, _GAP, _SNAPSHOT, _STALE, OrderBook
from .densities import DensityTracker
from .events import BadFrame, BookUpdate, Event, Level, Trade, TradeBatch
from .protocol import book_fields, parse_frame, topic_symbol, trade_fields

__all__ = ["Monitor", "SymbolState", "SNAPSHOT_VERSION"]

SNAPSHOT_VERSION = 1
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)


@dataclass(slots=True)
class SymbolState:
    symbol: str
    book: OrderBook
    trades: TradeWindow
    densities: DensityTracker
    frames: int = 0
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=512))
    price_decimals: int | None = None   # decimals of the tick, as seen on the wire (for display)


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
    """

    def __init__(self, category: str = "linear", window_ms: int = 60_000, bps: float = 50.0,
                 density_x: float = 5.0, density_min_notional: float = 0.0,
                 retention_ms: int | None = None, density_list_max: int = 20) -> None:
        self.category = category
        self.window_ms = window_ms
        self.retention_ms = retention_ms
        self.bps = bps
        self.density_x = density_x
        self.density_min_notional = density_min_notional
        self.density_list_max = density_list_max
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
                DensityTracker(self.density_x, self.density_min_notional, list_max=self.density_list_max),
            )
        return st

    def feed(self, recv_ns: int, raw: str | bytes) -> None:
        """Apply one raw frame (never raises for bad input).

        The hot path: book and trade frames go from JSON straight into the book and the
        window, without building event objects. It is equivalent to
        ``feed_event(parse_frame(raw, recv_ns))``, which a test checks frame by frame.
        """
        try:
            msg = _loads(raw)
        except _JSONDecodeError:
            self.feed_event(parse_frame(raw, recv_ns))
            return
        if type(msg) is not dict:
            self.feed_event(parse_frame(raw, recv_ns))
            return
        topic = msg.get("topic")
        if type(topic) is str:
            try:
                if topic.startswith("orderbook."):
                    f = book_fields(msg, topic)
                    if f is not None:
                        self.frames += 1
                        self._book(recv_ns, *f)
                        return
                elif topic.startswith("publicTrade."):
                    ts, trades = trade_fields(msg, topic)
                    self.frames += 1
                    self._trades(recv_ns, topic_symbol(topic), ts, trades)
                    return
            except _MALFORMED:
                self.feed_event(parse_frame(raw, recv_ns))  # counted as a bad frame
                return
        # Any other object (tickers, kline, acks, pongs, unknown): only the clock moves.
        self.frames += 1
        ts = msg.get("ts")
        if type(ts) is int:
            self._clock(ts)

    def feed_event(self, ev: Event) -> None:
        """Apply one parsed event."""
        self.frames += 1
        cls = type(ev)
        if cls is BookUpdate:
            self._book(ev.recv_ns, ev.symbol, ev.depth, ev.ts_ms, ev.cts_ms, ev.update_id, ev.seq,
                       ev.is_snapshot, ev.bids, ev.asks)
        elif cls is TradeBatch:
            self._trades(ev.recv_ns, ev.symbol, ev.ts_ms, ev.trades)
        elif cls is BadFrame:
            self.bad_frames += 1
            self.bad_reasons[ev.reason] = self.bad_reasons.get(ev.reason, 0) + 1
        elif ev.ts_ms is not None:  # other topics, acks, pongs, unknown objects: the clock only
            self._clock(ev.ts_ms)

    def _arrive(self, recv_ns: int, symbol: str, ts_ms: int) -> SymbolState:
        """What every book or trade frame does first: move the clock, count the frame, note
        its latency, and settle densities whose grace period is over."""
        now = self.now_ms
        if now is None or ts_ms > now:
            self.now_ms = now = ts_ms
        st = self.states.get(symbol)
        if st is None:
            st = self.state(symbol)
        st.frames += 1
        if recv_ns:
            st.latency_ms.append(recv_ns / 1e6 - ts_ms)
        dens = st.densities
        if dens.n_ending and now >= dens.next_decide_ms:
            dens.tick(now)
        return st

    def _book(self, recv_ns: int, symbol: str, depth: int, ts_ms: int, cts_ms: int | None, u: int,
              seq: int | None, is_snapshot: bool, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        st = self._arrive(recv_ns, symbol, ts_ms)
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

    def _trades(self, recv_ns: int, symbol: str, ts_ms: int, trades: Sequence[Trade]) -> None:
        st = self._arrive(recv_ns, symbol, ts_ms)
        dens = st.densities
        fresh = st.trades.add_many(trades, self.now_ms)
        if fresh and (dens.n_active or dens.n_ending):
            dens.on_trades(fresh)

    def _clock(self, ts_ms: int) -> None:
        if self.now_ms is None or ts_ms > self.now_ms:
            self.now_ms = ts_ms

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
        if book.ready and book.mid is not None:
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
            # Not ready (or one side empty): no number is shown rather than a wrong one.
            book_part = {
                "ready": book.ready, "best_bid": None, "best_ask": None, "mid": None,
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
            "densities": [d.as_dict() for d in st.densities.listing(now)],
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

