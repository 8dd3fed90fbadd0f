"""Async Bybit v5 public WebSocket client: connect, subscribe in batches, app-level ping,
stall watchdog, reconnect with backoff and resubscribe. Yields every frame with its local
receive time; it interprets only acks and pongs.

Bybit: "we recommend that you send the ping heartbeat packet every 20 seconds to maintain
the WebSocket connection" and "re-connect immediately" on a drop
(https://bybit-exchange.github.io/docs/v5/ws/connect). After a reconnect nothing is
remembered: every topic is subscribed again, and its book stays not-ready until the
fresh snapshot arrives.

What the client lets through: frames of topics this connection subscribed, and frames without
a topic (acks, pongs, junk, which the pipeline counts). A frame for any other topic is counted
in ``ConnHealth.unsubscribed`` and dropped here, before it can create per-symbol state.

Errors: websockets, OSError and timeout errors met on the socket become :class:`FeedClosed`
(:class:`map_network_errors`) and make the connection reconnect. An exception raised by the
frame handler (the pipeline) is not a network fault: an ``OSError`` or
:class:`~bybitmon.errors.OutputError` there is an *output* error (a closed stdout pipe, a full
disk), which ends the client (``fatal``, ``on_fatal``); any other
exception is logged (at most one line per 10 s per connection), counted in
``ConnHealth.pipeline_errors`` and reported to ``on_pipeline_error`` so the frame's book is
resynced, and the connection goes on.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
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

from ..core.limits import ARGS_CHARS_PER_CONN, CATEGORIES, SPOT_ARGS_PER_REQUEST
from ..core.protocol import ping_message, subscribe_message, unsubscribe_message
from ..errors import printable
from ..errors import FeedClosed, OutputError, SubscriptionError, UsageError
from .tasks import TaskSet
from .timing import WatchdogAction, backoff_delay, next_attempt, watchdog_decision

__all__ = ["MAINNET", "TESTNET", "resolve_url", "ConnState", "ConnHealth", "BybitClient",
           "map_network_errors", "frame_topic"]

log = logging.getLogger("bybitmon.client")

MAINNET = "wss://stream.bybit.com"
TESTNET = "wss://stream-testnet.bybit.com"
_TOPIC_PREFIX = '{"topic":"'
_LOG_EVERY_S = 10.0


def resolve_url(category: str, url: str | None = None, testnet: bool = False) -> str:
    """The WebSocket URL of a category's public stream.

    ``url`` (or the ``BYBITMON_URL`` environment variable) overrides the exchange: a base such as
    ``ws://127.0.0.1:8765`` gets ``/v5/public/<category>`` appended; a URL already ending in a
    ``/v5/public/<category>`` path has that category replaced by ``category``.
    """
    if category not in CATEGORIES:
        raise UsageError(f"bad category {printable(category, 40)!r}: one of {', '.join(CATEGORIES)}")
    url = url or os.environ.get("BYBITMON_URL") or None
    if not url:
        return f"{TESTNET if testnet else MAINNET}/v5/public/{category}"
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise UsageError(f"bad URL {printable(url, 100)!r}: use ws://HOST:PORT or wss://HOST[/v5/public/<category>]")
    path = parts.path.rstrip("/")
    if "/v5/public/" in path:
        path = path[: path.index("/v5/public/")]
    return f"{parts.scheme}://{parts.netloc}{path}/v5/public/{category}"


# Errors met on the socket: the connection is gone (or never came up).
_NETWORK_ERRORS = (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException)


class map_network_errors:
    """Context manager turning websockets, OSError and timeout errors into :class:`FeedClosed`
    (``raise FeedClosed(...) from exc``), as httpx's ``map_httpcore_exceptions`` does.

    Wrap only socket operations with it: an ``OSError`` from anything else (writing output)
    is not a network fault and must not be mapped.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> map_network_errors:
        return self

    def __exit__(self, typ: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is not None and isinstance(exc, _NETWORK_ERRORS):
            raise FeedClosed(f"{self.what}: {_describe(exc)}") from exc
        return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc)
    return printable(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, 200)


def frame_topic(raw: str) -> str | None:
    """The topic of a frame in Bybit's layout (``{"topic":"...``), read without parsing it."""
    if raw.startswith(_TOPIC_PREFIX):
        end = raw.find('"', 10)
        if end > 10:
            return raw[10:end]
    return None


class ConnState(enum.StrEnum):
    """Where one connection is. A ``StrEnum``: it compares and prints as its value."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(slots=True)
class ConnHealth:
    """What one connection has been through. Times are monotonic seconds (the client's clock)."""

    label: str
    url: str
    state: ConnState = ConnState.CONNECTING
    topics: int = 0
    reconnects: int = 0
    stalls: int = 0
    errors: int = 0
    frames: int = 0
    unsubscribed: int = 0          # frames for topics not subscribed here: counted, dropped
    pipeline_errors: int = 0       # exceptions the frame handler raised (the book was resynced)
    backoff_s: float = 0.0         # the wait before the current / last reconnect attempt
    last_error: str = ""
    last_rx: float = 0.0
    connected_since: float | None = None


@dataclass(slots=True)
class _Conn:
    label: str
    health: ConnHealth
    topics: list[str] = field(default_factory=list)
    topic_set: set[str] = field(default_factory=set)
    ws: object | None = None
    task: asyncio.Task | None = None
    pending: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # req_id -> (op, topics)
    last_ping: float = 0.0
    delivered: bool = False        # a data frame arrived on the current connection
    stall_reason: str = ""
    last_pipeline_log: float = float("-inf")
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def args_chars(self) -> int:
        return sum(len(t) for t in self.topics)

    def add(self, topic: str) -> None:
        self.topics.append(topic)
        self.topic_set.add(topic)
        self.health.topics = len(self.topics)

    def remove(self, topics: Iterable[str]) -> None:
        drop = set(topics)
        self.topics = [t for t in self.topics if t not in drop]
        self.topic_set -= drop
        self.health.topics = len(self.topics)


class _OutputFailed(Exception):
    """Carries an output error the frame handler raised out of the socket code, unmapped."""

    def __init__(self, error: OSError | OutputError) -> None:
        super().__init__(str(error))
        self.error = error


FrameCallback = Callable[[int, str, str], None]


class BybitClient:
    """One category's public stream over as many connections as its topics need.

    Args:
        category: ``spot``, ``linear``, ``inverse``.
        url / testnet: see :func:`resolve_url`.
        on_frame: called with ``(recv_ns, conn_label, raw_text)`` for every frame let through,
            ``recv_ns`` taken with ``time.time_ns()`` the moment it was read.
        on_reconnect: called with the topics of a connection that was lost (their books are
            out of date until fresh snapshots arrive).
        on_subscribe_error: called once per topic the server refused, with a
            :class:`~bybitmon.errors.SubscriptionError` (``.topics``, ``.reason``).
        on_pipeline_error: called with ``(topic or None, exception)`` when ``on_frame`` raised
            something other than an output error.
        on_fatal: called with the ``OSError`` or ``OutputError`` ``on_frame`` raised (writing
            output failed); the connection that met it stops, and ``fatal`` holds it.
        max_topics_per_conn: topics per connection before another one is opened.
        ping_interval_s / quiet_s / pong_timeout_s: see :func:`~bybitmon.transport.timing.watchdog_decision`.
        backoff_initial_s / backoff_max_s: reconnect delays double from the first to the cap,
            with +-20 % jitter (``rng``); see :func:`~bybitmon.transport.timing.next_attempt`
            for when they start over.
        clock / sleep: the watchdog's time source and its way to wait (tests pass a fake clock).
    """

    def __init__(self, category: str = "linear", *, url: str | None = None, testnet: bool = False,
                 on_frame: FrameCallback | None = None,
                 on_reconnect: Callable[[list[str]], None] | None = None,
                 on_subscribe_error: Callable[[SubscriptionError], None] | None = None,
                 on_state: Callable[[ConnHealth], None] | None = None,
                 on_pipeline_error: Callable[[str | None, Exception], None] | None = None,
                 on_fatal: Callable[[BaseException], None] | None = None,
                 max_topics_per_conn: int = 200, ping_interval_s: float = 20.0,
                 quiet_s: float = 5.0, pong_timeout_s: float = 5.0,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 open_timeout_s: float = 10.0, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = asyncio.sleep) -> None:
        self.category = category
        self.url = resolve_url(category, url, testnet)
        self.on_frame = on_frame
        self.on_reconnect = on_reconnect
        self.on_subscribe_error = on_subscribe_error
        self.on_state = on_state
        self.on_pipeline_error = on_pipeline_error
        self.on_fatal = on_fatal
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
        self.sleep = sleep
        self.conns: list[_Conn] = []
        self.failed: dict[str, SubscriptionError] = {}   # topic -> why it was refused, reported once
        self.fatal: BaseException | None = None
        self.resyncs = 0
        self._tasks = TaskSet()
        self._started = False
        self._stopping = False
        self._last_resync: dict[str, float] = {}
        self._asked: set[str] = set()      # every topic ever subscribed here (bounded by the caller)
        self._warned_unsubscribed = False
        self._req_ids = itertools.count(1)

    # -- public API -------------------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        return [t for c in self.conns for t in c.topics]

    @property
    def connected(self) -> bool:
        """True when every connection is up (and there is at least one)."""
        return bool(self.conns) and all(c.health.state is ConnState.CONNECTED for c in self.conns)

    @property
    def health(self) -> list[ConnHealth]:
        return [c.health for c in self.conns]

    async def start(self) -> None:
        self._started = True
        self._stopping = False
        if not self.conns:
            self._conn_with_room("")  # connect now; topics may follow
        for c in self.conns:
            if c.task is None:
                c.task = self._tasks.spawn(self._run(c), name=f"bybitmon-{c.label}")

    async def stop(self) -> None:
        self._stopping = True
        for c in self.conns:
            c.wake.set()
            ws = c.ws
            if ws is not None:
                try:
                    await asyncio.wait_for(ws.close(), 2)  # type: ignore[attr-defined]
                except Exception:  # closing a connection that is already broken: nothing to save
                    pass
        await self._tasks.cancel_all()
        for c in self.conns:
            c.task = None
            c.health.state = ConnState.STOPPED
        self._started = False

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Add topics; they go to connections with room (new ones are opened as needed)."""
        have = set(self.topics)
        new = [t for t in dict.fromkeys(topics) if t not in have]
        for t in new:
            self.failed.pop(t, None)
            self._asked.add(t)
        by_conn: dict[int, list[str]] = {}
        for t in new:
            c = self._conn_with_room(t)
            c.add(t)
            by_conn.setdefault(id(c), []).append(t)
        for c in self.conns:
            todo = by_conn.get(id(c))
            if todo and c.ws is not None and c.health.state is ConnState.CONNECTED:
                await self._send_quietly(c, "subscribe", todo)
        if self._started:
            await self.start()

    async def unsubscribe(self, topics: Iterable[str]) -> None:
        drop = set(topics)
        for c in self.conns:
            gone = [t for t in c.topics if t in drop]
            if not gone:
                continue
            c.remove(gone)
            if c.ws is not None and c.health.state is ConnState.CONNECTED:
                await self._send_quietly(c, "unsubscribe", gone)

    async def resync(self, topic: str, min_interval_s: float = 1.0) -> bool:
        """Ask for a fresh snapshot of ``topic`` (unsubscribe, then subscribe). Rate-limited."""
        now = self.clock()
        if now - self._last_resync.get(topic, -1e18) < min_interval_s:
            return False
        for c in self.conns:
            if topic in c.topic_set and c.ws is not None and c.health.state is ConnState.CONNECTED:
                self._last_resync[topic] = now
                self.resyncs += 1
                try:
                    await self._send_topics(c, "unsubscribe", [topic])
                    await self._send_topics(c, "subscribe", [topic])
                except FeedClosed:
                    return False  # the reconnect subscribes it again
                return True
        return False

    # -- internals --------------------------------------------------------------------------

    def _conn_with_room(self, topic: str) -> _Conn:
        for c in self.conns:
            if len(c.topics) < self.max_topics_per_conn and c.args_chars() + len(topic) <= ARGS_CHARS_PER_CONN:
                return c
        label = f"{self.category}#{len(self.conns) + 1}"
        c = _Conn(label, ConnHealth(label, self.url))
        self.conns.append(c)
        return c

    async def _send_topics(self, c: _Conn, op: str, topics: list[str]) -> None:
        """Send (un)subscribe requests in batches. Raises :class:`FeedClosed`."""
        build = subscribe_message if op == "subscribe" else unsubscribe_message
        ws = c.ws
        if ws is None:
            raise FeedClosed(f"{c.label}: not connected")
        for i in range(0, len(topics), self.batch):
            chunk = topics[i:i + self.batch]
            req_id = f"bm{c.label}.{next(self._req_ids)}"
            c.pending[req_id] = (op, chunk)
            with map_network_errors(f"{c.label}: sending {op}"):
                await ws.send(build(chunk, req_id))  # type: ignore[attr-defined]

    async def _send_quietly(self, c: _Conn, op: str, topics: list[str]) -> None:
        try:
            await self._send_topics(c, op, topics)
        except FeedClosed:
            pass  # the connection is going down; its reconnect sends every topic again

    def _set_state(self, c: _Conn, state: ConnState) -> None:
        h = c.health
        if h.state is not state:
            h.state = state
            if self.on_state is not None:
                self.on_state(h)

    async def _run(self, c: _Conn) -> None:
        h = c.health
        attempt = 0
        proxy = None if urlsplit(self.url).hostname in ("127.0.0.1", "localhost", "::1") else True
        while not self._stopping:
            c.delivered = False
            c.stall_reason = ""
            try:
                with map_network_errors(f"{c.label}: connection to {self.url}"):
                    async with connect(self.url, open_timeout=self.open_timeout_s, ping_interval=None,
                                       close_timeout=1, max_size=16 * 2**20, max_queue=1024,
                                       proxy=proxy) as ws:
                        await self._session(c, ws)
            except asyncio.CancelledError:
                raise
            except FeedClosed as exc:
                h.errors += 1
                h.last_error = c.stall_reason or str(exc)
                log.warning("%s", h.last_error if c.stall_reason else exc)
            except _OutputFailed as exc:
                # Writing output failed: not the network's fault, and retrying cannot help.
                self.fatal = exc.error
                self._set_state(c, ConnState.STOPPED)
                if self.on_fatal is not None:
                    self.on_fatal(exc.error)
                return
            except Exception as exc:  # a bug of ours must not end the connection for good
                h.errors += 1
                h.last_error = f"internal error: {_describe(exc)}"
                log.error("%s: %s; reconnecting", c.label, h.last_error)
                log.debug("%s: internal error", c.label, exc_info=True)
            finally:
                c.ws = None
            if self._stopping:
                break
            up_s = self.clock() - h.connected_since if h.connected_since is not None else None
            h.connected_since = None
            attempt = next_attempt(attempt, delivered_data=c.delivered, up_s=up_s)
            h.reconnects += 1
            h.backoff_s = backoff_delay(attempt, self.backoff_initial_s, self.backoff_max_s, self.rng)
            self._set_state(c, ConnState.RECONNECTING)
            if self.on_reconnect is not None and c.topics:
                self.on_reconnect(list(c.topics))
            try:
                await asyncio.wait_for(c.wake.wait(), h.backoff_s)
            except asyncio.TimeoutError:
                pass
            c.wake.clear()

    async def _session(self, c: _Conn, ws) -> None:
        """One connection's life: subscribe, watch, receive until it ends. Raises
        :class:`FeedClosed` (or ``_OutputFailed``) unless the server closed normally."""
        h = c.health
        c.ws = ws
        c.pending.clear()
        now = self.clock()
        h.last_rx = now
        c.last_ping = now
        h.connected_since = now
        self._set_state(c, ConnState.CONNECTED)
        watchdog = self._tasks.spawn(self._watchdog(c, ws), name=f"bybitmon-{c.label}-watchdog")
        try:
            if c.topics:
                await self._send_topics(c, "subscribe", list(c.topics))
            await self._receive(c, ws)
        finally:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)

    async def _receive(self, c: _Conn, ws) -> None:
        h = c.health
        on_frame = self.on_frame
        clock = self.clock
        label = c.label
        topics = c.topic_set
        recv = ws.recv
        time_ns = time.time_ns
        while True:
            try:
                raw = await recv()
            except websockets.exceptions.ConnectionClosedOK:
                return  # the server closed normally: reconnect without an error
            except websockets.exceptions.ConnectionClosed as exc:
                raise FeedClosed(c.stall_reason or f"{label}: connection lost: {_describe(exc)}") from exc
            recv_ns = time_ns()
            h.last_rx = clock()
            h.frames += 1
            if type(raw) is not str:
                raw = raw.decode("utf-8", "replace")
            if raw.startswith(_TOPIC_PREFIX):
                end = raw.find('"', 10)
                if raw[10:end] not in topics:
                    self._unsubscribed(c, raw[10:end] if end > 10 else None)
                    continue
                c.delivered = True
            elif not self._control(c, raw):
                continue
            if on_frame is not None:
                try:
                    on_frame(recv_ns, label, raw)
                except (OSError, OutputError) as exc:
                    raise _OutputFailed(exc) from exc
                except Exception as exc:
                    self._pipeline_failed(c, raw, exc)

    def _unsubscribed(self, c: _Conn, topic: str | None) -> None:
        c.health.unsubscribed += 1
        if not self._warned_unsubscribed and topic not in self._asked:
            self._warned_unsubscribed = True
            log.warning("%s: dropping frames for topics never subscribed (first: %s); counted in "
                        "health.unsubscribed", c.label, printable(topic, 80))

    def _pipeline_failed(self, c: _Conn, raw: str, exc: Exception) -> None:
        h = c.health
        h.pipeline_errors += 1
        topic = frame_topic(raw)
        now = self.clock()
        if now - c.last_pipeline_log >= _LOG_EVERY_S:
            c.last_pipeline_log = now
            log.error("%s: handling a frame%s raised %s; resyncing (%d so far, counted in "
                      "health.pipeline_errors)", c.label, f" of {printable(topic, 80)}" if topic else "",
                      _describe(exc), h.pipeline_errors)
        if self.on_pipeline_error is not None:
            try:
                self.on_pipeline_error(topic, exc)
            except Exception as exc2:  # the handler of a failure must not fail the connection
                log.error("%s: resync after a failed frame raised %s", c.label, _describe(exc2))

    def _control(self, c: _Conn, raw: str) -> bool:
        """Read acks off a frame that is not in Bybit's data layout; False drops the frame."""
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            c.health.errors += 1
            return True  # junk: the pipeline counts it as a bad frame
        if type(msg) is not dict:
            return True
        if "topic" in msg:
            # A data frame laid out unlike Bybit's: let it through only for our own topics.
            topic = msg["topic"]
            if type(topic) is str and topic in c.topic_set:
                c.delivered = True
                return True
            self._unsubscribed(c, topic if type(topic) is str else None)
            return False
        if "success" not in msg or msg.get("ret_msg") == "pong":
            return True
        req = c.pending.pop(str(msg.get("req_id")), None) if msg.get("req_id") is not None else None
        if req is None and msg.get("op") in ("subscribe", "unsubscribe") and c.pending:
            # No req_id echoed: acks come in request order.
            req = c.pending.pop(next(iter(c.pending)))
        if req is None or msg.get("success") is True:
            return True
        op, topics = req
        if op != "subscribe":
            return True
        if len(topics) > 1:
            # One bad topic fails the whole request: ask again one by one to find it.
            self._tasks.spawn(self._retry_singly(c, topics), name=f"bybitmon-{c.label}-retry")
            return True
        topic = topics[0]
        if topic in c.topic_set:
            c.remove([topic])
        if topic not in self.failed:
            err = SubscriptionError.refused(topic, msg.get("ret_msg"))
            self.failed[topic] = err
            log.error("%s", err)
            if self.on_subscribe_error is not None:
                self.on_subscribe_error(err)
        return True

    async def _retry_singly(self, c: _Conn, topics: list[str]) -> None:
        for t in topics:
            if t not in c.topic_set:
                continue
            try:
                await self._send_topics(c, "subscribe", [t])
            except FeedClosed:
                return  # the reconnect subscribes them again

    async def _watchdog(self, c: _Conn, ws) -> None:
        h = c.health
        while True:
            now = self.clock()
            action, wait_s = watchdog_decision(now, h.last_rx, c.last_ping, ping_interval_s=self.ping_interval_s,
                                               quiet_s=self.quiet_s, pong_timeout_s=self.pong_timeout_s)
            if action is WatchdogAction.STALL:
                h.stalls += 1
                c.stall_reason = f"{c.label}: stalled: nothing received for {now - h.last_rx:.1f} s; reconnecting"
                ws.transport.abort()
                return
            if action is WatchdogAction.PING:
                c.last_ping = now
                try:
                    with map_network_errors(f"{c.label}: sending ping"):
                        await ws.send(ping_message())
                except FeedClosed:
                    return  # the receive loop sees the same loss and reconnects
                continue
            await self.sleep(wait_s)
