"""Async Bybit v5 public WebSocket client: connect, subscribe in batches, app-level ping,
stall watchdog, reconnect with backoff and resubscribe. Yields every frame with its local
receive time; it interprets only acks and pongs.

Bybit: "we recommend that you send the ping heartbeat packet every 20 seconds to maintain
the WebSocket connection" and "re-connect immediately" on a drop
(https://bybit-exchange.github.io/docs/v5/ws/connect). After a reconnect nothing is
remembered: every topic is subscribed again, and its book stays not-ready until the
fresh snapshot arrives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urlsplit

import orjson
import websockets
from websockets.asyncio.client import connect

from ..errors import UsageError
from ..core.limits import ARGS_CHARS_PER_CONN, CATEGORIES, SPOT_ARGS_PER_REQUEST
from ..core.protocol import ping_message, subscribe_message, unsubscribe_message

__all__ = ["MAINNET", "TESTNET", "resolve_url", "ConnHealth", "BybitClient"]

log = logging.getLogger("bybitmon.client")

MAINNET = "wss://stream.bybit.com"
TESTNET = "wss://stream-testnet.bybit.com"
# "the total length of the args array on one connection cannot exceed 21,000 characters"


def resolve_url(category: str, url: str | None = None, testnet: bool = False) -> str:
    """The WebSocket URL of a category's public stream.

    ``url`` (or the ``BYBITMON_URL`` environment variable) overrides the exchange: a base such as
    ``ws://127.0.0.1:8765`` gets ``/v5/public/<category>`` appended; a URL already ending in a
    ``/v5/public/<category>`` path has that category replaced by ``category``.
    """
    if category not in CATEGORIES:
        raise UsageError(f"bad category {category!r}: one of {', '.join(CATEGORIES)}")
    url = url or os.environ.get("BYBITMON_URL") or None
    if not url:
        return f"{TESTNET if testnet else MAINNET}/v5/public/{category}"
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise UsageError(f"bad URL {url!r}: use ws://HOST:PORT or wss://HOST[/v5/public/<category>]")
    path = parts.path.rstrip("/")
    if "/v5/public/" in path:
        path = path[: path.index("/v5/public/")]
    return f"{parts.scheme}://{parts.netloc}{path}/v5/public/{category}"


@dataclass(slots=True)
class ConnHealth:
    """What one connection has been through. Times are monotonic seconds."""

    label: str
    url: str
    state: str = "connecting"          # connecting | connected | reconnecting | stopped
    topics: int = 0
    reconnects: int = 0
    stalls: int = 0
    errors: int = 0
    frames: int = 0
    last_error: str = ""
    last_rx: float = 0.0
    connected_since: float | None = None


@dataclass(slots=True)
class _Conn:
    label: str
    topics: list[str] = field(default_factory=list)
    health: ConnHealth | None = None
    ws: object | None = None
    task: asyncio.Task | None = None
    pending: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # req_id -> (op, topics)
    last_ping: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def args_chars(self) -> int:
        return sum(len(t) for t in self.topics)


FrameCallback = Callable[[int, str, str], None]


class BybitClient:
    """One category's public stream over as many connections as its topics need.

    Args:
        category: ``spot``, ``linear``, ``inverse``.
        url / testnet: see :func:`resolve_url`.
        on_frame: called with ``(recv_ns, conn_label, raw_text)`` for every frame received,
            ``recv_ns`` taken with ``time.time_ns()`` the moment it was read.
        on_reconnect: called with the topics of a connection that was lost (their books are
            out of date until fresh snapshots arrive).
        on_subscribe_error: called once per topic the server refused, with its ``ret_msg``.
        max_topics_per_conn: topics per connection before another one is opened.
        ping_interval_s: app-level ping cadence (Bybit recommends 20 s).
        quiet_s / pong_timeout_s: after ``quiet_s`` without any frame a ping is sent at once;
            when still nothing arrives ``pong_timeout_s`` later the connection is declared
            stalled and replaced.
        backoff_initial_s / backoff_max_s: reconnect delays double from the first to the cap,
            with +-20 % jitter; a connection that stayed up 30 s starts over.
    """

    def __init__(self, category: str = "linear", *, url: str | None = None, testnet: bool = False,
                 on_frame: FrameCallback | None = None,
                 on_reconnect: Callable[[list[str]], None] | None = None,
                 on_subscribe_error: Callable[[str, str], None] | None = None,
                 on_state: Callable[[ConnHealth], None] | None = None,
                 max_topics_per_conn: int = 200, ping_interval_s: float = 20.0,
                 quiet_s: float = 5.0, pong_timeout_s: float = 5.0,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 open_timeout_s: float = 10.0, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.category = category
        self.url = resolve_url(category, url, testnet)
        self.on_frame = on_frame
        self.on_reconnect = on_reconnect
        self.on_subscribe_error = on_subscribe_error
        self.on_state = on_state
        self.max_topics_per_conn = max_topics_per_conn
        self.batch = SPOT_ARGS_PER_REQUEST
        self.ping_interval_s = ping_interval_s
        self.quiet_s = quiet_s
        self.pong_timeout_s = pong_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.open_timeout_s = open_timeout_s
        self.rng = rng or random.Random()
        self.clock = clock
        self.conns: list[_Conn] = []
        self.failed: dict[str, str] = {}       # topic -> ret_msg, reported once
        self.resyncs = 0
        self._started = False
        self._stopping = False
        self._last_resync: dict[str, float] = {}

    # -- public API -------------------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        return [t for c in self.conns for t in c.topics]

    @property
    def connected(self) -> bool:
        """True when every connection is up (and there is at least one)."""
        return bool(self.conns) and all(c.health.state == "connected" for c in self.conns)  # type: ignore[union-attr]

    @property
    def health(self) -> list[ConnHealth]:
        return [c.health for c in self.conns]  # type: ignore[misc]

    async def start(self) -> None:
        self._started = True
        self._stopping = False
        if not self.conns:
            self._conn_with_room("")  # connect now; topics may follow
        for c in self.conns:
            if c.task is None:
                c.task = asyncio.create_task(self._run(c), name=f"bybitmon-{c.label}")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [c.task for c in self.conns if c.task is not None]
        for c in self.conns:
            c.wake.set()
            ws = c.ws
            if ws is not None:
                try:
                    await asyncio.wait_for(ws.close(), 2)  # type: ignore[attr-defined]
                except Exception:
                    pass
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in self.conns:
            c.task = None
            c.health.state = "stopped"  # type: ignore[union-attr]
        self._started = False

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Add topics; they go to connections with room (new ones are opened as needed)."""
        new = [t for t in dict.fromkeys(topics) if t not in self.topics]
        for t in new:
            self.failed.pop(t, None)
        by_conn: dict[int, list[str]] = {}
        for t in new:
            c = self._conn_with_room(t)
            c.topics.append(t)
            c.health.topics = len(c.topics)  # type: ignore[union-attr]
            by_conn.setdefault(id(c), []).append(t)
        for c in self.conns:
            todo = by_conn.get(id(c))
            if todo and c.ws is not None and c.health.state == "connected":  # type: ignore[union-attr]
                await self._send_topics(c, "subscribe", todo)
        if self._started:
            await self.start()

    async def unsubscribe(self, topics: Iterable[str]) -> None:
        drop = set(topics)
        for c in self.conns:
            gone = [t for t in c.topics if t in drop]
            if not gone:
                continue
            c.topics = [t for t in c.topics if t not in drop]
            c.health.topics = len(c.topics)  # type: ignore[union-attr]
            if c.ws is not None and c.health.state == "connected":  # type: ignore[union-attr]
                await self._send_topics(c, "unsubscribe", gone)

    async def resync(self, topic: str, min_interval_s: float = 1.0) -> bool:
        """Ask for a fresh snapshot of ``topic`` (unsubscribe, then subscribe). Rate-limited."""
        now = self.clock()
        if now - self._last_resync.get(topic, -1e9) < min_interval_s:
            return False
        for c in self.conns:
            if topic in c.topics and c.ws is not None and c.health.state == "connected":  # type: ignore[union-attr]
                self._last_resync[topic] = now
                self.resyncs += 1
                await self._send_topics(c, "unsubscribe", [topic])
                await self._send_topics(c, "subscribe", [topic])
                return True
        return False

    # -- internals --------------------------------------------------------------------------

    def _conn_with_room(self, topic: str) -> _Conn:
        for c in self.conns:
            if len(c.topics) < self.max_topics_per_conn and c.args_chars() + len(topic) <= ARGS_CHARS_PER_CONN:
                return c
        c = _Conn(f"{self.category}#{len(self.conns) + 1}")
        c.health = ConnHealth(c.label, self.url)
        self.conns.append(c)
        return c

    async def _send_topics(self, c: _Conn, op: str, topics: list[str]) -> None:
        build = subscribe_message if op == "subscribe" else unsubscribe_message
        for i in range(0, len(topics), self.batch):
            chunk = topics[i:i + self.batch]
            msg = build(chunk)
            c.pending[orjson.loads(msg)["req_id"]] = (op, chunk)
            await c.ws.send(msg)  # type: ignore[union-attr]

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max_s, self.backoff_initial_s * (2 ** max(0, attempt - 1)))
        return base * self.rng.uniform(0.8, 1.2)

    def _set_state(self, c: _Conn, state: str) -> None:
        h = c.health
        if h.state != state:  # type: ignore[union-attr]
            h.state = state  # type: ignore[union-attr]
            if self.on_state is not None:
                self.on_state(h)  # type: ignore[arg-type]

    async def _run(self, c: _Conn) -> None:
        h = c.health
        assert h is not None
        attempt = 0
        proxy = None if urlsplit(self.url).hostname in ("127.0.0.1", "localhost", "::1") else True
        while not self._stopping:
            up_since = None
            try:
                async with connect(self.url, open_timeout=self.open_timeout_s, ping_interval=None,
                                   close_timeout=1, max_size=16 * 2**20, max_queue=1024,
                                   proxy=proxy) as ws:
                    c.ws = ws
                    c.pending.clear()
                    now = self.clock()
                    h.last_rx = now
                    c.last_ping = now
                    h.connected_since = up_since = now
                    self._set_state(c, "connected")
                    if c.topics:
                        await self._send_topics(c, "subscribe", list(c.topics))
                    watchdog = asyncio.create_task(self._watchdog(c, ws))
                    try:
                        await self._receive(c, ws)
                    finally:
                        watchdog.cancel()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
                h.errors += 1
                h.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("%s: %s", c.label, h.last_error)
            finally:
                c.ws = None
            if self._stopping:
                break
            h.connected_since = None
            if up_since is not None and self.clock() - up_since >= 30:
                attempt = 0
            attempt += 1
            h.reconnects += 1
            self._set_state(c, "reconnecting")
            if self.on_reconnect is not None and c.topics:
                self.on_reconnect(list(c.topics))
            try:
                await asyncio.wait_for(c.wake.wait(), self._backoff(attempt))
            except asyncio.TimeoutError:
                pass
            c.wake.clear()

    async def _receive(self, c: _Conn, ws) -> None:
        h = c.health
        on_frame = self.on_frame
        clock = self.clock
        label = c.label
        async for raw in ws:
            recv_ns = time.time_ns()
            h.last_rx = clock()
            h.frames += 1
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", "replace")
            if not raw.startswith('{"topic"'):
                self._control(c, raw)
            if on_frame is not None:
                on_frame(recv_ns, label, raw)

    def _control(self, c: _Conn, raw: str) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            c.health.errors += 1  # type: ignore[union-attr]
            return
        if type(msg) is not dict or "success" not in msg or msg.get("ret_msg") == "pong":
            return
        req = c.pending.pop(str(msg.get("req_id")), None) if msg.get("req_id") is not None else None
        if req is None and msg.get("op") in ("subscribe", "unsubscribe") and c.pending:
            # No req_id echoed: acks come in request order.
            req = c.pending.pop(next(iter(c.pending)))
        if req is None or msg.get("success") is True:
            return
        op, topics = req
        if op != "subscribe":
            return
        why = str(msg.get("ret_msg", "refused"))
        if len(topics) > 1:
            # One bad topic fails the whole request: ask again one by one to find it.
            asyncio.get_running_loop().create_task(self._retry_singly(c, topics))
            return
        topic = topics[0]
        if topic in c.topics:
            c.topics.remove(topic)
            c.health.topics = len(c.topics)  # type: ignore[union-attr]
        if topic not in self.failed:
            self.failed[topic] = why
            log.error("subscription to %s refused: %s", topic, why)
            if self.on_subscribe_error is not None:
                self.on_subscribe_error(topic, why)

    async def _retry_singly(self, c: _Conn, topics: list[str]) -> None:
        ws = c.ws
        if ws is None:
            return
        try:
            for t in topics:
                msg = subscribe_message([t])
                c.pending[orjson.loads(msg)["req_id"]] = ("subscribe", [t])
                await ws.send(msg)  # type: ignore[attr-defined]
        except websockets.exceptions.ConnectionClosed:
            pass

    async def _watchdog(self, c: _Conn, ws) -> None:
        h = c.health
        step = max(0.05, min(1.0, self.quiet_s / 4, self.pong_timeout_s / 4))
        try:
            while True:
                await asyncio.sleep(step)
                now = self.clock()
                silent = now - h.last_rx
                if silent > self.quiet_s + self.pong_timeout_s:
                    h.stalls += 1
                    h.last_error = f"stalled: nothing received for {silent:.1f} s"
                    log.warning("%s: %s; reconnecting", c.label, h.last_error)
                    ws.transport.abort()
                    return
                if now - c.last_ping >= self.ping_interval_s or (silent > self.quiet_s and now - c.last_ping > self.quiet_s):
                    c.last_ping = now
                    await ws.send(ping_message())
        except websockets.exceptions.ConnectionClosed:
            return

