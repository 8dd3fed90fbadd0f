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
from ..core.snapshot import Side

__all__ = ["BybitWebSocketClient", "TradesAggregator", "OrderBookManager", "OrderBookSnapshot", "DensityInfo", "MAX_PENDING_CALLBACKS"]

log = logging.getLogger("bybitmon.facade")
_RETENTION_MS = 15 * 60_000
MAX_PENDING_CALLBACKS = 256  # async callbacks running at once per client; further ones are dropped


class BybitWebSocketClient:
    """Bybit v5 public stream with callbacks.

    Args:
        testnet: use Bybit's testnet.
        on_trade: called with each :class:`~bybitmon.core.events.TradeBatch` (a ``publicTrade`` frame).
        on_orderbook: called with each :class:`~bybitmon.core.events.BookUpdate` (snapshot or delta).
            Either may be a plain function or an ``async def``; an exception it raises is logged
            (once per kind) and never breaks the connection. At most ``MAX_PENDING_CALLBACKS``
            async callbacks run at once: while that many are pending, further events are not
            passed to the callback and are counted in ``dropped_callbacks`` (a warning is logged
            once). :meth:`stop` cancels the pending ones.
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
        self._tasks: set[asyncio.Task] = set()
        self.dropped_callbacks = 0

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
        """Close the connection and cancel the async callbacks still running."""
        if self._started:
            self._started = False
            await self.feed.stop()
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

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
        if len(self._tasks) >= MAX_PENDING_CALLBACKS:
            # Backpressure by dropping: a slow callback must not pile up tasks without bound.
            self.dropped_callbacks += 1
            if self.dropped_callbacks == 1:
                log.warning("callbacks are slower than the stream: %d pending; events are dropped "
                            "for the callbacks (counted in dropped_callbacks)", len(self._tasks))
            return
        try:
            result = cb(ev)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(lambda t: self._task_done(kind, t))
        except Exception as exc:  # a user callback must never kill the connection
            self._report(kind, exc)

    def _task_done(self, kind: str, task: asyncio.Future) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
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

    def stats(self, symbol: str, window: str | float | None = "60s", now_ms: int | None = None) -> WindowStats | None:
        """Activity over ``window`` at the pipeline clock (None before any data).

        ``window`` as :func:`~bybitmon.core.activity.parse_window` reads it: ``"60s"``, ``"5m"``,
        or a bare number of seconds (``60`` is a minute); None is the 60 s window.

        Raises:
            UsageError: ``now_ms`` given (the live pipeline reads at its own clock), or a bad,
                zero or negative window, or one longer than the 15 min kept.
        """
        if now_ms is not None:
            raise UsageError("the live aggregator reads at its own pipeline clock: now_ms is not supported")
        window_ms = None if window is None else parse_window(window)
        m = self._monitor
        if m is None:
            return None
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

    Every getter answers None while the book is not ready: before its first snapshot,
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

    def get_imbalance(self, symbol: str, range_bps: float = 50.0) -> float | None:
        """(bid − ask depth)/(bid + ask depth) within ``range_bps`` of mid; None when the book is
        not ready or there is no depth within the band."""
        st = self._book(symbol)
        if st is None:
            return None
        return st.book.depth(_bps(range_bps)).imbalance  # type: ignore[union-attr]

    def get_aggregated_depth(self, symbol: str, side: str, range_bps: float = 50.0) -> float | None:
        """Sum of sizes on ``side`` ("bid"/"ask") within ``range_bps`` of mid; None when the
        book is not ready.

        Raises:
            UsageError: ``side`` is neither, or ``range_bps`` is not a positive number.
        """
        key = side.lower() if isinstance(side, str) else ""
        if key not in ("bid", "bids", "buy", "ask", "asks", "sell"):
            raise UsageError(f"bad side {side!r}: use 'bid' or 'ask'")
        st = self._book(symbol)
        if st is None:
            return None
        d = st.book.depth(_bps(range_bps))
        return d.bid_depth if key in ("bid", "bids", "buy") else d.ask_depth  # type: ignore[union-attr]

    def get_density_at_price(self, symbol: str, price: float, side: str | None = None) -> DensityInfo | None:
        """The active density at ``price`` (None when there is none or the book is not ready)."""
        st = self._book(symbol)
        if st is None:
            return None
        d = st.densities.at_price(float(price), _side(side))
        if d is None:
            return None
        return DensityInfo(str(d.side), d.price, d.size, d.notional, d.x_median, d.since, str(d.state))


def _bps(range_bps: float) -> float:
    if isinstance(range_bps, bool) or not isinstance(range_bps, (int, float)) or not 0.0 < range_bps < float("inf"):
        raise UsageError(f"bad range_bps {range_bps!r}: use a positive number of basis points")
    return float(range_bps)


def _side(side: str | None) -> Side | None:
    if side is None:
        return None
    key = side.lower() if isinstance(side, str) else ""
    if key in ("bid", "bids", "buy"):
        return Side.BID
    if key in ("ask", "asks", "sell"):
        return Side.ASK
    raise UsageError(f"bad side {side!r}: use 'bid' or 'ask'")
