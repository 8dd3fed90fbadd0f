"""The seed's library API as a thin async facade over the live client and the sans-I/O core.

    from bybitmon import TradesAggregator, OrderBookManager, BybitWebSocketClient

Code written for the earlier system runs with only that import line changed. One deliberate
difference: **no fallback to simulated data**. When the exchange cannot be reached the facade
keeps reconnecting, ``connected`` stays False, the getters return None (or 0 for counts and
rates) and a warning is logged. Simulated data only comes from ``bybitmon serve --simulate``
or ``bybitmon replay --simulate``, when asked for.

Where to connect: the real exchange by default, ``testnet=True`` for the testnet, and the
``BYBITMON_URL`` environment variable overrides either (see :func:`bybitmon.transport.client.resolve_url`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable

from ..core.activity import SeedTradeGetters, WindowStats, parse_window
from ..errors import UsageError
from ..core.events import BookUpdate, TradeBatch
from ..transport.feed import LiveFeed
from ..core.monitor import Monitor
from ..core.protocol import book_topic, trade_topic

__all__ = ["BybitWebSocketClient", "TradesAggregator", "OrderBookManager", "OrderBookSnapshot", "DensityInfo"]

log = logging.getLogger("bybitmon.facade")
_RETENTION_MS = 15 * 60_000


class BybitWebSocketClient:
    """Bybit v5 public stream with callbacks.

    Args:
        testnet: use Bybit's testnet.
        on_trade: called with each :class:`~bybitmon.core.events.TradeBatch` (a ``publicTrade`` frame).
        on_orderbook: called with each :class:`~bybitmon.core.events.BookUpdate` (snapshot or delta).
            Either may be a plain function or an ``async def``; an exception it raises is logged
            (once per kind) and never breaks the connection.
        category: ``spot`` (the seed's default), ``linear`` or ``inverse``.
        url: a server instead of Bybit (``BYBITMON_URL`` does the same).
    """

    def __init__(self, testnet: bool = False, on_trade: Callable[[TradeBatch], Any] | None = None,
                 on_orderbook: Callable[[BookUpdate], Any] | None = None, category: str = "spot",
                 url: str | None = None, **client_kwargs: Any) -> None:
        self.on_trade = on_trade
        self.on_orderbook = on_orderbook
        self.category = category
        self.monitor = Monitor(category, 60_000, retention_ms=_RETENTION_MS)
        self.feed = LiveFeed(self.monitor, url=url, testnet=testnet, on_event=self._dispatch, **client_kwargs)
        self._reported: set[tuple[str, str]] = set()
        self._started = False
        self._users = 0

    @property
    def connected(self) -> bool:
        """True while every connection is up."""
        return self.feed.client.connected

    @property
    def url(self) -> str:
        return self.feed.client.url

    async def start(self) -> None:
        if not self._started:
            self._started = True
            await self.feed.start()

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.feed.stop()

    async def subscribe_trades(self, symbol: str) -> None:
        await self.feed.client.subscribe([trade_topic(symbol.upper())])

    async def subscribe_orderbook(self, symbol: str, depth: int = 50) -> None:
        self.feed.depth = depth
        await self.feed.client.subscribe([book_topic(symbol.upper(), depth)])

    async def unsubscribe_trades(self, symbol: str) -> None:
        await self.feed.client.unsubscribe([trade_topic(symbol.upper())])

    async def unsubscribe_orderbook(self, symbol: str, depth: int = 50) -> None:
        await self.feed.client.unsubscribe([book_topic(symbol.upper(), depth)])

    def _dispatch(self, ev: object) -> None:
        if type(ev) is TradeBatch:
            self._call("on_trade", self.on_trade, ev)
        elif type(ev) is BookUpdate:
            self._call("on_orderbook", self.on_orderbook, ev)

    def _call(self, kind: str, cb: Callable[[Any], Any] | None, ev: object) -> None:
        if cb is None:
            return
        try:
            result = cb(ev)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(lambda t: self._task_done(kind, t))
        except Exception as exc:  # a user callback must never kill the connection
            self._report(kind, exc)

    def _task_done(self, kind: str, task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._report(kind, task.exception())  # type: ignore[arg-type]

    def _report(self, kind: str, exc: BaseException) -> None:
        key = (kind, type(exc).__name__)
        if key not in self._reported:
            self._reported.add(key)
            log.error("%s callback raised %s: %s (further ones of this kind are not logged)",
                      kind, type(exc).__name__, exc)


# One shared client per (category, url, testnet): two aggregators in one process use one
# connection per category rather than one each.
_SHARED: dict[tuple[str, str | None, bool], BybitWebSocketClient] = {}


async def _acquire(category: str, url: str | None, testnet: bool) -> BybitWebSocketClient:
    key = (category, url, testnet)
    ws = _SHARED.get(key)
    if ws is None:
        ws = _SHARED[key] = BybitWebSocketClient(testnet=testnet, category=category, url=url)
    ws._users += 1
    await ws.start()
    return ws


async def _release(ws: BybitWebSocketClient) -> None:
    ws._users -= 1
    if ws._users <= 0:
        await ws.stop()
        for k, v in list(_SHARED.items()):
            if v is ws:
                del _SHARED[k]


class _Facade:
    def __init__(self, testnet: bool = False, category: str = "spot", url: str | None = None) -> None:
        self.testnet = testnet
        self.category = category
        self.url = url
        self.bybit_ws: BybitWebSocketClient | None = None
        self.symbols: list[str] = []

    async def start(self) -> None:
        """Connect (shared per category). Returns at once; data follows as it arrives."""
        if self.bybit_ws is None:
            self.bybit_ws = await _acquire(self.category, self.url, self.testnet)
            for s in self.symbols:
                await self._subscribe(s)
            if not self.bybit_ws.connected:
                await _first_connect(self.bybit_ws)

    async def stop(self) -> None:
        if self.bybit_ws is not None:
            ws, self.bybit_ws = self.bybit_ws, None
            await _release(ws)

    async def subscribe(self, symbol: str) -> None:
        symbol = symbol.upper()
        if symbol not in self.symbols:
            self.symbols.append(symbol)
        if self.bybit_ws is not None:
            await self._subscribe(symbol)

    async def unsubscribe(self, symbol: str) -> None:
        symbol = symbol.upper()
        if symbol in self.symbols:
            self.symbols.remove(symbol)
            if self.bybit_ws is not None:
                await self._unsubscribe(symbol)

    @property
    def _monitor(self) -> Monitor | None:
        return self.bybit_ws.monitor if self.bybit_ws is not None else None

    async def _subscribe(self, symbol: str) -> None:
        raise NotImplementedError

    async def _unsubscribe(self, symbol: str) -> None:
        raise NotImplementedError


async def _first_connect(ws: BybitWebSocketClient, wait_s: float = 5.0) -> None:
    # The seed's start() returned once connected; give the connection a moment, then go on
    # (disconnected: the client keeps retrying in the background).
    loop = asyncio.get_running_loop()
    end = loop.time() + wait_s
    while not ws.connected and loop.time() < end:
        await asyncio.sleep(0.05)
    if not ws.connected:
        log.warning("not connected to %s yet; retrying in the background (no simulated data is shown)", ws.url)


class TradesAggregator(_Facade, SeedTradeGetters):
    """Trade activity per symbol (the seed's ``TradesAggregator``), fed by the live stream.

    Getters read at the pipeline clock (latest exchange ``ts`` received); windows up to 15 min.
    """

    async def _subscribe(self, symbol: str) -> None:
        await self.bybit_ws.subscribe_trades(symbol)  # type: ignore[union-attr]

    async def _unsubscribe(self, symbol: str) -> None:
        await self.bybit_ws.unsubscribe_trades(symbol)  # type: ignore[union-attr]

    def stats(self, symbol: str, window: str | int | None = "60s", now_ms: int | None = None) -> WindowStats | None:
        """Activity over ``window`` at the pipeline clock (None before any data).

        Raises:
            UsageError: ``now_ms`` given: the live pipeline reads at its own clock.
        """
        if now_ms is not None:
            raise UsageError("the live aggregator reads at its own pipeline clock: now_ms is not supported")
        m = self._monitor
        if m is None:
            return None
        window_ms = parse_window(window) if isinstance(window, str) else window
        return m.trade_stats(symbol.upper(), window_ms)


@dataclass(frozen=True, slots=True)
class OrderBookSnapshot:
    """Top of book at ``timestamp_ms`` (exchange time)."""

    symbol: str
    timestamp_ms: int
    best_bid: float
    best_ask: float
    mid_price: float
    spread_bps: float
    update_id: int | None


@dataclass(frozen=True, slots=True)
class DensityInfo:
    side: str
    price: float
    size: float
    notional: float
    x_median: float
    since_ms: int
    state: str


class OrderBookManager(_Facade):
    """Order books per symbol (the seed's ``OrderBookManager``), fed by the live stream.

    Every getter answers None (or 0.0) while the book is not ready: before its first snapshot,
    after a gap or a crossed update, and after a reconnect until the fresh snapshot.
    """

    def __init__(self, testnet: bool = False, category: str = "spot", url: str | None = None, depth: int = 50) -> None:
        super().__init__(testnet, category, url)
        self.depth = depth

    async def _subscribe(self, symbol: str) -> None:
        await self.bybit_ws.subscribe_orderbook(symbol, self.depth)  # type: ignore[union-attr]

    async def _unsubscribe(self, symbol: str) -> None:
        await self.bybit_ws.unsubscribe_orderbook(symbol, self.depth)  # type: ignore[union-attr]

    def _book(self, symbol: str):
        m = self._monitor
        st = m.states.get(symbol.upper()) if m is not None else None
        if st is None or not st.book.ready or st.book.mid is None:
            return None
        return st

    def get_snapshot(self, symbol: str) -> OrderBookSnapshot | None:
        st = self._book(symbol)
        if st is None:
            return None
        b = st.book
        return OrderBookSnapshot(symbol.upper(), b.ts_ms or 0, b.best_bid, b.best_ask, b.mid, b.spread_bps, b.update_id)  # type: ignore[arg-type]

    def get_imbalance(self, symbol: str, range_bps: float = 50.0) -> float:
        """(bid − ask depth)/(bid + ask depth) within ``range_bps`` of mid; 0.0 when not ready."""
        st = self._book(symbol)
        if st is None:
            return 0.0
        return st.book.depth(range_bps).imbalance or 0.0

    def get_aggregated_depth(self, symbol: str, side: str, range_bps: float = 50.0) -> float:
        """Sum of sizes on ``side`` ("bid"/"ask") within ``range_bps`` of mid; 0.0 when not ready."""
        st = self._book(symbol)
        if st is None:
            return 0.0
        d = st.book.depth(range_bps)
        if side.lower() in ("bid", "bids", "buy"):
            return d.bid_depth
        if side.lower() in ("ask", "asks", "sell"):
            return d.ask_depth
        raise ValueError(f"side must be 'bid' or 'ask', not {side!r}")

    def get_density_at_price(self, symbol: str, price: float, side: str | None = None) -> DensityInfo | None:
        """The active density at ``price`` (None when there is none or the book is not ready)."""
        st = self._book(symbol)
        if st is None:
            return None
        d = st.densities.at_price(float(price), side)
        if d is None:
            return None
        return DensityInfo(d.side, d.price, d.size, d.notional, d.x_median, d.since_ms, d.state)
