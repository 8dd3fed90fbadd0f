"""``bybitmon watch``: the live table (or ladder, or ``--json`` lines) of a few symbols.

I/O layer: owns the wall clock, the terminal and signals; the numbers come from the Monitor.
It writes only to the streams it is given; how it ends is :class:`~bybitmon.app.live.Stop`'s.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import BinaryIO, TextIO


from .. import __version__, ui
from ..core.monitor import Monitor
from ..core.protocol import book_topic, topic_symbol, trade_topic
from ..core.screener import SCREEN_SORTS
from ..ui.screen import ScreenState
from ..errors import printable
from ..errors import OutputError
from ..transport.feed import LiveFeed
from .board import SORT_KEYS, Board
from .emit import AlertSink, JsonEmitter, Output, densities_line, status_line
from .files import check_outputs, open_append
from .live import (LiveOptions, QuietWatch, Refusals, Stop, close_recording, flush_recording, log_to,
                   row_statuses)
from .screen import FrameRate, LiveScreen, WatchScreen

__all__ = ["WatchOptions", "run_watch", "recording_header", "asked_topics", "SORT_KEYS"]

WatchOptions = LiveOptions

def recording_header(opts: LiveOptions, feed: LiveFeed) -> dict:
    return {"category": opts.category, "url": feed.client.url, "symbols": opts.symbols, "depth": opts.depth,
            "start_ns": time.time_ns(), "bybitmon": __version__}


def asked_topics(opts: LiveOptions) -> list[str]:
    return [t for s in opts.symbols for t in (book_topic(s, opts.depth), trade_topic(s))]


async def run_watch(opts: LiveOptions, *, stdout: BinaryIO, stderr: TextIO, terminal: TextIO | None = None,
                    console=None, terminal_in: TextIO | None = None) -> int:
    """Run ``bybitmon watch`` until Ctrl-C (or ``duration_s``); returns the exit status.

    Args:
        opts: the parsed options.
        stdout: where ``--json`` lines go.
        stderr: warnings with ``--json`` (the table shows them in its header).
        terminal: the text stream the table is drawn on.
        terminal_in: where keys are read from (default stdin; keys only when it is a terminal,
            see :class:`~bybitmon.app.keyboard.Keyboard`; ``q`` ends with status 0).

    Raises:
        OutputError: stdout or an output file could not be written (``OutputClosed``: stdout's
            reader went away).
        SubscriptionError: the server refused subscriptions (at once when it refused them all).
        RecordingError: the ``--record`` file could not be written.
    """
    from rich.console import Console

    check_outputs([("--record", opts.record), ("--alerts-out", opts.alerts_out)], force=opts.force,
                  append=["--alerts-out"])
    monitor = Monitor(opts.category, opts.window_ms, opts.bps, opts.density_x, opts.min_notional)
    stop = Stop()
    out = Output(stdout, "stdout", flush=True)
    messages: deque[tuple[float, str]] = deque(maxlen=5)
    # The table shows warnings in its header; with --json they go to stderr as lines.
    handler = log_to(stderr) if opts.json else log_to(None, messages)
    alerts = None
    if opts.alerts:
        file = Output(open_append(opts.alerts_out), printable(opts.alerts_out), flush=True) if opts.alerts_out else None
        bell = stderr if opts.bell and stderr.isatty() else None
        alerts = AlertSink(opts.alerts, file=file, stdout=out if opts.json else None, bell=bell)

    def write_json(lines: bytes) -> None:
        # Each emission: the snapshot lines, then one {"type":"densities"} line (the screen's rows).
        out.write(lines + densities_line(monitor, opts.density_filter))

    emitter = JsonEmitter(monitor, opts.interval_ms, write_json if opts.json else None, alerts) \
        if (opts.json or alerts) else None

    def on_frame(recv_ns: int, conn: str, raw: str) -> None:
        # Output errors are ours, not the network's: they end the command here, before the
        # client could take them for a lost connection.
        if emitter is not None and stop.error is None:
            try:
                emitter.maybe_emit()
            except OutputError as exc:
                stop.fail(exc)

    def on_refused(topic: str, why: str) -> None:
        if opts.json and stop.error is None:
            try:
                out.write(status_line(topic_symbol(topic), topic, "refused", why, monitor.now_ms))
            except OutputError as exc:
                stop.fail(exc)

    refusals = Refusals(asked_topics(opts), stop, on_refused)
    feed = LiveFeed(monitor, url=opts.url, testnet=opts.testnet, depth=opts.depth, on_frame=on_frame,
                    on_subscribe_error=refusals, **opts.client_kwargs)
    quiet = QuietWatch(monitor, feed, opts.symbols, opts.quiet_warn_s)
    if opts.record:
        from ..transport.recording import RecordingWriter
        feed.recorder = RecordingWriter(opts.record, header=recording_header(opts, feed))
    console = console or Console(file=terminal)
    source = printable(feed.client.url)
    rate = FrameRate()

    def statuses() -> dict[str, str]:
        return row_statuses(feed, refusals)

    def header():
        now = time.monotonic()
        fps = rate.update(feed.frames)
        states = [(h.label, h.state, h.reconnects) for h in feed.health]
        # Warnings stay on screen while a connection is down, or for 15 s.
        down = any(h.state != "connected" for h in feed.health)
        recent = [m for t, m in messages if down or now - t < 15]
        errs = [printable(e, 300) for e in feed.errors[-2:]] + recent[-1:]
        return ui.header(source=source, states=states, frames_per_s=fps, symbols=len(opts.symbols), errors=errs)

    def firing() -> dict[str, set[str]]:
        return {s: rules for s in opts.symbols if (rules := alerts.engine.firing(s))} if alerts else {}

    def tick() -> None:
        flush_recording(feed, stop)
        quiet.check()

    state = ScreenState(SORT_KEYS, opts.sort, tuple(SCREEN_SORTS), mode="ladder" if opts.ladder else "table",
                        ladder_symbol=opts.symbols[0] if opts.ladder else None)
    live = LiveScreen(state, terminal_in)
    screen = WatchScreen(Board.of(monitor, opts.symbols), state, window_ms=opts.window_ms, bps=opts.bps,
                         interactive=live.interactive(opts.interactive, opts.json),
                         density_filter=opts.density_filter, quote=opts.quote_units)
    # Drawing costs grow with the rows: many symbols refresh twice a second, not four times.
    refresh_s = opts.refresh_s if len(opts.symbols) <= 20 else max(opts.refresh_s, 0.5)
    stop.install()
    try:
        await feed.start(opts.symbols)
        if opts.json:
            deadline = time.monotonic() + opts.duration_s if opts.duration_s else None
            while not stop.is_set:
                if deadline and time.monotonic() >= deadline:
                    break
                await stop.wait(0.2)
                tick()
        else:
            await live.run(screen, console, stop, header=header, statuses=statuses, firing=firing, tick=tick,
                           refresh_s=refresh_s, duration_s=opts.duration_s)
    finally:
        stop.uninstall()
        await feed.stop()
        logging.getLogger("bybitmon").removeHandler(handler)
        close_recording(feed, stop)
        if emitter is not None and opts.json and stop.error is None:
            try:
                emitter.emit_all()
            except OutputError as exc:
                stop.fail(exc)
        if alerts is not None:
            try:
                alerts.close()
            except OutputError as exc:
                stop.fail(exc)
    return stop.outcome(refusals)

