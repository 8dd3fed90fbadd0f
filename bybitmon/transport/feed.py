"""A live feed: the client's frames into a Monitor (and a recorder), with book resyncs.

Watch, record and the library facade all use this, so they share one path from socket to
numbers: ``Monitor.feed(recv_ns, raw)``, the same call a replay makes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Iterable

from ..core.monitor import Monitor
from ..core.protocol import book_topic, parse_frame, topic_symbol, trade_topic
from ..errors import RecordingError, SubscriptionError
from .client import BybitClient, ConnHealth
from .tasks import TaskSet

__all__ = ["LiveFeed"]

log = logging.getLogger("bybitmon.feed")


class LiveFeed:
    """One category: a :class:`BybitClient` feeding a :class:`Monitor`.

    A book that loses sync (gap, crossed, reconnect, or a frame whose handling raised) is marked
    not ready at once; the feed asks the server for a fresh snapshot (unsubscribe + subscribe)
    and asks again every ``resync_retry_s`` until the book is ready.

    ``fatal`` holds what ended the feed and ``failed`` is set: a :class:`RecordingError` from the
    recorder, or an ``OSError`` raised while writing output from ``on_frame`` (a closed pipe,
    a full disk), which is not retried as a network fault. The command raises it after ``stop``.
    Refusals are kept in ``errors`` as :class:`SubscriptionError` objects.
    """

    def __init__(self, monitor: Monitor, *, url: str | None = None, testnet: bool = False,
                 depth: int = 50, recorder=None,
                 on_frame: Callable[[int, str, str], None] | None = None,
                 on_event: Callable[[object], None] | None = None,
                 on_subscribe_error: Callable[[SubscriptionError], None] | None = None,
                 resync_retry_s: float = 2.0, **client_kwargs) -> None:
        self.monitor = monitor
        self.depth = depth
        self.recorder = recorder
        self.extra_on_frame = on_frame
        self.on_event = on_event
        self.user_on_subscribe_error = on_subscribe_error
        self.resync_retry_s = resync_retry_s
        self.client = BybitClient(monitor.category, url=url, testnet=testnet, on_frame=self._on_frame,
                                  on_reconnect=self._on_reconnect,
                                  on_subscribe_error=self._on_subscribe_error,
                                  on_pipeline_error=self._on_pipeline_error, on_fatal=self._on_fatal,
                                  **client_kwargs)
        self.frames = 0
        self.fatal: BaseException | None = None
        self.failed = asyncio.Event()
        self._resync_wanted: dict[str, float] = {}
        self._tasks = TaskSet()
        self._maint: asyncio.Task | None = None
        self._resync_task: asyncio.Task | None = None
        self.errors: list[SubscriptionError] = []

    @property
    def health(self) -> list[ConnHealth]:
        return self.client.health

    def topics_for(self, symbols: Iterable[str], books: bool = True, trades: bool = True) -> list[str]:
        out = []
        for s in symbols:
            if books:
                out.append(book_topic(s, self.depth))
            if trades:
                out.append(trade_topic(s))
        return out

    async def start(self, symbols: Iterable[str] = ()) -> None:
        await self.client.subscribe(self.topics_for(symbols))
        await self.client.start()
        if self._maint is None:
            self._maint = self._tasks.spawn(self._maintain(), name="bybitmon-feed-resync")

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        self._maint = self._resync_task = None
        await self.client.stop()

    def _on_frame(self, recv_ns: int, conn: str, raw: str) -> None:
        self.frames += 1
        if self.recorder is not None and self.fatal is None:
            try:
                self.recorder.write(recv_ns, conn, raw)
            except RecordingError as exc:
                # Never drop frames silently: stop, and say why.
                self.fatal = exc
                self.failed.set()
        monitor = self.monitor
        if self.on_event is not None:
            ev = parse_frame(raw, recv_ns)
            monitor.feed_event(ev)
            self.on_event(ev)
        else:
            monitor.feed(recv_ns, raw)
        if monitor.needs_resync:
            for sym in monitor.needs_resync:
                self._resync_wanted.setdefault(sym, 0.0)
            monitor.needs_resync.clear()
            self._kick()
        if self.extra_on_frame is not None:
            self.extra_on_frame(recv_ns, conn, raw)

    def _on_reconnect(self, topics: list[str]) -> None:
        # The connection is gone: its books will be rebuilt from the snapshots that follow
        # the resubscribe, and must not be shown as ready until then.
        for t in topics:
            if t.startswith("orderbook."):
                self.monitor.invalidate(topic_symbol(t))

    def _on_subscribe_error(self, err: SubscriptionError) -> None:
        self.errors.append(err)
        if self.user_on_subscribe_error is not None:
            self.user_on_subscribe_error(err)

    def _on_pipeline_error(self, topic: str | None, exc: Exception) -> None:
        # A book frame may have been half applied: rebuild that book from a fresh snapshot.
        # (Trades cannot be fetched again; the client has logged the failure.)
        if topic is None or not topic.startswith("orderbook."):
            return
        sym = topic_symbol(topic)
        if sym in self.monitor.states:
            self.monitor.invalidate(sym)
            self._resync_wanted.setdefault(sym, 0.0)
            self._kick()

    def _on_fatal(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.failed.set()

    def _kick(self) -> None:
        # One resync pass at a time; _maintain retries whatever is still wanted.
        if self._resync_task is None or self._resync_task.done():
            self._resync_task = self._tasks.spawn(self._resync_due(), name="bybitmon-feed-resync-now")

    async def _resync_due(self) -> None:
        now = time.monotonic()
        for sym, last in list(self._resync_wanted.items()):
            st = self.monitor.states.get(sym)
            if st is not None and st.book.ready:
                del self._resync_wanted[sym]
                continue
            if now - last >= self.resync_retry_s:
                if await self.client.resync(book_topic(sym, self.depth), min_interval_s=0.0):
                    self._resync_wanted[sym] = now

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(min(0.5, self.resync_retry_s / 2))
            if self._resync_wanted:
                await self._resync_due()
