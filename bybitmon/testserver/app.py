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
import math
import os
import random
import re
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, Sequence
from urllib.parse import parse_qsl

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidState
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..core.limits import ARGS_CHARS_PER_CONN, BOOK_DEPTHS, SERVED_CATEGORIES, SPOT_ARGS_PER_REQUEST
from ..errors import UsageError
from ..transport.recording import FrameReader
from ..sim.market import MarketSimulator
from .rest import REST_PREFIX, RestMarket, handle as rest_handle

__all__ = [
    "INJECT_KINDS",
    "FAULT_KINDS",
    "SimulatedSource",
    "FileSource",
    "FaultPlan",
    "BybitServer",
    "run_serve",
]

#: Kinds accepted by :meth:`BybitServer.inject`.
INJECT_KINDS = ("duplicate", "gap", "reorder", "crossed", "reset", "resend_snapshot", "malformed")
#: Every key of :attr:`BybitServer.fault_counts`.
FAULT_KINDS = ("drop", "stall", "reject", *INJECT_KINDS)
_PATHS = {f"/v5/public/{c}": c for c in SERVED_CATEGORIES}
_TOPIC_PREFIX = '{"topic":"'
_DELTA_MARK = '"type":"delta"'
_NEXT_DELTA_KINDS = frozenset(("duplicate", "gap", "reorder"))
# Bybit's server is written in Go, whose JSON encoder escapes <, > and & inside strings
# (live spot error ack: "args size \u003e10", yufuquant/rust-bybit issue #24).
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
_MISSING: Any = object()


# ----------------------------------------------------------------------------------- helpers


def _topic_of(raw: str) -> str | None:
    """The ``topic`` of a frame; a slice when the frame starts with it (Bybit's key order)."""
    if raw.startswith(_TOPIC_PREFIX):
        end = raw.find('"', 10)
        if end > 10:
            return raw[10:end]
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    topic = msg.get("topic") if type(msg) is dict else None
    return topic if type(topic) is str else None


def _is_delta(raw: str) -> bool:
    """Whether a book frame is a ``delta`` (``type`` sits within the first ~120 characters)."""
    return raw.find(_DELTA_MARK, 0, 160) != -1


def _renumber(raw: str, offset: int) -> str:
    """``raw`` with its book ``"u":N`` replaced by ``N - offset`` (the only ``"u":`` key)."""
    i = raw.find('"u":')
    if i < 0:
        return raw
    j = k = i + 4
    while raw[k].isdigit():
        k += 1
    return f"{raw[:j]}{int(raw[j:k]) - offset}{raw[k:]}"


def _book_frame(topic: str, kind: str, ts: int, symbol: str, bids: list[list[str]],
                asks: list[list[str]], u: int, seq: int | None, cts: int | None, ts_first: bool) -> str:
    """A book frame in Bybit's key order: spot and level 1 put ``ts`` before ``type``."""
    data: dict[str, Any] = {"s": symbol, "b": bids, "a": asks, "u": u}
    if seq is not None:
        data["seq"] = seq
    if ts_first:
        frame: dict[str, Any] = {"topic": topic, "ts": ts, "type": kind, "data": data}
    else:
        frame = {"topic": topic, "type": kind, "ts": ts, "data": data}
    if cts is not None:
        frame["cts"] = cts
    return orjson.dumps(frame).decode()


def _conn_id() -> str:
    """A connection id shaped like the live ones (``d8bu1olkndm7crnfs1e0-j6akw``)."""
    head = "0123456789abcdefghijklmnopqrstuv"
    tail = "0123456789abcdefghijklmnopqrstuvwxyz"
    raw = os.urandom(25)
    return "".join(head[b & 31] for b in raw[:20]) + "-" + "".join(tail[b % 36] for b in raw[20:])


Sink = Callable[[str, list[tuple[str, str]]], None]
"""What a source calls with ``(category, [(topic, frame_text), ...])`` as frames become due."""


# ----------------------------------------------------------------------------------- sources


class _SimCategory:
    __slots__ = ("sim", "t0", "start_ms", "book_topics")

    def __init__(self, sim: MarketSimulator, t0: float, start_ms: int, book_topics: dict[str, str]) -> None:
        self.sim = sim
        self.t0 = t0  # loop.time() at start_ms, s
        self.start_ms = start_ms
        self.book_topics = book_topics  # topic -> symbol


class SimulatedSource:
    """A seeded simulated market: one :class:`MarketSimulator` per category, on the wall clock.

    A category's simulator starts when it is first needed (a connection on its path, or a
    :meth:`true_book` call), so serving 500 symbols on linear does not also pay for spot and
    inverse nobody reads. Every simulator gets the same symbols; linear uses ``seed`` as given
    (so ``serve --seed 1`` matches ``replay --simulate --seed 1``), spot and inverse a seed
    derived from it.

    Args:
        symbols: Instruments, e.g. ``["BTCUSDT", "ETHUSDT"]``.
        seed: Seed of the simulators.
        speed: Simulated time per wall-clock time (2.0 = twice as fast). ``None`` means 1.0.
        categories: Categories served.
        depth: Book depth of the ``orderbook.{depth}.SYM`` topics (other depths are refused).
        tick_s: Wall-clock interval between :meth:`MarketSimulator.advance` calls, s.
        max_step_ms: Most simulated time one tick may cover, ms; when the CPU cannot keep up,
            the simulated clock falls behind the wall clock instead of the ticks growing.
        trade_rate: Taker orders per second per symbol (see :class:`MarketSimulator`).
        plant_every_s: Mean time between planted large orders per symbol, s.
        book_interval_ms: Book push interval, ms (Bybit: 20 for depth 50).

    Raises:
        UsageError: no symbols, or a bad speed, depth or category.
    """

    def __init__(self, symbols: Sequence[str], seed: int = 1, speed: float | None = 1.0, *,
                 categories: Sequence[str] = SERVED_CATEGORIES, depth: int = 50, tick_s: float = 0.02,
                 max_step_ms: int = 250, trade_rate: float = 5.0, plant_every_s: float = 20.0,
                 book_interval_ms: int = 20) -> None:
        names = list(dict.fromkeys(symbols))
        if not names:
            raise UsageError("the simulated market needs at least one symbol")
        speed = 1.0 if speed is None else float(speed)
        if not 0.0 < speed < math.inf:
            raise UsageError(f"bad speed {speed}: use a positive number")
        if depth not in BOOK_DEPTHS:
            raise UsageError(f"bad depth {depth}: Bybit serves {', '.join(map(str, BOOK_DEPTHS))}")
        for cat in categories:
            if cat not in SERVED_CATEGORIES:
                raise UsageError(f"bad category {cat!r}: use {', '.join(SERVED_CATEGORIES)}")
        self.symbols_list = names
        self._symbols = frozenset(names)
        self.seed = seed
        self.speed = speed
        self.categories = tuple(categories)
        self.depth = depth
        self.tick_s = tick_s
        self.max_step_ms = max_step_ms
        self._sim_kwargs = dict(depth=depth, trade_rate=trade_rate, plant_every_s=plant_every_s,
                                book_interval_ms=book_interval_ms)
        self._cats: dict[str, _SimCategory] = {}
        self._sink: Sink | None = None

    def category_seed(self, category: str) -> int:
        """The simulator seed of ``category``: ``seed`` on linear, derived elsewhere."""
        if category == "linear":
            return self.seed
        return zlib.crc32(f"bybitmon.serve:{self.seed}:{category}".encode())

    def symbols(self, category: str | None = None) -> frozenset[str]:
        """Symbols known (the same on every category served)."""
        if category is not None and category not in self.categories:
            return frozenset()
        return self._symbols

    def serves(self, category: str, topic: str) -> bool:
        """Whether ``topic`` exists here: ``orderbook.{depth}.SYM`` or ``publicTrade.SYM``."""
        if category not in self.categories:
            return False
        parts = topic.split(".")
        if len(parts) == 3 and parts[0] == "orderbook":
            return parts[1] == str(self.depth) and parts[2] in self._symbols
        if len(parts) == 2 and parts[0] == "publicTrade":
            return parts[1] in self._symbols
        return False

    def book_topic(self, category: str, symbol: str) -> str | None:
        """The book topic of ``symbol``, or None when unknown."""
        if category in self.categories and symbol in self._symbols:
            return f"orderbook.{self.depth}.{symbol}"
        return None

    def open(self, category: str) -> None:
        """Start ``category``'s simulator if it is not running yet (idempotent)."""
        if category in self._cats or category not in self.categories:
            return
        loop_time = asyncio.get_running_loop().time() if _has_loop() else time.monotonic()
        start_ms = int(time.time() * 1000)
        sim = MarketSimulator(self.symbols_list, self.category_seed(category), category=category,
                              start_ms=start_ms, **self._sim_kwargs)  # type: ignore[arg-type]
        topics = {f"orderbook.{self.depth}.{s}": s for s in self.symbols_list}
        st = self._cats[category] = _SimCategory(sim, loop_time, start_ms, topics)
        # The first advance emits one snapshot per symbol; do it now so a subscriber's
        # snapshot and the stream that follows agree from the first frame.
        self._emit(category, st.sim.advance(start_ms))

    def _emit(self, category: str, frames: list[tuple[int, str]]) -> None:
        if not frames or self._sink is None:
            return
        # Every simulator frame starts with {"topic":"...": slice instead of parsing.
        self._sink(category, [(raw[10:raw.index('"', 10)], raw) for _, raw in frames])

    def true_book(self, category: str, symbol: str) -> tuple[dict[str, str], dict[str, str]]:
        """``(bids, asks)`` as ``{price: size}`` strings, best first, after the last frame sent.

        Raises:
            KeyError: unknown category or symbol.
        """
        if category not in self.categories:
            raise KeyError(f"category {category!r} is not served")
        self.open(category)
        return self._cats[category].sim.true_book(symbol)

    def snapshot_frame(self, category: str, topic: str) -> str | None:
        """A snapshot of the true book of ``topic`` with the current ``u``/``seq``."""
        self.open(category)
        st = self._cats.get(category)
        if st is None:
            return None
        symbol = st.book_topics.get(topic)
        return None if symbol is None else st.sim.snapshot_frame(symbol)

    def lag_ms(self, category: str) -> float:
        """How far the simulated clock is behind the wall clock, ms (0 when keeping up)."""
        st = self._cats.get(category)
        if st is None:
            return 0.0
        target = st.start_ms + (asyncio.get_running_loop().time() - st.t0) * 1000.0 * self.speed
        return max(0.0, target - st.sim.now_ms)

    async def run(self, sink: Sink) -> None:
        """Advance every started simulator on the wall clock and pass its frames to ``sink``."""
        self._sink = sink
        loop = asyncio.get_running_loop()
        speed = self.speed
        try:
            while True:
                now = loop.time()
                for category, st in list(self._cats.items()):
                    target = st.start_ms + int((now - st.t0) * 1000.0 * speed)
                    sim = st.sim
                    to_ms = min(target, sim.now_ms + self.max_step_ms)
                    if to_ms > sim.now_ms:
                        self._emit(category, sim.advance(to_ms))
                await asyncio.sleep(self.tick_s)
        finally:
            self._sink = None


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _FileBook:
    """The true book of one topic of a file, keyed by ``float(price)`` (``"1.5"`` == ``"1.50"``)."""

    __slots__ = ("symbol", "bids", "asks", "u", "seq", "ts", "cts", "ready")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[float, tuple[str, str]] = {}
        self.asks: dict[float, tuple[str, str]] = {}
        self.u = 0
        self.seq: int | None = None
        self.ts = 0
        self.cts: int | None = None
        self.ready = False

    def apply(self, msg: dict) -> None:
        data = msg["data"]
        u = data["u"]
        # "If you receive a new snapshot message, you will have to reset your local orderbook";
        # u == 1 also means "the service restarted": that frame replaces the book too.
        if msg.get("type") == "snapshot" or u == 1:
            self.bids.clear()
            self.asks.clear()
            self.ready = True
        elif not self.ready:
            return
        for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
            for p, s in levels:
                key = float(p)
                if float(s) == 0.0:  # [p, "0"]: delete (absent price: nothing to do)
                    side.pop(key, None)
                else:
                    side[key] = (p, s)
        self.u = u
        if type(data.get("seq")) is int:
            self.seq = data["seq"]
        if type(msg.get("ts")) is int:
            self.ts = msg["ts"]
        if type(msg.get("cts")) is int:
            self.cts = msg["cts"]

    def sides(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(bids best first, asks best first) as ``(price, size)`` strings."""
        bids = [self.bids[k] for k in sorted(self.bids, reverse=True)]
        asks = [self.asks[k] for k in sorted(self.asks)]
        return bids, asks


class FileSource:
    """Replays a recording or NDJSON capture (:class:`~bybitmon.transport.recording.FrameReader`).

    Frames are paced by their receive times, or by their exchange ``ts`` when the file has no
    receive times (plain NDJSON), divided by ``speed``. Book frames are applied to a true book
    per topic, so a client subscribing mid-way gets a snapshot built from it (current ``u``,
    ``seq``, latest ``ts`` and ``cts``) and then the file's following frames. Frames without a
    topic (acks, pongs in the file) are never forwarded.

    The file is scanned once at construction to learn its topics and symbols, so a
    subscription to a topic the file will only carry later is accepted.

    Args:
        path: Recording, NDJSON, tardis raw file; gzip/zstd allowed.
        category: The file's category, or None to take it from the recording header or guess
            it from the frames (spot key order / trade fields), else ``"linear"``.
        speed: Replay speed (2.0 = twice as fast); ``None`` = as fast as possible.
        loop: Start over at the end of the file (the books are kept until the file's snapshots
            replace them).

    Raises:
        RecordingError: the file cannot be read.
        UsageError: bad speed or category.
    """

    def __init__(self, path: str, category: str | None = None, speed: float | None = 1.0,
                 loop: bool = False) -> None:
        if speed is not None and not 0.0 < float(speed) < math.inf:
            raise UsageError(f"bad speed {speed}: use a positive number, or None for as fast as possible")
        self.path = str(path)
        self.speed = None if speed is None else float(speed)
        self.loop = loop
        topics: set[str] = set()
        symbols: set[str] = set()
        guess: str | None = None
        reader = FrameReader(self.path)
        for frame in reader:
            topic = _topic_of(frame.raw)
            if topic is None:
                continue
            topics.add(topic)
            if topic.startswith(("orderbook.", "publicTrade.")):
                symbols.add(topic.rsplit(".", 1)[-1])
                if guess is None:
                    guess = _guess_category(topic, frame.raw)
        header = reader.report.header or {}
        if category is None:
            category = header.get("category") if header.get("category") in SERVED_CATEGORIES else guess
            category = category or "linear"
        if category not in SERVED_CATEGORIES:
            raise UsageError(f"bad category {category!r}: use {', '.join(SERVED_CATEGORIES)}")
        self.category = category
        self.categories = (category,)
        self._topics = frozenset(topics)
        self._symbols = frozenset(symbols)
        self._books: dict[str, _FileBook] = {}
        self._deepest: dict[str, tuple[int, str]] = {}  # symbol -> (depth, book topic)
        for topic in topics:
            parts = topic.split(".")
            if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit():
                depth = int(parts[1])
                if depth > self._deepest.get(parts[2], (0, ""))[0]:
                    self._deepest[parts[2]] = (depth, topic)
        #: Frames passed on so far (this pass and earlier loops).
        self.frames_sent = 0
        #: Completed passes over the file.
        self.passes = 0
        self._finished: asyncio.Event | None = None

    @property
    def finished(self) -> bool:
        """Whether the replay reached the end of the file (never with ``loop=True``)."""
        return self._finished is not None and self._finished.is_set()

    async def wait_finished(self) -> None:
        """Wait until the replay reached the end of the file."""
        if self._finished is None:
            self._finished = asyncio.Event()
        await self._finished.wait()

    def symbols(self, category: str | None = None) -> frozenset[str]:
        """Symbols with a book or trade topic in the file."""
        if category is not None and category != self.category:
            return frozenset()
        return self._symbols

    def topics(self) -> frozenset[str]:
        """Every topic found in the file."""
        return self._topics

    def serves(self, category: str, topic: str) -> bool:
        """Whether ``topic`` occurs in the file (of this category)."""
        return category == self.category and topic in self._topics

    def book_topic(self, category: str, symbol: str) -> str | None:
        """The deepest book topic of ``symbol`` in the file, or None."""
        if category != self.category:
            return None
        entry = self._deepest.get(symbol)
        return None if entry is None else entry[1]

    def open(self, category: str) -> None:
        """Nothing to start: the replay runs from :meth:`run`."""

    def true_book(self, category: str, symbol: str) -> tuple[dict[str, str], dict[str, str]]:
        """``(bids, asks)`` as ``{price: size}`` strings, best first, after the last frame sent.

        Raises:
            KeyError: the file has no book of ``symbol`` in ``category``.
        """
        topic = self.book_topic(category, symbol)
        if topic is None:
            raise KeyError(f"no book of {symbol!r} on {category} in {self.path}")
        book = self._books.get(topic)
        if book is None or not book.ready:
            return {}, {}
        bids, asks = book.sides()
        return dict(bids), dict(asks)

    def snapshot_frame(self, category: str, topic: str) -> str | None:
        """A snapshot of ``topic``'s true book, or None before the file's first snapshot."""
        book = self._books.get(topic) if category == self.category else None
        if book is None or not book.ready:
            return None
        bids, asks = book.sides()
        depth = topic.split(".")[1]
        return _book_frame(topic, "snapshot", book.ts, book.symbol, [list(x) for x in bids],
                           [list(x) for x in asks], book.u, book.seq, book.cts,
                           ts_first=self.category == "spot" or depth == "1")

    async def run(self, sink: Sink) -> None:
        """Replay the file into ``sink``; returns at its end unless ``loop``."""
        if self._finished is None:
            self._finished = asyncio.Event()
        loop = asyncio.get_running_loop()
        speed = self.speed
        category = self.category
        while True:
            t_file0: int | None = None  # ns
            t_wall0 = loop.time()
            last_ns = 0
            batch: list[tuple[str, str]] = []
            for frame in FrameReader(self.path):
                raw = frame.raw
                try:
                    msg = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if type(msg) is not dict or type(msg.get("topic")) is not str:
                    continue
                topic = msg["topic"]
                if frame.recv_ns:
                    last_ns = frame.recv_ns
                elif type(msg.get("ts")) is int:
                    last_ns = msg["ts"] * 1_000_000
                if t_file0 is None and last_ns:
                    t_file0 = last_ns
                delay = 0.0
                if speed is not None and t_file0 is not None:
                    delay = t_wall0 + (last_ns - t_file0) / 1e9 / speed - loop.time()
                if delay > 0.0005 or len(batch) >= 500:
                    # Flush before awaiting: a subscriber handled meanwhile must see a true
                    # book that matches exactly the frames already sent.
                    if batch:
                        sink(category, batch)
                        batch = []
                    await asyncio.sleep(max(0.0, delay))
                parts = topic.split(".")
                if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit():
                    book = self._books.get(topic)
                    if book is None:
                        book = self._books[topic] = _FileBook(parts[2])
                    try:
                        book.apply(msg)
                    except (KeyError, TypeError, ValueError):
                        continue  # a malformed book frame: neither applied nor forwarded
                batch.append((topic, raw))
                self.frames_sent += 1
            if batch:
                sink(category, batch)
            self.passes += 1
            if not self.loop:
                self._finished.set()
                return
            await asyncio.sleep(0)


def _guess_category(topic: str, raw: str) -> str | None:
    """Spot puts ``ts`` before ``type`` in book frames of depth > 1, and its trades have no ``L``."""
    if topic.startswith("orderbook.") and not topic.startswith("orderbook.1."):
        return "spot" if raw.find('"ts"') < raw.find('"type"') else "linear"
    if topic.startswith("publicTrade."):
        if '"L":' in raw:
            return "inverse" if topic.endswith("USD") else "linear"
        return "spot"
    return None


# ----------------------------------------------------------------------------------- faults


_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIMED_ONLY = ("drop", "stall")
_PLAN_KINDS = ("drop", "stall", *INJECT_KINDS)


@dataclass(slots=True)
class FaultPlan:
    """A seeded random fault schedule for soak runs.

    Grammar (comma-separated, each kind at most once)::

        spec     := item ("," item)*
        item     := kind "=" value
        kind     := drop | stall | duplicate | gap | reorder | crossed | reset
                    | resend_snapshot | malformed
        value    := duration | fraction
        duration := number ("ms" | "s" | "m" | "h")     e.g. 30s, 1.5m, 500ms
        fraction := number in [0, 1] without a unit     e.g. 0.01

    A duration means "on average every that long" (exponential gaps): ``drop`` and ``stall``
    hit every connection, the other kinds one randomly chosen subscribed book topic. A
    fraction means "probability per delta frame" (each delta of a subscribed book topic draws
    once); ``drop`` and ``stall`` take durations only. The fractions may sum to at most 1.

    Attributes:
        every_s: kind -> mean interval, s.
        per_delta: kind -> probability per delta frame.
        seed: Seed of every random draw.
    """

    every_s: dict[str, float] = field(default_factory=dict)
    per_delta: dict[str, float] = field(default_factory=dict)
    seed: int = 1

    @classmethod
    def parse(cls, spec: str, seed: int = 1) -> FaultPlan:
        """Parse a plan such as ``"drop=30s,gap=0.01"``.

        Raises:
            UsageError: an unknown kind, a repeated kind or a bad value (one-line message).
        """
        plan = cls(seed=seed)
        items = [s.strip() for s in spec.split(",")]
        if not spec.strip():
            raise UsageError("empty fault plan: use e.g. 'drop=30s,gap=0.01'")
        for item in items:
            name, eq, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not eq or not name or not value:
                raise UsageError(f"bad fault {item!r}: use kind=value, e.g. gap=0.01 or drop=30s")
            if name not in _PLAN_KINDS:
                raise UsageError(f"unknown fault {name!r}: use one of {', '.join(_PLAN_KINDS)}")
            if name in plan.every_s or name in plan.per_delta:
                raise UsageError(f"fault {name!r} given twice")
            m = _DURATION.match(value)
            if m is not None:
                seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
                if not seconds > 0.0:
                    raise UsageError(f"bad fault {item!r}: the interval must be > 0")
                plan.every_s[name] = seconds
                continue
            try:
                p = float(value)
            except ValueError:
                p = math.nan
            if name in _TIMED_ONLY:
                raise UsageError(f"bad fault {item!r}: {name} takes an interval such as 30s or 2m")
            if not 0.0 <= p <= 1.0:
                raise UsageError(f"bad fault {item!r}: use an interval such as 30s or a probability in [0, 1]")
            if p > 0.0:
                plan.per_delta[name] = p
        if sum(plan.per_delta.values()) > 1.0:
            raise UsageError("fault probabilities add up to more than 1")
        return plan


# ----------------------------------------------------------------------------------- server


class _TopicFault:
    """Wire corruption pending or active on one (connection, book topic)."""

    __slots__ = ("pending", "held", "offset")

    def __init__(self) -> None:
        self.pending: deque[str] = deque()  # duplicate / gap / reorder, applied to next deltas
        self.held: str | None = None  # a delta held back by "reorder"
        self.offset: int | None = None  # "reset": u sent = true u - offset

    def idle(self) -> bool:
        return not self.pending and self.held is None and self.offset is None


class _Connection(ServerConnection):
    """A server connection with bybitmon's per-connection state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = self.loop.time()
        self.category = ""
        self.conn_id = _conn_id()
        self.topics: dict[str, None] = {}  # subscribed, in subscription order
        self.args_chars = 0  # total length of the subscribed topics
        self.faults: dict[str, _TopicFault] = {}
        self.stalled = False
        self.dead = False
        self.last_rx = now  # loop.time() of the last bytes from the client (control frames too)
        self.last_tx = now  # loop.time() of the last frame we wrote outside the fan-out

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


class BybitServer:
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
        max_buffer_bytes: A connection whose unsent data passes this many bytes is dropped.
        compression: ``"deflate"`` to offer permessage-deflate; off by default because
            compressing every frame per connection costs more CPU than the fan-out itself.
    """

    def __init__(self, source: SimulatedSource | FileSource, *, host: str = "127.0.0.1", port: int = 0,
                 idle_timeout_s: float = 600.0, max_buffer_bytes: int = 16 * 2**20,
                 compression: str | None = None) -> None:
        if not idle_timeout_s > 0:
            raise UsageError(f"bad idle timeout {idle_timeout_s}: use a positive number of seconds")
        self.source = source
        self.host = host
        self.port = port
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_buffer_bytes = max_buffer_bytes
        self.compression = compression
        #: Faults put on the wire, per kind: one per connection hit (``reject``: per call).
        self.fault_counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        #: Connections dropped because their write buffer overflowed.
        self.overflow_drops = 0
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
        return f"ws://{host}:{self.port}"

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

    async def serve_forever(self) -> None:
        """Run until cancelled; re-raises an error of the source (e.g. a corrupt recording)."""
        if self._source_task is not None:
            await self._source_task  # returns normally when a file replay ends
        await asyncio.Future()

    def true_book(self, symbol: str, category: str = "linear") -> tuple[dict[str, str], dict[str, str]]:
        """The source's true book of ``symbol``: ``(bids, asks)`` as ``{price: size}`` strings."""
        return self.source.true_book(category, symbol)

    def connections(self, category: str | None = None) -> int:
        """Open connections (on one category, or all)."""
        cats = SERVED_CATEGORIES if category is None else (category,)
        return sum(len(self._conns[c]) for c in cats)

    # -- handshake and per-connection handling --------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Any:
        path = request.path.split("?", 1)[0]
        if path.startswith(REST_PREFIX):
            return self._rest_reply(request)
        if path not in _PATHS:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no such stream {path}; use /v5/public/"
                                                           f"{{{','.join(SERVED_CATEGORIES)}}}\n")
        return None

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
        self._conns[category].add(conn)
        self.source.open(category)
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

    def _forget(self, conn: _Connection) -> None:
        conn.dead = True
        self._conns[conn.category].discard(conn)
        self._unroute(conn)

    def _unroute(self, conn: _Connection) -> None:
        routes = self._routes[conn.category]
        for topic in conn.topics:
            subs = routes.get(topic)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del routes[topic]
        for topic in list(conn.faults):
            self._clear_fault(conn, topic)

    def _send(self, conn: _Connection, text: str) -> None:
        # Written synchronously, so a reply or snapshot is ordered exactly among the fan-out
        # frames (an await here, as in connection.send(), could let a delta overtake a snapshot).
        try:
            conn.protocol.send_text(text.encode())
        except InvalidState:
            return
        _flush(conn)
        conn.last_tx = conn.loop.time()

    def _reply(self, conn: _Connection, success: bool, ret_msg: str, req_id: Any, op: str) -> None:
        """An ack or pong in the category's shape.

        Spot: ``{"success","ret_msg","conn_id",["req_id"],"op"}``, ``req_id`` only when sent;
        linear/inverse: ``req_id`` always, ``""`` when none was sent (live capture
        ``cryptofeed_linear_*.ndjson`` and the docs' examples).
        """
        msg: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id}
        if req_id is not _MISSING:
            msg["req_id"] = req_id
        elif conn.category != "spot":
            msg["req_id"] = ""
        msg["op"] = op
        self._send(conn, orjson.dumps(msg).decode().translate(_GO_ESCAPES))

    def _on_message(self, conn: _Connection, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if type(msg) is not dict:
            # Bad requests get an error frame and the connection stays open.
            self._send(conn, orjson.dumps({"success": False, "ret_msg": "error:request is not a JSON object",
                                           "conn_id": conn.conn_id, "op": ""}).decode())
            return
        op = msg.get("op")
        req_id = msg.get("req_id", _MISSING)
        if op == "ping":
            self._reply(conn, True, "pong", req_id, "ping")
        elif op == "subscribe":
            self._subscribe(conn, msg.get("args"), req_id)
        elif op == "unsubscribe":
            self._unsubscribe(conn, msg.get("args"), req_id)
        else:
            self._reply(conn, False, f"error:unsupported op {op!r}" if isinstance(op, str) else
                        "error:missing op", req_id, op if isinstance(op, str) else "")

    def _subscribe(self, conn: _Connection, args: Any, req_id: Any) -> None:
        category = conn.category
        if type(args) is not list or not all(type(a) is str for a in args):
            self._reply(conn, False, "error:args must be a list of topic strings", req_id, "subscribe")
            return
        if category == "spot" and len(args) > SPOT_ARGS_PER_REQUEST:
            # "Spot can input up to 10 args for each subscription request"; live reply:
            # {"success":false,"ret_msg":"args size \u003e10",...} (whole request refused).
            self._reply(conn, False, f"args size >{SPOT_ARGS_PER_REQUEST}", req_id, "subscribe")
            return
        source = self.source
        for topic in args:
            if topic.rsplit(".", 1)[-1] in self._rejected or not source.serves(category, topic):
                # One bad topic fails the whole request (pybit PR #373 repro: "error:handler not found").
                self._reply(conn, False, f"error:handler not found,topic:{topic}", req_id, "subscribe")
                return
        new = [t for t in dict.fromkeys(args) if t not in conn.topics]
        chars = conn.args_chars + sum(len(t) for t in new)
        if chars > ARGS_CHARS_PER_CONN:
            self._reply(conn, False, f"error:args length {chars} >{ARGS_CHARS_PER_CONN} on this connection",
                        req_id, "subscribe")
            return
        self._reply(conn, True, "subscribe" if category == "spot" else "", req_id, "subscribe")
        conn.args_chars = chars
        routes = self._routes[category]
        for topic in dict.fromkeys(args):
            if topic not in conn.topics:
                conn.topics[topic] = None
                routes.setdefault(topic, set()).add(conn)
            if topic.startswith("orderbook."):
                # "The first frame after a subscribe is a snapshot"; a repeated subscribe is how
                # a client resyncs, so it gets a fresh snapshot and any wire fault ends.
                self._clear_fault(conn, topic)
                snap = source.snapshot_frame(category, topic)
                if snap is not None:
                    self._send(conn, snap)

    def _unsubscribe(self, conn: _Connection, args: Any, req_id: Any) -> None:
        if type(args) is not list or not all(type(a) is str for a in args):
            self._reply(conn, False, "error:args must be a list of topic strings", req_id, "unsubscribe")
            return
        routes = self._routes[conn.category]
        for topic in args:
            if topic in conn.topics:
                del conn.topics[topic]
                conn.args_chars -= len(topic)
                subs = routes.get(topic)
                if subs is not None:
                    subs.discard(conn)
                    if not subs:
                        del routes[topic]
                self._clear_fault(conn, topic)
        self._reply(conn, True, "unsubscribe" if conn.category == "spot" else "", req_id, "unsubscribe")

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
            if plan_total and topic.startswith("orderbook.") and _is_delta(raw):
                r = self._plan_rng.random()
                if r < plan_total:
                    for edge, kind in self._plan_cum:
                        if r < edge:
                            if kind in _NEXT_DELTA_KINDS:
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
        for conn in dirty:
            _flush(conn)
        for topic, kind in deferred:
            self._inject_topic(category, topic, kind)

    def _deliver_faulty(self, conn: _Connection, topic: str, raw: str) -> None:
        st = conn.faults.get(topic)
        if st is None:
            self._send(conn, raw)
            return
        counts = self.fault_counts
        if not _is_delta(raw):
            # A source snapshot replaces the client's book: renumbering ends, a held delta
            # (older than the snapshot) goes out first.
            if st.held is not None:
                self._send(conn, st.held)
                st.held = None
            st.offset = None
            self._send(conn, raw)
        else:
            if st.offset is not None:
                raw = _renumber(raw, st.offset)
            if st.held is not None:
                self._send(conn, raw)
                self._send(conn, st.held)
                st.held = None
                counts["reorder"] += 1
            elif st.pending:
                kind = st.pending.popleft()
                if kind == "duplicate":
                    self._send(conn, raw)
                    self._send(conn, raw)
                elif kind == "gap":
                    pass  # never sent: the client sees u jump by 2
                else:  # reorder: hold this one back until the next delta has gone out
                    st.held = raw
                if kind != "reorder":
                    counts[kind] += 1
            else:
                self._send(conn, raw)
        if st.idle():
            self._clear_fault(conn, topic)

    def _fault_state(self, conn: _Connection, topic: str) -> _TopicFault:
        st = conn.faults.get(topic)
        if st is None:
            st = conn.faults[topic] = _TopicFault()
            self._special[conn.category].setdefault(topic, set()).add(conn)
        return st

    def _clear_fault(self, conn: _Connection, topic: str) -> None:
        if conn.faults.pop(topic, None) is None:
            return
        special = self._special[conn.category]
        odd = special.get(topic)
        if odd is not None:
            odd.discard(conn)
            if not odd:
                del special[topic]

    # -- faults ---------------------------------------------------------------------------

    async def drop(self, category: str | None = None) -> int:
        """Abruptly drop every connection (of one category, or all): TCP abort, no close frame.

        Returns:
            How many connections were dropped.
        """
        n = 0
        for cat in (SERVED_CATEGORIES if category is None else (category,)):
            for conn in list(self._conns[cat]):
                self._abort(conn)
                n += 1
        self.fault_counts["drop"] += n
        await asyncio.sleep(0)
        return n

    def _abort(self, conn: _Connection) -> None:
        # Unroute first so no frame is written to a transport that is going away.
        self._forget(conn)
        conn.transport.abort()

    def stall(self, category: str | None = None) -> int:
        """Existing connections (of one category, or all) get nothing from now on: no data, no
        pong, no ack. They stay open; new connections are served normally.

        Returns:
            How many connections were stalled.
        """
        n = 0
        for cat in (SERVED_CATEGORIES if category is None else (category,)):
            for conn in self._conns[cat]:
                if not conn.stalled:
                    conn.stalled = True
                    self._unroute(conn)
                    n += 1
        self.fault_counts["stall"] += n
        return n

    def reject(self, symbol: str) -> None:
        """From now on, subscriptions naming ``symbol`` (any category) get a failure ack."""
        self._rejected.add(symbol)
        self.fault_counts["reject"] += 1

    def inject(self, kind: str, symbol: str, category: str = "linear") -> int:
        """Corrupt the wire stream of ``symbol``'s book topic for every current subscriber.

        Kinds: ``duplicate`` (the next delta is sent twice), ``gap`` (the next delta is not
        sent), ``reorder`` (the next two deltas swap places), ``crossed`` (a delta with the
        next ``u`` whose best bid >= best ask, now), ``reset`` (the true book as a snapshot with
        ``u=1`` now; the topic's following deltas on that connection are renumbered 2, 3, ...
        until it resubscribes), ``resend_snapshot`` (a snapshot of the true book with the
        current ``u``, now), ``malformed`` (a frame of broken JSON, now). The true book never
        changes.

        Returns:
            How many connections it was applied or scheduled on.

        Raises:
            UsageError: unknown kind, or a symbol with no book on ``category``.
        """
        if kind not in INJECT_KINDS:
            raise UsageError(f"unknown fault {kind!r}: use one of {', '.join(INJECT_KINDS)}")
        if category not in SERVED_CATEGORIES:
            raise UsageError(f"bad category {category!r}: use {', '.join(SERVED_CATEGORIES)}")
        topic = self.source.book_topic(category, symbol)
        if topic is None:
            raise UsageError(f"no book of {symbol!r} on {category} to corrupt")
        return self._inject_topic(category, topic, kind)

    def _inject_topic(self, category: str, topic: str, kind: str) -> int:
        subs = self._routes[category].get(topic)
        if not subs:
            return 0
        if kind in _NEXT_DELTA_KINDS:
            for conn in subs:
                self._fault_state(conn, topic).pending.append(kind)
            return len(subs)
        snap = self.source.snapshot_frame(category, topic)
        if snap is None:
            return 0
        msg = orjson.loads(snap)
        data = msg["data"]
        u = data["u"]
        n = 0
        for conn in list(subs):
            st = conn.faults.get(topic)
            offset = st.offset if st is not None and st.offset is not None else 0
            if kind == "crossed":
                # A bid at the best ask (or an ask at the best bid): bid >= ask.
                if data["a"]:
                    b, a = [[data["a"][0][0], data["a"][0][1]]], []
                elif data["b"]:
                    b, a = [], [[data["b"][0][0], data["b"][0][1]]]
                else:
                    b, a = [["2", "1"]], [["1", "1"]]
                text = _book_frame(topic, "delta", msg["ts"], data["s"], b, a, u + 1 - offset,
                                   data.get("seq"), msg.get("cts"), ts_first=snap.find('"ts"') < snap.find('"type"'))
            elif kind == "reset":
                # "u == 1 means the service restarted": the client must replace its book.
                st = self._fault_state(conn, topic)
                st.held = None
                st.offset = u - 1
                text = _renumber(snap, u - 1)
            elif kind == "resend_snapshot":
                # "A snapshot may arrive at any time": true u, so renumbering ends.
                if st is not None:
                    st.held = None
                    st.offset = None
                    if st.idle():
                        self._clear_fault(conn, topic)
                text = snap
            else:  # malformed: a frame cut off mid-way
                text = snap[: max(20, len(snap) // 3)]
            self._send(conn, text)
            self.fault_counts[kind] += 1
            n += 1
        return n

    def apply_plan(self, plan: FaultPlan | None) -> None:
        """Run a :class:`FaultPlan` from now on (replacing any earlier one; None stops it)."""
        for task in [t for t in self._tasks if t.get_name().startswith("bybitmon-plan")]:
            task.cancel()
            self._tasks.remove(task)
        self._plan = plan
        self._plan_cum = []
        self._plan_total = 0.0
        if plan is None:
            return
        self._plan_rng = random.Random(f"bybitmon.faults:{plan.seed}")
        total = 0.0
        for kind, p in plan.per_delta.items():
            total += p
            self._plan_cum.append((total, kind))
        self._plan_total = total
        for kind, every in plan.every_s.items():
            rng = random.Random(f"bybitmon.faults:{plan.seed}:{kind}")
            self._tasks.append(asyncio.create_task(self._timed_fault(kind, every, rng),
                                                   name=f"bybitmon-plan-{kind}"))

    async def _timed_fault(self, kind: str, every_s: float, rng: random.Random) -> None:
        while True:
            await asyncio.sleep(rng.expovariate(1.0 / every_s))
            if kind == "drop":
                await self.drop()
            elif kind == "stall":
                self.stall()
            else:
                book_topics = [(cat, t) for cat in SERVED_CATEGORIES
                               for t in self._routes[cat] if t.startswith("orderbook.")]
                if book_topics:
                    cat, topic = rng.choice(sorted(book_topics))
                    self._inject_topic(cat, topic, kind)

    # -- housekeeping ---------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Drop overflowing connections and close idle ones."""
        interval = min(0.1, self.idle_timeout_s / 5)
        loop = asyncio.get_running_loop()
        limit = self.max_buffer_bytes
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for cat in SERVED_CATEGORIES:
                for conn in list(self._conns[cat]):
                    if conn.transport.get_write_buffer_size() > limit:
                        # The client reads slower than the stream: drop it, as Bybit would,
                        # rather than buffer without bound.
                        self.overflow_drops += 1
                        self._abort(conn)
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


async def run_serve(host: str, port: int, *, simulate: bool, file: str | None, symbols: list[str],
                    seed: int, speed: float | None, faults: str | None, idle_timeout_s: float,
                    ready: Callable[[str], None] | None = None) -> None:
    """``bybitmon serve``: serve a simulated market or a file until cancelled.

    Args:
        host, port: Where to listen (port 0 picks a free one).
        simulate: Serve a :class:`SimulatedSource` of ``symbols`` (exclusive with ``file``).
        file: Serve this recording / capture with a :class:`FileSource` (``symbols`` is then
            ignored: the file's own topics are served).
        symbols: Symbols of the simulated market.
        seed: Simulator and fault-plan seed.
        speed: Simulated or replay speed; ``None`` = 1 for a simulation, as fast as possible
            for a file.
        faults: A :class:`FaultPlan` spec, or None.
        idle_timeout_s: Idle cut-off, s (Bybit: 600).
        ready: Called once with ``ws://HOST:PORT`` when listening.

    Raises:
        UsageError: bad combination of arguments or a bad fault spec.
        RecordingError: the file cannot be read.
        OSError: the address cannot be bound.
    """
    if simulate == (file is not None):
        raise UsageError("give either a simulated market or a file to serve, not both or neither")
    plan = FaultPlan.parse(faults, seed=seed) if faults is not None else None
    source: SimulatedSource | FileSource
    if simulate:
        source = SimulatedSource(symbols, seed, speed)
    else:
        assert file is not None
        source = FileSource(file, None, speed)
    async with BybitServer(source, host=host, port=port, idle_timeout_s=idle_timeout_s) as server:
        if plan is not None:
            server.apply_plan(plan)
        if ready is not None:
            ready(server.url)
        await server.serve_forever()
