"""What the live commands (``watch``, ``record``) share: how they end, what they log, and
which failures are theirs rather than the network's.

A live command ends for one of four reasons, held by :class:`Stop`: a signal (Ctrl-C: status
130, SIGTERM: 143), an output error (stdout or a file: never retried as a network fault), a
fatal error (a recording that cannot be written), or every subscription refused by the server.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, TextIO

from ..core.monitor import Monitor
from ..core.protocol import topic_symbol
from ..core.screener import ScreenFilter
from ..errors import printable
from ..errors import BybitmonError, RecordingError, SubscriptionError

if TYPE_CHECKING:
    from ..transport.feed import LiveFeed

__all__ = ["LiveOptions", "Stop", "SafeFormatter", "QuietWatch", "Refusals", "row_statuses", "log_to", "flush_recording",
           "close_recording", "STATUS_SIGINT", "STATUS_SIGTERM"]

STATUS_SIGINT = 128 + signal.SIGINT    # 130: what shells report for a command ended by Ctrl-C
STATUS_SIGTERM = 128 + signal.SIGTERM  # 143


@dataclass
class LiveOptions:
    """What ``watch`` and ``record`` were asked for (parsed and range-checked by the CLI)."""

    symbols: list[str]
    category: str = "linear"
    depth: int = 50
    window_ms: int = 60_000
    bps: float = 50.0
    density_x: float = 5.0
    min_notional: float = 0.0
    sort: str = "tps"
    json: bool = False
    interval_ms: int = 1000
    record: str | None = None
    force: bool = False
    url: str | None = None
    testnet: bool = False
    ladder: bool = False
    duration_s: float | None = None
    refresh_s: float = 0.25
    alerts: list[str] = field(default_factory=list)
    alerts_out: str | None = None
    bell: bool = False
    quiet_warn_s: float = 10.0
    client_kwargs: dict = field(default_factory=dict)
    # watch's interactive screen (bybitmon/app/screen.py): quote units, the density screen's
    # filters, and whether keys are read (None: when stdin is a terminal and not --json).
    quote_units: bool = False
    density_filter: ScreenFilter = field(default_factory=ScreenFilter)
    interactive: bool | None = None


class Stop:
    """Why and when a live command ends; ``event`` is set on the first reason."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.status = 0
        self.error: BybitmonError | None = None

    @property
    def is_set(self) -> bool:
        return self.event.is_set()

    def signal(self, signum: int) -> None:
        if not self.event.is_set():
            self.status = 128 + signum
        self.event.set()

    def fail(self, exc: BybitmonError) -> None:
        """End with ``exc`` (the first error wins)."""
        if self.error is None:
            self.error = exc
        self.event.set()

    def outcome(self, *refusals: Refusals) -> int:
        """The command's exit status: raises the error that ended it, else the signal's status,
        else raises the first refusal (some subscriptions were refused), else 0."""
        if self.error is not None:
            raise self.error
        if self.status:
            return self.status
        for r in refusals:
            err = r.error()
            if err is not None:
                raise err
        return 0

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.signal, sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
                pass

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` or until a reason to stop arrives."""
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
        except asyncio.TimeoutError:
            pass


class SafeFormatter(logging.Formatter):
    """Log lines with anything from outside (close reasons, refusal messages) made inert."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), 1000)


class _ListHandler(logging.Handler):
    def __init__(self, sink: deque) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append((time.monotonic(), printable(f"{record.levelname.lower()}: {record.getMessage()}", 1000)))


def log_to(stream: TextIO | None, sink: deque | None = None) -> logging.Handler:
    """Install a WARNING handler on bybitmon's loggers: lines to ``stream`` or into ``sink``."""
    if sink is not None:
        handler: logging.Handler = _ListHandler(sink)
    else:
        handler = logging.StreamHandler(stream)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(SafeFormatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("bybitmon")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.WARNING:
        logger.setLevel(logging.WARNING)
    return handler


class Refusals:
    """Subscriptions the server refused, against what the user asked for.

    The table shows them in the symbol's row, ``--json`` as a status line; when every topic asked
    for is refused the command ends at once, and any refusal makes the exit status non-zero.
    """

    def __init__(self, topics: list[str], stop: Stop, on_refused: Callable[[str, str], None] | None = None) -> None:
        self.asked = set(topics)
        self.refused: dict[str, str] = {}
        self.stop = stop
        self.on_refused = on_refused

    def __call__(self, err: SubscriptionError) -> None:
        for topic in err.topics:
            if topic not in self.asked or topic in self.refused:
                continue
            self.refused[topic] = err.reason or str(err)
            if self.on_refused is not None:
                self.on_refused(topic, self.refused[topic])
        if self.refused and set(self.refused) >= self.asked:
            self.stop.fail(self.error())  # type: ignore[arg-type]

    def error(self) -> SubscriptionError | None:
        if not self.refused:
            return None
        items = sorted(self.refused.items())
        shown = "; ".join(f"{t} ({printable(why, 200)})" for t, why in items[:4])
        more = f" and {len(items) - 4} more" if len(items) > 4 else ""
        if set(self.refused) >= self.asked:
            what = "every subscription was refused by the server"
        else:
            what = f"{len(items)} of {len(self.asked)} subscriptions refused by the server"
        return SubscriptionError(f"{what}: {shown}{more}", tuple(t for t, _ in items))

    def symbol_errors(self) -> dict[str, str]:
        return {topic_symbol(t): "error: refused" for t in self.refused}


def row_statuses(feed: LiveFeed, refusals: Refusals, label: Callable[[str], str] = str) -> dict[str, str]:
    """Per row (``label(symbol)``), the health text that overrides the row's own: its connection
    reconnecting or connecting, or its subscription refused."""
    out: dict[str, str] = {}
    for c in feed.client.conns:
        h = c.health
        if h.state in ("reconnecting", "connecting"):
            text = f"reconnecting {h.reconnects}" if h.state == "reconnecting" else "connecting"
            for t in c.topics:
                out[label(topic_symbol(t))] = text
    for sym, text in refusals.symbol_errors().items():
        out[label(sym)] = text
    return out


class QuietWatch:
    """Warns when no market data for the asked symbols arrives for ``after_s`` while frames do
    (a server sending only pongs, acks or junk), once per quiet spell."""

    def __init__(self, monitor: Monitor, feed: LiveFeed, symbols: list[str], after_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.monitor = monitor
        self.feed = feed
        self.symbols = symbols
        self.after_s = after_s
        self.clock = clock
        self.last_data = -1
        self.since = clock()
        self.frames_at = 0
        self.warned = False

    def data_frames(self) -> int:
        states = self.monitor.states
        return sum(states[s].frames for s in self.symbols if s in states)

    def check(self) -> None:
        n = self.data_frames()
        now = self.clock()
        if n != self.last_data:
            self.last_data = n
            self.since = now
            self.frames_at = self.feed.frames
            self.warned = False
            return
        if not self.warned and now - self.since >= self.after_s:
            self.warned = True
            other = self.feed.frames - self.frames_at
            logging.getLogger("bybitmon.app").warning(
                "no market data for %s from %s in %.0f s (%d other frames received: pongs, acks or junk)",
                ", ".join(self.symbols[:5]) + (" ..." if len(self.symbols) > 5 else ""),
                self.feed.client.url, now - self.since, other)


def flush_recording(feed: LiveFeed, stop: Stop) -> None:
    if feed.recorder is not None and feed.fatal is None:
        try:
            feed.recorder.flush_if_due(time.time_ns())
        except RecordingError as exc:
            feed.fatal = exc
    if feed.fatal is not None:
        stop.fail(feed.fatal)  # type: ignore[arg-type]


def close_recording(feed: LiveFeed, stop: Stop) -> None:
    if feed.recorder is not None:
        try:
            feed.recorder.close()
        except RecordingError as exc:
            stop.fail(exc)
