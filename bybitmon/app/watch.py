"""The live commands' event loops: ``watch`` (table, ladder or JSON) and ``record``.

I/O layer: owns the wall clock, the terminal and signals; the numbers come from the Monitor.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import orjson

from .. import __version__, ui
from ..errors import RecordingError
from ..transport.feed import LiveFeed
from ..core.monitor import Monitor
from ..core.protocol import topic_symbol

__all__ = ["WatchOptions", "JsonEmitter", "run_watch", "run_record", "SORT_KEYS"]

SORT_KEYS = ("tps", "tpm", "symbol", "spread", "imbalance", "vdelta", "volume")


class AlertSink:
    """Evaluates alert rules on snapshots (pipeline clock) and writes the events.

    Each event is an NDJSON ``{"type":"alert",...}`` line to ``out`` (the ``--alerts-out`` file,
    and stdout with ``--json``); ``bell`` rings the terminal once per firing.
    """

    def __init__(self, rules: list[str], *, path: str | None = None, to_stdout: bool = False,
                 bell: bool = False) -> None:
        from ..core.alerts import AlertEngine

        self.engine = AlertEngine(rules)
        self.to_stdout = to_stdout
        self.bell = bell
        self.events = 0
        self._file = None
        if path:
            try:
                self._file = open(path, "ab")
            except OSError as exc:
                raise RecordingError(f"{path}: cannot write alerts ({exc.strerror})") from None

    def check(self, monitor: Monitor) -> list[dict]:
        out: list[dict] = []
        for sym in monitor.symbols:
            out.extend(self.engine.evaluate(monitor.snapshot(sym)))
        if out:
            data = b"".join(orjson.dumps(e) + b"\n" for e in out)
            if self._file is not None:
                self._file.write(data)
                self._file.flush()
            if self.to_stdout:
                sys.stdout.buffer.write(data)
            if self.bell and any(e["state"] == "firing" for e in out) and sys.stderr.isatty():
                sys.stderr.write("\a")
                sys.stderr.flush()
            self.events += len(out)
        return out

    def firing(self, symbols: list[str]) -> set[str]:
        return {s for s in symbols if self.engine.firing(s)}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class JsonEmitter:
    """Version-1 snapshot lines every ``interval_ms`` of pipeline clock, and on demand."""

    def __init__(self, monitor: Monitor, interval_ms: int, out: Callable[[bytes], None] | None,
                 alerts: AlertSink | None = None) -> None:
        self.monitor = monitor
        self.interval_ms = interval_ms
        self.out = out
        self.alerts = alerts
        self.next_ms: int | None = None

    def maybe_emit(self) -> None:
        now = self.monitor.now_ms
        if now is None:
            return
        if self.next_ms is None:
            self.next_ms = (now // self.interval_ms + 1) * self.interval_ms
        elif now >= self.next_ms:
            self.emit_all()
            self.next_ms = (now // self.interval_ms + 1) * self.interval_ms

    def emit_all(self) -> None:
        m = self.monitor
        if self.out is not None:
            self.out(b"".join(orjson.dumps(m.snapshot(s)) + b"\n" for s in m.symbols))
        if self.alerts is not None:
            self.alerts.check(m)


@dataclass
class WatchOptions:
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
    url: str | None = None
    testnet: bool = False
    ladder: bool = False
    duration_s: float | None = None
    refresh_s: float = 0.25
    alerts: list[str] = field(default_factory=list)
    alerts_out: str | None = None
    bell: bool = False
    client_kwargs: dict = field(default_factory=dict)


class _ListHandler(logging.Handler):
    def __init__(self, sink: deque) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append((time.monotonic(), f"{record.levelname.lower()}: {record.getMessage()}"))


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
            pass


def _trade_value(pick):
    def value(monitor: Monitor, symbol: str) -> float:
        st = monitor.trade_stats(symbol)
        return pick(st) if st is not None else 0.0
    return value


def _book_value(pick):
    def value(monitor: Monitor, symbol: str) -> float:
        st = monitor.states.get(symbol)
        book = st.book if st is not None else None
        if book is None or not book.ready or book.mid is None:
            return -1.0  # not ready: shown as "-", sorted last
        v = pick(book, monitor.bps)
        return -1.0 if v is None else v
    return value


# What each --sort key orders by (largest first), read from the pipeline directly: the table
# sorts every symbol at every refresh, and a whole snapshot per symbol cost 60+ ms at 500 symbols.
# The values are the ones the snapshot shows (tests/test_ui.py checks the order against them).
_SORT_VALUES = {
    "tps": _trade_value(lambda st: st.tps),
    "tpm": _trade_value(lambda st: st.tpm),
    "vdelta": _trade_value(lambda st: abs(st.volume_delta)),
    "volume": _trade_value(lambda st: st.buy_volume + st.sell_volume),
    "spread": _book_value(lambda book, bps: book.spread_bps),
    "imbalance": _book_value(lambda book, bps: None if (imb := book.depth(bps).imbalance) is None else abs(imb)),
}


def order_symbols(monitor: Monitor, symbols: list[str], key: str) -> list[str]:
    """``symbols`` in the table's row order for ``--sort key``: largest value first, then by name."""
    if key == "symbol":
        return sorted(symbols)
    value = _SORT_VALUES[key]
    return sorted(symbols, key=lambda s: (-value(monitor, s), s))


def _recording_header(opts: WatchOptions, feed: LiveFeed) -> dict:
    return {"category": opts.category, "url": feed.client.url, "symbols": opts.symbols, "depth": opts.depth,
            "start_ns": time.time_ns(), "bybitmon": __version__}


async def run_watch(opts: WatchOptions, *, console=None) -> int:
    """Run ``bybitmon watch`` until Ctrl-C (or ``duration_s``); returns the exit status."""
    from rich.console import Console, Group
    from rich.live import Live

    monitor = Monitor(opts.category, opts.window_ms, opts.bps, opts.density_x, opts.min_notional)
    stop = asyncio.Event()
    _install_stop(stop)
    messages: deque[tuple[float, str]] = deque(maxlen=5)
    # The table shows warnings in its header; with --json they go to stderr as lines.
    handler: logging.Handler = _ListHandler(messages)
    if opts.json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.getLogger("bybitmon").addHandler(handler)
    alerts = AlertSink(opts.alerts, path=opts.alerts_out, to_stdout=opts.json, bell=opts.bell) if opts.alerts else None
    emitter = None
    if opts.json:
        out = sys.stdout.buffer
        emitter = JsonEmitter(monitor, opts.interval_ms, lambda b: (out.write(b), out.flush()), alerts)
    elif alerts is not None:
        emitter = JsonEmitter(monitor, opts.interval_ms, None, alerts)
    feed = LiveFeed(monitor, url=opts.url, testnet=opts.testnet, depth=opts.depth,
                    on_frame=(lambda *_: emitter.maybe_emit()) if emitter else None, **opts.client_kwargs)
    if opts.record:
        from ..transport.recording import RecordingWriter
        feed.recorder = RecordingWriter(opts.record, header=_recording_header(opts, feed))
    console = console or Console()
    sparks: dict[str, deque] = {s: deque(maxlen=180) for s in opts.symbols}  # TPS, 1 sample/s, 3 min
    rate = deque(maxlen=2)

    def statuses() -> dict[str, str]:
        out: dict[str, str] = {}
        for c in feed.client.conns:
            h = c.health
            for t in c.topics:
                sym = topic_symbol(t)
                if h.state == "reconnecting":
                    out[sym] = f"reconnecting {h.reconnects}"
                elif h.state == "connecting":
                    out[sym] = "connecting"
        for t in feed.client.failed:
            out[topic_symbol(t)] = "error: refused"
        return out

    def render():
        now = time.monotonic()
        rate.append((now, feed.frames))
        fps = (rate[-1][1] - rate[0][1]) / (rate[-1][0] - rate[0][0]) if len(rate) == 2 and rate[-1][0] > rate[0][0] else 0.0
        states = [(h.label, h.state, h.reconnects) for h in feed.health]
        # Warnings stay on screen while a connection is down, or for 15 s.
        down = any(h.state != "connected" for h in feed.health)
        recent = [m for t, m in messages if down or now - t < 15]
        errs = [str(e) for e in feed.errors[-2:]] + recent[-1:]
        head = ui.header(source=feed.client.url, states=states, frames_per_s=fps, symbols=len(opts.symbols), errors=errs)
        dps = {s: monitor.price_decimals(s) for s in opts.symbols}
        if opts.ladder:
            sym = opts.symbols[0]
            snap = monitor.snapshot(sym)
            body = Group(ui.activity_table([snap], width=console.width, statuses=statuses(),
                                           latencies={sym: monitor.latency(sym)}, sparks=sparks, decimals=dps),
                         ui.ladder(sym, snap, monitor.ladder_levels(sym, 12), width=console.width, dp=dps[sym]),
                         ui.fates(snap, dp=dps[sym]))
        else:
            # Snapshots and latency percentiles only for the rows that fit; the rest are counted.
            max_rows = max(1, console.height - 8)
            ordered = order_symbols(monitor, opts.symbols, opts.sort)
            drawn = [monitor.snapshot(s) for s in ordered[:max_rows]]
            latencies = {s: monitor.latency(s) for s in ordered[:max_rows]}
            body = ui.activity_table(drawn, width=console.width, statuses=statuses(), latencies=latencies,
                                     sparks=sparks, decimals=dps, firing=alerts.firing(opts.symbols) if alerts else None,
                                     max_rows=max_rows, n_symbols=len(ordered))
        return Group(head, body, ui.footer(f"Ctrl-C quit  ·  sort: {opts.sort}  ·  window {opts.window_ms / 1000:g}s  ·  depth ±{opts.bps:g} bps"))

    status = 0
    # Drawing costs grow with the rows: many symbols refresh twice a second, not four times.
    refresh_s = opts.refresh_s if len(opts.symbols) <= 20 else max(opts.refresh_s, 0.5)
    try:
        await feed.start(opts.symbols)
        deadline = time.monotonic() + opts.duration_s if opts.duration_s else None
        next_sample = time.monotonic() + 1.0
        if opts.json:
            while not stop.is_set() and not feed.failed.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                await _wait(stop, feed, 0.2)
                _flush_recording(feed)
        else:
            with Live(render(), console=console, auto_refresh=False, screen=False, transient=False) as live:
                while not stop.is_set() and not feed.failed.is_set():
                    if deadline and time.monotonic() >= deadline:
                        break
                    await _wait(stop, feed, refresh_s)
                    _flush_recording(feed)
                    if time.monotonic() >= next_sample:
                        next_sample += 1.0
                        for s in opts.symbols:
                            st = monitor.trade_stats(s)
                            sparks[s].append(st.tps if st else 0.0)
                    live.update(render(), refresh=True)
    finally:
        await feed.stop()
        logging.getLogger("bybitmon").removeHandler(handler)
        _close_recording(feed)
    if emitter is not None and opts.json:
        emitter.emit_all()
    if alerts is not None:
        alerts.close()
    if feed.fatal is not None:
        raise feed.fatal
    return status


def _close_recording(feed: LiveFeed) -> None:
    if feed.recorder is not None:
        try:
            feed.recorder.close()
        except RecordingError as exc:
            if feed.fatal is None:
                feed.fatal = exc


def _flush_recording(feed: LiveFeed) -> None:
    if feed.recorder is not None and feed.fatal is None:
        try:
            feed.recorder.flush_if_due(time.time_ns())
        except RecordingError as exc:
            feed.fatal = exc
            feed.failed.set()


async def _wait(stop: asyncio.Event, feed: LiveFeed, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def run_record(opts: WatchOptions, path: str, *, progress: bool) -> int:
    """Run ``bybitmon record``: every frame verbatim into ``path``; returns the exit status."""
    from ..transport.recording import RecordingWriter

    monitor = Monitor(opts.category, opts.window_ms, opts.bps)
    stop = asyncio.Event()
    _install_stop(stop)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    feed = LiveFeed(monitor, url=opts.url, testnet=opts.testnet, depth=opts.depth, **opts.client_kwargs)
    feed.recorder = RecordingWriter(path, header=_recording_header(opts, feed))
    data_frames = 0

    def count(recv_ns: int, conn: str, raw: str) -> None:
        nonlocal data_frames
        if raw.startswith('{"topic"'):
            data_frames += 1

    feed.extra_on_frame = count
    deadline = time.monotonic() + opts.duration_s if opts.duration_s else None
    last_report = time.monotonic()
    try:
        await feed.start(opts.symbols)
        while not stop.is_set() and not feed.failed.is_set():
            if deadline and time.monotonic() >= deadline:
                break
            await _wait(stop, feed, 0.25)
            _flush_recording(feed)
            if progress and time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                states = ", ".join(f"{h.label} {h.state}" for h in feed.health)
                print(f"recording {path}: {feed.recorder.frames} frames ({states})", file=sys.stderr)
    finally:
        await feed.stop()
        _close_recording(feed)
    if feed.fatal is not None:
        raise feed.fatal
    if data_frames == 0:
        raise RecordingError(f"nothing was recorded to {path}: no data frame arrived from {feed.client.url}")
    print(f"recorded {feed.recorder.frames} frames to {path}", file=sys.stderr)
    return 0
