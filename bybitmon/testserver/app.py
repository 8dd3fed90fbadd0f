"""A Bybit v5 compatible public WebSocket server, with faults on demand.

``bybitmon serve`` runs it, and the client's tests connect to it. It speaks the exchange's
protocol on ``/v5/public/spot``, ``/v5/public/linear`` and ``/v5/public/inverse`` (one port):
app-level ping/pong, one subscribe/unsubscribe ack per request, failure acks for bad topics,
and a ``snapshot`` first then every ``delta`` of each subscribed book topic.
Protocol reference: https://bybit-exchange.github.io/docs/v5/ws/connect and
https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook

Data comes from a *source*:

* :class:`SimulatedSource`: one :class:`~bybitmon.sim.market.MarketSimulator` per category,
  advanced on the wall clock;
* :class:`FileSource`: a recording or NDJSON capture replayed at its own pace.

Both keep the *true book*: the book a correct client holds after applying every legitimate
frame sent so far. Injected faults (:meth:`BybitServer.inject`, :class:`FaultPlan`) corrupt
only what goes on the wire, never the true book, so a test can compare a client's book with
:meth:`BybitServer.true_book` after any fault.

Fan-out is built for hundreds of symbols: frames are routed by topic through a dict of
subscriber sets, encoded once, framed by each connection's sans-I/O protocol and written with
one transport write per connection per source tick (no await, no per-connection task, as
:func:`websockets.asyncio.server.broadcast` does, minus its write per frame). A slow client
therefore never blocks the others; one whose write buffer passes ``max_buffer_bytes`` is
dropped, as the exchange would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from http import HTTPStatus
from ssl import SSLContext
from typing import Any, Callable
from urllib.parse import parse_qsl

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidState
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..core.limits import SERVED_CATEGORIES
from ..errors import printable
from ..errors import UsageError
from .budget import Budget, TokenBucket, over_budget
from .faults import FAULT_KINDS, INJECT_KINDS, NEXT_DELTA_KINDS, FaultKind, FaultPlan, TopicFault, is_delta
from .injector import FaultInjection
from .session import Session
from .rest import REST_PREFIX, RestMarket, handle as rest_handle
from .sources import FileSource, SimulatedSource, Source

__all__ = [
    "INJECT_KINDS",
    "FAULT_KINDS",
    "FaultKind",
    "SimulatedSource",
    "FileSource",
    "FaultPlan",
    "BybitServer",
    "Source",
]

_PATHS = {f"/v5/public/{c}": c for c in SERVED_CATEGORIES}
# A write buffer past this after a flush means a client is not keeping up: check the total budget.
_BACKLOG_BYTES = 256 * 1024


def _listing(topics: list[str], most: int = 6) -> str:
    """``a, b, c (+7 more)``: a topic list short enough for one log line."""
    head = ", ".join(topics[:most])
    return head + (f" (+{len(topics) - most} more)" if len(topics) > most else "")


class _Connection(ServerConnection):
    """A server connection with bybitmon's per-connection state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = self.loop.time()
        self.category = ""
        self.session: Session | None = None  # set by the handler once the path is known
        self.faults: dict[str, TopicFault] = {}
        self.stalled = False
        self.dead = False
        self.cut = False  # over its byte budget: written to no more, aborted on the next loop turn
        self.resends: TokenBucket | None = None
        self.last_rx = now  # loop.time() of the last bytes from the client (control frames too)
        self.last_tx = now  # loop.time() of the last frame we wrote outside the fan-out

    @property
    def topics(self) -> dict[str, None]:
        """Subscribed topics, in subscription order."""
        return self.session.topics if self.session is not None else {}

    def data_received(self, data: bytes) -> None:
        # Any bytes count as client activity: Bybit cuts a connection only when "there is no
        # ping-pong and no stream data", and clients that ping with control frames only must
        # not be cut off (their pings never reach the message handler).
        self.last_rx = self.loop.time()
        super().data_received(data)


def _flush(conn: _Connection) -> None:
    """Write everything queued in ``conn``'s protocol in one transport write (no await: a slow
    client's bytes pile up in its own transport buffer, which housekeeping bounds)."""
    chunks = conn.protocol.data_to_send()
    if not chunks:
        return
    if not all(chunks):
        # An empty chunk is websockets' "half-close now" marker; keep its order.
        for chunk in chunks:
            if chunk:
                conn.transport.write(chunk)
            elif conn.transport.can_write_eof():
                conn.transport.write_eof()
        return
    conn.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))


class BybitServer(FaultInjection):
    """Bybit v5 compatible public WebSocket server on ``websockets.asyncio.server``.

    Use as ``async with BybitServer(source) as srv:`` (or :meth:`start` / :meth:`close`);
    clients connect to ``srv.url + "/v5/public/linear"`` (spot, inverse likewise).

    Args:
        source: A :class:`SimulatedSource` or :class:`FileSource`.
        host: Address to listen on.
        port: TCP port; 0 picks a free one (read :attr:`port` after :meth:`start`).
        idle_timeout_s: Close a connection after this long with no client bytes and no data
            frame sent, s. Bybit: "if there is no ping-pong and no stream data sent from server
            end, the connection will be cut off after 10 minutes"
            (https://bybit-exchange.github.io/docs/v5/ws/connect).
        max_buffer_bytes: A connection whose unsent data passes this many bytes is dropped
            (overrides ``budget.max_buffer_bytes``).
        budget: Caps on connections, on unsent bytes per connection and across connections, and
            on snapshot resends (:class:`~bybitmon.testserver.budget.Budget`; defaults if None).
        compression: ``"deflate"`` to offer permessage-deflate; off by default because
            compressing every frame per connection costs more CPU than the fan-out itself.
        log: Called with one line per connection, subscription, refusal and injected fault
            (``serve --verbose``); None logs nothing.
        ssl: A server TLS context to serve ``wss://`` (clients that accept nothing else, e.g.
            cryptofeed); None serves plain ``ws://``.
    """

    def __init__(self, source: Source, *, host: str = "127.0.0.1", port: int = 0,
                 idle_timeout_s: float = 600.0, max_buffer_bytes: int | None = None, budget: Budget | None = None,
                 compression: str | None = None, log: Callable[[str], None] | None = None,
                 ssl: SSLContext | None = None) -> None:
        if not idle_timeout_s > 0:
            raise UsageError(f"bad idle timeout {idle_timeout_s}: use a positive number of seconds")
        self.source = source
        self.host = host
        self.port = port
        self.idle_timeout_s = float(idle_timeout_s)
        budget = budget or Budget()
        if max_buffer_bytes is not None:
            budget = dataclasses.replace(budget, max_buffer_bytes=max_buffer_bytes)
        self.budget = budget
        self.max_buffer_bytes = budget.max_buffer_bytes
        self.compression = compression
        self._log_fn = log
        self.ssl = ssl
        #: Faults put on the wire, per kind: one per connection hit (``reject``: per call).
        self.fault_counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        #: Connections dropped because their write buffer overflowed (their own cap or the total's).
        self.overflow_drops = 0
        #: Handshakes refused because ``budget.max_connections`` were open.
        self.refused_connections = 0
        #: Subscribe requests refused by the snapshot resend rate limit.
        self.resends_refused = 0
        self._conns: dict[str, set[_Connection]] = {c: set() for c in SERVED_CATEGORIES}
        self._routes: dict[str, dict[str, set[_Connection]]] = {c: {} for c in SERVED_CATEGORIES}
        self._special: dict[str, dict[str, set[_Connection]]] = {c: {} for c in SERVED_CATEGORIES}
        self._topic_tx: dict[str, dict[str, float]] = {c: {} for c in SERVED_CATEGORIES}
        self._rejected: set[str] = set()
        self._plan: FaultPlan | None = None
        self._plan_rng = random.Random(0)
        self._plan_cum: list[tuple[float, str]] = []
        self._plan_total = 0.0
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._source_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: What the REST endpoints list (instruments-info, tickers), with their test modes.
        self.rest = RestMarket({c: sorted(source.symbols(c)) for c in source.categories},
                               clock_ms=lambda: int(time.time() * 1000), book=source.true_book)
        self._rest_hangs: set[asyncio.Future[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, ``ws://HOST:PORT``; add ``/v5/public/{category}``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.ssl is not None else 'ws'}://{host}:{self.port}"

    def url_for(self, category: str) -> str:
        """``ws://HOST:PORT/v5/public/{category}``."""
        return f"{self.url}/v5/public/{category}"

    async def start(self) -> None:
        """Listen, and start the source and the housekeeping task.

        Raises:
            OSError: the address cannot be bound.
        """
        self._loop = asyncio.get_running_loop()
        self._server = await serve(
            self._handler, self.host, self.port,
            process_request=self._process_request,
            create_connection=_Connection,
            compression=self.compression,
            # Bybit sends no control pings of its own; the idle timeout and the write buffer
            # bound are what cut dead peers off.
            ping_interval=None,
            max_size=2**20,
            ssl=self.ssl,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._source_task = asyncio.create_task(self.source.run(self._dispatch), name="bybitmon-source")
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="bybitmon-housekeeping"))

    async def close(self) -> None:
        """Stop the source, close every connection (1001) and stop listening."""
        tasks = [*self._tasks, *([self._source_task] if self._source_task else [])]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for hang in list(self._rest_hangs):
            if not hang.done():
                hang.set_result(None)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> BybitServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def pause_source(self) -> None:
        """Stop the source: no more market frames until :meth:`resume_source` (acks, pongs and
        snapshots are still sent). Tests use it to compare a client's book with the truth at rest."""
        task, self._source_task = self._source_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def resume_source(self) -> None:
        """Start the source again after :meth:`pause_source` (a simulation catches up with the
        wall clock at most ``max_step_ms`` per tick)."""
        if self._source_task is None:
            self._source_task = asyncio.create_task(self.source.run(self._dispatch), name="bybitmon-source")

    async def serve_forever(self) -> None:
        """Run until cancelled; re-raises an error of the source (e.g. a corrupt recording)."""
        if self._source_task is not None:
            await self._source_task  # returns normally when a file replay ends
        await asyncio.Future()

    def true_book(self, symbol: str, category: str = "linear",
                  depth: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """The source's true book of ``symbol`` at ``depth`` (default 50, or the file's deepest):
        ``(bids, asks)`` as ``{price: size}`` strings."""
        return self.source.true_book(category, symbol, depth)

    def connections(self, category: str | None = None) -> int:
        """Open connections (on one category, or all)."""
        cats = SERVED_CATEGORIES if category is None else (category,)
        return sum(len(self._conns[c]) for c in cats)

    # -- handshake and per-connection handling --------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Any:
        path = request.path.split("?", 1)[0]
        if path.startswith(REST_PREFIX):
            return self._rest_reply(request)
        if self.connections() >= self.budget.max_connections:
            self.refused_connections += 1
            self._log(f"refused a connection: {self.budget.max_connections} open already")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        if path not in _PATHS:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no such stream {path}; use /v5/public/"
                                                           f"{{{','.join(SERVED_CATEGORIES)}}}\n")
        return None

    def list_symbol(self, symbol: str) -> None:
        """List a new symbol while running: REST lists it and its topics stream from now on
        (simulated sources only).

        Raises:
            UsageError: not a simulated source, or the symbol is already listed.
        """
        add = getattr(self.source, "add_symbol", None)
        if add is None:
            raise UsageError("only a simulated market can list new symbols")
        add(symbol)
        for category in self.source.categories:
            self.rest.list_symbol(category, symbol)
        self._log(f"listed {symbol}")

    async def _rest_reply(self, request: Request) -> Response:
        # Plain HTTP GETs on the WebSocket port: Bybit's public REST (testserver/rest.py).
        path, _, qs = request.path.partition("?")
        reply = rest_handle(path, dict(parse_qsl(qs, keep_blank_values=True)), self.rest)
        if reply is None:
            # "Never answer": until the server's open timeout, or close(), ends the wait.
            hang = asyncio.get_running_loop().create_future()
            self._rest_hangs.add(hang)
            try:
                await hang
            finally:
                self._rest_hangs.discard(hang)
            reply = 503, [], b""
        status, headers, body = reply  # type: ignore[misc]
        hdrs = Headers([*headers, ("Content-Length", str(len(body))), ("Connection", "close")])
        return Response(status, HTTPStatus(status).phrase, hdrs, body)

    async def _handler(self, ws: ServerConnection) -> None:
        conn: _Connection = ws  # type: ignore[assignment]
        assert ws.request is not None
        category = _PATHS[ws.request.path.split("?", 1)[0]]
        conn.category = category
        b = self.budget
        conn.resends = TokenBucket(b.resend_burst, b.resend_per_s, conn.loop.time())

        def allow_resends(n: int) -> bool:
            if conn.resends is not None and conn.resends.take(n, conn.loop.time()):
                return True
            self.resends_refused += 1
            return False

        conn.session = Session(category, self.source.serves, self._rejected, allow_resends=allow_resends)
        self._conns[category].add(conn)
        self.source.open(category)
        self._log(f"{self._who(conn)} connected ({conn.session.conn_id})")
        try:
            async for message in conn:
                if conn.stalled or conn.dead:
                    continue  # a stalled server answers nothing
                if isinstance(message, bytes):
                    message = message.decode("utf-8", "replace")
                self._on_message(conn, message)
        except ConnectionClosed:
            pass
        finally:
            self._forget(conn)
            self._log(f"{self._who(conn)} closed ({conn.session.conn_id})")

    def _forget(self, conn: _Connection) -> None:
        conn.dead = True
        self._conns[conn.category].discard(conn)
        self._unroute(conn)

    def _unroute(self, conn: _Connection) -> None:
        for topic in conn.topics:
            self._unroute_topic(conn, topic)
        for topic in list(conn.faults):
            self._clear_fault(conn, topic)

    def _route(self, conn: _Connection, topic: str) -> None:
        routes = self._routes[conn.category]
        subs = routes.get(topic)
        if subs is None:
            subs = routes[topic] = set()
            # First subscriber: the source starts computing this depth (book topics only).
            self.source.set_topic_active(conn.category, topic, True)
        subs.add(conn)

    def _unroute_topic(self, conn: _Connection, topic: str) -> None:
        routes = self._routes[conn.category]
        subs = routes.get(topic)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del routes[topic]
                self.source.set_topic_active(conn.category, topic, False)

    def _send(self, conn: _Connection, text: str) -> None:
        # Written synchronously, so a reply or snapshot is ordered exactly among the fan-out
        # frames (an await here, as in connection.send(), could let a delta overtake a snapshot).
        if conn.cut:
            return
        try:
            conn.protocol.send_text(text.encode())
        except InvalidState:
            return
        _flush(conn)
        conn.last_tx = conn.loop.time()
        size = conn.transport.get_write_buffer_size()
        if size > self.max_buffer_bytes:
            self._cut(conn)
        elif size > _BACKLOG_BYTES:
            self._check_total()

    def _check_total(self) -> None:
        """Cut the connections holding the most unsent bytes while all of them together hold
        more than the budget's total. Run as soon as a write leaves a backlog (a reading
        client's buffer drains at once), not only on the housekeeping tick, so several slow
        clients cannot together pass the total between two ticks."""
        conns = [c for cat in SERVED_CATEGORIES for c in self._conns[cat] if not c.cut]
        for conn in over_budget(((c, c.transport.get_write_buffer_size()) for c in conns),
                                self.budget.max_total_buffer_bytes):
            self._cut(conn)

    def _cut(self, conn: _Connection) -> None:
        """Cut a connection over its byte budget. Its socket is aborted now, which frees the
        unsent bytes at once (asyncio only schedules the protocol's callbacks); callers may be
        iterating routes, so it is unrouted on the next loop turn and written to no more."""
        if conn.cut or conn.dead:
            return
        conn.cut = True
        self.overflow_drops += 1
        self._log(f"{self._who(conn)} cut: {conn.transport.get_write_buffer_size()} bytes unread")
        conn.transport.abort()
        conn.loop.call_soon(self._abort, conn)

    def _on_message(self, conn: _Connection, text: str) -> None:
        session = conn.session
        assert session is not None
        out = session.receive(text)
        self._send(conn, out.reply)
        if out.refused is not None:
            self._log(f"{self._who(conn)} refused {out.op or 'request'}: {out.refused}")
        elif out.op in ("subscribe", "unsubscribe"):
            topics = out.subscribed if out.op == "subscribe" else out.removed
            self._log(f"{self._who(conn)} {out.op}d {len(topics)} topic(s): {_listing(topics)}")
        for topic in out.added:
            self._route(conn, topic)
        for topic in out.subscribed:
            if topic.startswith("orderbook."):
                # "The first frame after a subscribe is a snapshot"; a repeated subscribe is how
                # a client resyncs, so it gets a fresh snapshot and any wire fault ends.
                self._clear_fault(conn, topic)
                snap = self.source.snapshot_frame(conn.category, topic)
                if snap is not None:
                    self._send(conn, snap)
        for topic in out.removed:
            self._unroute_topic(conn, topic)
            self._clear_fault(conn, topic)

    def _who(self, conn: _Connection) -> str:
        peer = conn.remote_address
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
        return f"{conn.category} {where}"

    def _log(self, line: str) -> None:
        if self._log_fn is not None:
            self._log_fn(printable(line, 2000))  # topics and messages come from clients

    # -- fan-out --------------------------------------------------------------------------

    def _dispatch(self, category: str, frames: list[tuple[str, str]]) -> None:
        """Route a source's frames to subscribers: the hot path (one dict lookup per frame)."""
        routes = self._routes[category]
        special = self._special[category]
        tx = self._topic_tx[category]
        now = self._loop.time() if self._loop is not None else 0.0
        plan_total = self._plan_total
        # Frames are queued in each connection's protocol and written once per connection
        # per call: one socket write for a whole tick instead of one per frame.
        dirty: set[_Connection] = set()
        dirty_add = dirty.add
        deferred: list[tuple[str, str]] = []
        for topic, raw in frames:
            subs = routes.get(topic)
            if not subs:
                continue
            tx[topic] = now
            if plan_total and topic.startswith("orderbook.") and is_delta(raw):
                r = self._plan_rng.random()
                if r < plan_total:
                    for edge, kind in self._plan_cum:
                        if r < edge:
                            if kind in NEXT_DELTA_KINDS:
                                self._inject_topic(category, topic, kind)  # hits this very delta
                            else:
                                # The source's state is already past the whole batch: send
                                # snapshots and crossed deltas after the batch, so their u
                                # follows what the client has received.
                                deferred.append((topic, kind))
                            break
            odd = special.get(topic)
            targets = subs - odd if odd else subs
            if targets:
                data = raw.encode()
                for conn in targets:
                    try:
                        conn.protocol.send_text(data)
                    except InvalidState:
                        continue  # closing: its handler will forget it
                    dirty_add(conn)
            if odd:
                for conn in list(odd):
                    self._deliver_faulty(conn, topic, raw)
        limit = self.max_buffer_bytes
        backlog = False
        for conn in dirty:
            _flush(conn)
            size = conn.transport.get_write_buffer_size()
            if size > limit:
                self._cut(conn)
            elif size > _BACKLOG_BYTES:
                backlog = True
        if backlog:
            self._check_total()
        for topic, kind in deferred:
            self._inject_topic(category, topic, kind)

    def _abort(self, conn: _Connection) -> None:
        # Unroute first so no frame is written to a transport that is going away.
        self._forget(conn)
        conn.transport.abort()

    # -- housekeeping ---------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Drop overflowing connections and close idle ones."""
        interval = min(0.1, self.idle_timeout_s / 5)
        loop = asyncio.get_running_loop()
        limit = self.max_buffer_bytes
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            conns = [c for cat in SERVED_CATEGORIES for c in self._conns[cat]]
            # All connections together: the ones holding the most unsent bytes go first.
            for conn in over_budget(((c, c.transport.get_write_buffer_size()) for c in conns),
                                    self.budget.max_total_buffer_bytes):
                self._cut(conn)
            for conn in conns:
                if conn.cut:
                    continue
                if conn.transport.get_write_buffer_size() > limit:
                    # The client reads slower than the stream: drop it, as Bybit would,
                    # rather than buffer without bound.
                    self._cut(conn)
                elif now - self._last_activity(conn, now) > self.idle_timeout_s:
                    self._forget(conn)
                    self._tasks.append(asyncio.create_task(
                        conn.close(1000, "idle timeout: no ping and no data"), name="bybitmon-idle-close"))
            self._tasks = [t for t in self._tasks if not t.done()]

    def _last_activity(self, conn: _Connection, now: float) -> float:
        last = conn.last_rx if conn.last_rx > conn.last_tx else conn.last_tx
        if now - last <= self.idle_timeout_s or conn.stalled or not conn.topics:
            return last
        # Fan-out frames are stamped per topic, not per connection (cheaper on the hot path);
        # the newest one is cached in last_tx so this scan runs about once per idle period.
        tx = self._topic_tx[conn.category]
        for topic in conn.topics:
            t = tx.get(topic)
            if t is not None and t > last:
                last = t
        conn.last_tx = last
        return last


# ----------------------------------------------------------------------------------- entry

