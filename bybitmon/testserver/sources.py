"""Where ``bybitmon serve`` gets its frames: a simulated market or a file.

* :class:`SimulatedSource`: one :class:`~bybitmon.sim.market.MarketSimulator` per category,
  advanced on the wall clock;
* :class:`FileSource`: a recording or NDJSON capture replayed at its own pace.

Both keep the *true book*: the book a correct client holds after applying every legitimate
frame sent so far, which is what a subscriber's snapshot is built from and what tests compare
a client's book with. A source hands its frames to a :data:`Sink` as they become due.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from typing import Callable, Sequence

import orjson

from ..core.book import OrderBook
from ..core.limits import BOOK_DEPTHS, SERVED_CATEGORIES
from ..errors import UsageError
from ..sim.depths import DepthMarket
from ..transport.recording import FrameReader
from .faults import book_frame

__all__ = ["Sink", "SimulatedSource", "FileSource", "Source"]

_TOPIC_PREFIX = '{"topic":"'


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


Sink = Callable[[str, list[tuple[str, str]]], None]
"""What a source calls with ``(category, [(topic, frame_text), ...])`` as frames become due."""


# ----------------------------------------------------------------------------------- sources


class _SimCategory:
    __slots__ = ("sim", "t0", "start_ms")

    def __init__(self, sim: DepthMarket, t0: float, start_ms: int) -> None:
        self.sim = sim
        self.t0 = t0  # loop.time() at start_ms, s
        self.start_ms = start_ms


def _book_parts(topic: str) -> tuple[int, str] | None:
    """``(depth, symbol)`` of ``orderbook.{depth}.{symbol}``, else None."""
    parts = topic.split(".")
    if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit():
        return int(parts[1]), parts[2]
    return None


class SimulatedSource:
    """A seeded simulated market: one :class:`~bybitmon.sim.depths.DepthMarket` per category, on
    the wall clock, publishing every depth of every symbol at once as Bybit does.

    A category's simulator starts when it is first needed (a connection on its path, or a
    :meth:`true_book` call), so serving 500 symbols on linear does not also pay for spot and
    inverse nobody reads; likewise a depth of a symbol is computed only while someone is
    subscribed to it (:meth:`set_topic_active`). Every simulator gets the same symbols; linear
    uses ``seed`` as given, spot and inverse a seed derived from it.

    Args:
        symbols: Instruments, e.g. ``["BTCUSDT", "ETHUSDT"]``.
        seed: Seed of the simulators.
        speed: Simulated time per wall-clock time (2.0 = twice as fast). ``None`` means 1.0.
        categories: Categories served.
        depths: Book depths served as ``orderbook.{depth}.SYM`` (others are refused); default
            all of Bybit's.
        tick_s: Wall-clock interval between :meth:`DepthMarket.advance` calls, s.
        max_step_ms: Most simulated time one tick may cover, ms; when the CPU cannot keep up,
            the simulated clock falls behind the wall clock instead of the ticks growing.
        trade_rate: Taker orders per second per symbol (see :class:`MarketSimulator`).
        plant_every_s: Mean time between planted large orders per symbol, s.
        book_interval_ms: None (default) for Bybit's push interval of each depth
            (:data:`~bybitmon.core.limits.BOOK_PUSH_MS`); a number makes every depth push at that
            interval and the market move at that pace (tests use it to slow or speed the stream).

    Raises:
        UsageError: no symbols, or a bad speed, depth or category.
    """

    def __init__(self, symbols: Sequence[str], seed: int = 1, speed: float | None = 1.0, *,
                 categories: Sequence[str] = SERVED_CATEGORIES, depths: Sequence[int] = BOOK_DEPTHS,
                 tick_s: float = 0.02, max_step_ms: int = 250, trade_rate: float = 5.0,
                 plant_every_s: float = 20.0, book_interval_ms: int | None = None) -> None:
        names = list(dict.fromkeys(symbols))
        if not names:
            raise UsageError("the simulated market needs at least one symbol")
        speed = 1.0 if speed is None else float(speed)
        if not 0.0 < speed < math.inf:
            raise UsageError(f"bad speed {speed}: use a positive number")
        for depth in depths:
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
        self.depths = tuple(sorted(set(depths)))
        self.tick_s = tick_s
        self.max_step_ms = max_step_ms
        self.book_interval_ms = book_interval_ms
        self._sim_kwargs = dict(trade_rate=trade_rate, plant_every_s=plant_every_s)
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

    def describe(self) -> dict[str, list]:
        """What is served: ``{"categories": [...], "symbols": [...], "depths": [...]}``."""
        return {"categories": list(self.categories), "symbols": list(self.symbols_list), "depths": list(self.depths)}

    def serves(self, category: str, topic: str) -> bool:
        """Whether ``topic`` exists here: ``orderbook.{depth}.SYM`` or ``publicTrade.SYM``."""
        if category not in self.categories:
            return False
        book = _book_parts(topic)
        if book is not None:
            return book[0] in self.depths and book[1] in self._symbols and topic == f"orderbook.{book[0]}.{book[1]}"
        parts = topic.split(".")
        if len(parts) == 2 and parts[0] == "publicTrade":
            return parts[1] in self._symbols
        return False

    def book_topics(self, category: str, symbol: str) -> list[str]:
        """Every book topic of ``symbol`` (empty when unknown)."""
        if category in self.categories and symbol in self._symbols:
            return [f"orderbook.{d}.{symbol}" for d in self.depths]
        return []

    def book_topic(self, category: str, symbol: str) -> str | None:
        """The depth-50 book topic of ``symbol`` (else its deepest), or None when unknown."""
        topics = self.book_topics(category, symbol)
        if not topics:
            return None
        return f"orderbook.50.{symbol}" if 50 in self.depths else topics[-1]

    def open(self, category: str) -> None:
        """Start ``category``'s simulator if it is not running yet (idempotent)."""
        if category in self._cats or category not in self.categories:
            return
        loop_time = asyncio.get_running_loop().time() if _has_loop() else time.monotonic()
        start_ms = int(time.time() * 1000)
        every = self.book_interval_ms
        push = None if every is None else {d: every for d in self.depths}
        sim = DepthMarket(self.symbols_list, self.category_seed(category), category=category, depths=self.depths,
                          push_ms=push, start_ms=start_ms, book_interval_ms=every or 20,
                          **self._sim_kwargs)  # type: ignore[arg-type]
        st = self._cats[category] = _SimCategory(sim, loop_time, start_ms)
        self._emit(category, st.sim.advance(start_ms))

    def add_symbol(self, symbol: str) -> None:
        """List ``symbol`` on every category from now on (running simulators get it at once).

        Raises:
            UsageError: an empty name or one already listed.
        """
        if not symbol or symbol in self._symbols:
            raise UsageError(f"cannot list {symbol!r}: empty or already listed")
        self.symbols_list.append(symbol)
        self._symbols = frozenset(self.symbols_list)
        for st in self._cats.values():
            st.sim.add_symbol(symbol)

    def market(self, category: str) -> DepthMarket | None:
        """``category``'s simulator (started if needed), or None when the category is not served."""
        if category not in self.categories:
            return None
        self.open(category)
        return self._cats[category].sim

    def set_topic_active(self, category: str, topic: str, active: bool) -> None:
        """A book topic got its first subscriber (or lost its last): start (stop) computing it."""
        book = _book_parts(topic)
        st = self._cats.get(category)
        if book is None or st is None or not self.serves(category, topic):
            return
        st.sim.set_active(book[1], book[0], active)

    def _emit(self, category: str, frames: list[tuple[int, str]]) -> None:
        if not frames or self._sink is None:
            return
        # Every simulator frame starts with {"topic":"...": slice instead of parsing.
        self._sink(category, [(raw[10:raw.index('"', 10)], raw) for _, raw in frames])

    def true_book(self, category: str, symbol: str, depth: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """``(bids, asks)`` as ``{price: size}`` strings, best first: what a correct client of
        ``orderbook.{depth}.{symbol}`` holds after the last frame sent (default depth 50).

        Raises:
            KeyError: unknown category, symbol or depth.
        """
        if category not in self.categories:
            raise KeyError(f"category {category!r} is not served")
        self.open(category)
        return self._cats[category].sim.true_book(symbol, depth)

    def snapshot_frame(self, category: str, topic: str) -> str | None:
        """A snapshot of the true book of ``topic`` with the current ``u``/``seq``."""
        self.open(category)
        st = self._cats.get(category)
        book = _book_parts(topic)
        if st is None or book is None or not self.serves(category, topic):
            return None
        return st.sim.snapshot_frame(book[1], book[0])

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


class _WireFormat:
    """How a file writes its numbers, learned from its strings, so a book held as floats by
    :class:`~bybitmon.core.book.OrderBook` goes back on the wire as the file wrote it.

    Linear and inverse write fixed decimals (``"16493.50"``), spot trims trailing zeros
    (``"0.5"``); ``float`` keeps every digit of either, so formatting with the most decimals
    seen, trimmed unless the file pads, gives back the file's own strings.
    """

    __slots__ = ("pdec", "sdec", "pad")

    def __init__(self) -> None:
        self.pdec = 0
        self.sdec = 0
        self.pad = False  # a fractional part ending in 0 was seen: fixed decimals

    def learn(self, levels: list) -> None:
        for p, s in levels:
            for text, is_price in ((p, True), (s, False)):
                dot = text.find(".")
                if dot < 0:
                    continue
                n = len(text) - dot - 1
                if is_price:
                    if n > self.pdec:
                        self.pdec = n
                elif n > self.sdec:
                    self.sdec = n
                if text.endswith("0"):
                    self.pad = True

    def text(self, x: float, dec: int) -> str:
        s = f"{x:.{dec}f}"
        if not self.pad and dec:
            s = s.rstrip("0").rstrip(".")
        return s

    def levels(self, prices: list[float], book: dict[float, float]) -> list[list[str]]:
        pdec, sdec = self.pdec, self.sdec
        return [[self.text(p, pdec), self.text(book[p], sdec)] for p in prices]


def _levels(side: list) -> list[tuple[float, float]]:
    return [(float(p), float(s)) for p, s in side]


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
        self._books: dict[str, OrderBook] = {}
        self._formats: dict[str, _WireFormat] = {}
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

    def book_topics(self, category: str, symbol: str) -> list[str]:
        """Every book topic of ``symbol`` in the file, shallowest first."""
        if category != self.category:
            return []
        found = [b for t in self._topics if (b := _book_parts(t)) is not None and b[1] == symbol]
        return [f"orderbook.{d}.{symbol}" for d, _ in sorted(found)]

    def describe(self) -> dict[str, list]:
        """What the file serves: ``{"categories": [...], "symbols": [...], "depths": [...]}``."""
        depths = sorted({b[0] for t in self._topics if (b := _book_parts(t)) is not None})
        return {"categories": [self.category], "symbols": sorted(self._symbols), "depths": depths}

    def open(self, category: str) -> None:
        """Nothing to start: the replay runs from :meth:`run`."""

    def set_topic_active(self, category: str, topic: str, active: bool) -> None:
        """Nothing to do: the file's frames are all read anyway."""

    def true_book(self, category: str, symbol: str, depth: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """``(bids, asks)`` as ``{price: size}`` strings, best first, after the last frame sent,
        of ``orderbook.{depth}.{symbol}`` (default: the deepest in the file).

        Raises:
            KeyError: the file has no book of ``symbol`` in ``category`` (at that depth).
        """
        topic = self.book_topic(category, symbol) if depth is None else f"orderbook.{depth}.{symbol}"
        if depth is not None and topic not in self._topics:
            topic = None
        if topic is None:
            raise KeyError(f"no book of {symbol!r} on {category} in {self.path}")
        book = self._books.get(topic)
        if book is None or not book.ready:
            return {}, {}
        fmt = self._formats[topic]
        bids = fmt.levels(book.bid_px[::-1], book.bids)
        asks = fmt.levels(book.ask_px, book.asks)
        return {p: q for p, q in bids}, {p: q for p, q in asks}

    def snapshot_frame(self, category: str, topic: str) -> str | None:
        """A snapshot of ``topic``'s true book, or None before the file's first snapshot."""
        book = self._books.get(topic) if category == self.category else None
        if book is None or not book.ready:
            return None
        fmt = self._formats[topic]
        depth = topic.split(".")[1]
        return book_frame(topic, "snapshot", book.ts_ms or 0, book.symbol, fmt.levels(book.bid_px[::-1], book.bids),
                          fmt.levels(book.ask_px, book.asks), book.update_id or 0, book.seq, book.cts_ms,
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
                        book = self._books[topic] = OrderBook(parts[2])
                        self._formats[topic] = _WireFormat()
                    try:
                        self._apply(topic, book, msg)
                    except (KeyError, TypeError, ValueError, AttributeError):
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


    def _apply(self, topic: str, book: OrderBook, msg: dict) -> None:
        """Apply one book frame of the file to the topic's true book (Bybit's rules, see
        :class:`~bybitmon.core.book.OrderBook`: after a gap or a crossed book it waits for a snapshot)."""
        data = msg["data"]
        u, b, a = data["u"], data["b"], data["a"]
        if type(u) is not int:
            raise TypeError("u is not an integer")
        bids, asks = _levels(b), _levels(a)
        fmt = self._formats[topic]
        fmt.learn(b)
        fmt.learn(a)
        seq, ts, cts = data.get("seq"), msg.get("ts"), msg.get("cts")
        book.apply_fields(msg.get("type") == "snapshot", u, seq if type(seq) is int else book.seq,
                          ts if type(ts) is int else (book.ts_ms or 0), cts if type(cts) is int else book.cts_ms,
                          bids, asks)


def _guess_category(topic: str, raw: str) -> str | None:
    """Spot puts ``ts`` before ``type`` in book frames of depth > 1, and its trades have no ``L``."""
    if topic.startswith("orderbook.") and not topic.startswith("orderbook.1."):
        return "spot" if raw.find('"ts"') < raw.find('"type"') else "linear"
    if topic.startswith("publicTrade."):
        if '"L":' in raw:
            return "inverse" if topic.endswith("USD") else "linear"
        return "spot"
    return None




#: Either source; both have the same methods.
Source = SimulatedSource | FileSource
