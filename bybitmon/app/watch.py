"""``bybitmon watch``: the live table (or ladder, or ``--json`` lines) of a few symbols.

I/O layer: owns the wall clock, the terminal and signals; the numbers come from the Monitor.
It writes only to the streams it is given; how it ends is :class:`~bybitmon.app.live.Stop`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import BinaryIO, TextIO

import orjson

from .. import __version__, ui
from ..core.monitor import Monitor
from ..core.protocol import book_topic, topic_symbol, trade_topic
from ..core.screener import SCREEN_SORTS, rows_json, screen_densities
from ..ui.screen import ScreenState
from ..errors import printable
from ..errors import OutputError
from ..transport.feed import LiveFeed
from .emit import AlertSink, JsonEmitter, Output, status_line
from .files import check_outputs, open_append
from .keyboard import Keyboard
from .live import (LiveOptions, QuietWatch, Refusals, Stop, close_recording, flush_recording, log_to)
from .screen import WatchScreen

__all__ = ["WatchOptions", "run_watch", "order_symbols", "recording_header", "asked_topics", "SORT_KEYS"]

WatchOptions = LiveOptions

SORT_KEYS = ("tps", "tpm", "symbol", "spread", "imbalance", "vdelta", "volume", "heat")


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
    "heat": lambda monitor, symbol: 0.0 if (h := monitor.heat(symbol)) is None else h.heat,
}


def order_symbols(monitor: Monitor, symbols: list[str], key: str) -> list[str]:
    """``symbols`` in the table's row order for ``--sort key``: largest value first, then by name."""
    if key == "symbol":
        return sorted(symbols)
    value = _SORT_VALUES[key]
    return sorted(symbols, key=lambda s: (-value(monitor, s), s))


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
    from rich.console import Console, Group
    from rich.live import Live

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
        if monitor.now_ms is not None:
            rows = screen_densities(monitor, flt=opts.density_filter)
            lines += orjson.dumps(rows_json(rows, monitor.now_ms, opts.category, opts.density_filter)) + b"\n"
        out.write(lines)

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
    sparks: dict[str, deque] = {s: deque(maxlen=180) for s in opts.symbols}  # TPS, 1 sample/s, 3 min
    rate = deque(maxlen=2)
    source = printable(feed.client.url)

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
        out.update(refusals.symbol_errors())
        return out

    state = ScreenState(SORT_KEYS, opts.sort, tuple(SCREEN_SORTS), mode="ladder" if opts.ladder else "table",
                        ladder_symbol=opts.symbols[0] if opts.ladder else None)
    key_event = asyncio.Event()

    def on_key(key: str) -> None:
        state.handle(key)
        key_event.set()  # redraw now, not at the next refresh

    keyboard = Keyboard(on_key, terminal_in)
    interactive = opts.interactive
    if interactive is None:
        interactive = not opts.json and keyboard.is_terminal()
    screen = WatchScreen(monitor, state, order_symbols, opts.symbols, window_ms=opts.window_ms, bps=opts.bps,
                         interactive=bool(interactive), density_filter=opts.density_filter, quote=opts.quote_units)

    def render():
        now = time.monotonic()
        rate.append((now, feed.frames))
        fps = (rate[-1][1] - rate[0][1]) / (rate[-1][0] - rate[0][0]) if len(rate) == 2 and rate[-1][0] > rate[0][0] else 0.0
        states = [(h.label, h.state, h.reconnects) for h in feed.health]
        # Warnings stay on screen while a connection is down, or for 15 s.
        down = any(h.state != "connected" for h in feed.health)
        recent = [m for t, m in messages if down or now - t < 15]
        errs = [printable(e, 300) for e in feed.errors[-2:]] + recent[-1:]
        head = ui.header(source=source, states=states, frames_per_s=fps, symbols=len(opts.symbols), errors=errs)
        foot = screen.footer(console.width)
        height = console.height - len(head.wrap(console, console.width)) - len(foot.wrap(console, console.width))
        firing = {s: rules for s in opts.symbols if (rules := alerts.engine.firing(s))} if alerts else {}
        body = screen.body(width=console.width, height=height, statuses=statuses(), sparks=sparks, firing=firing)
        return Group(head, body, foot)

    # Drawing costs grow with the rows: many symbols refresh twice a second, not four times.
    refresh_s = opts.refresh_s if len(opts.symbols) <= 20 else max(opts.refresh_s, 0.5)
    stop.install()
    try:
        await feed.start(opts.symbols)
        deadline = time.monotonic() + opts.duration_s if opts.duration_s else None
        next_sample = time.monotonic() + 1.0
        if opts.json:
            while not stop.is_set:
                if deadline and time.monotonic() >= deadline:
                    break
                await stop.wait(0.2)
                flush_recording(feed, stop)
                quiet.check()
        else:
            if interactive:
                keyboard.start()
            with Live(render(), console=console, auto_refresh=False, screen=False, transient=False) as live:
                next_draw = time.monotonic()
                while not stop.is_set and not state.quit:
                    if deadline and time.monotonic() >= deadline:
                        break
                    await _wait_key(stop, key_event, max(0.0, next_draw - time.monotonic()))
                    if state.quit:
                        break
                    flush_recording(feed, stop)
                    quiet.check()
                    if time.monotonic() >= next_sample:
                        next_sample += 1.0
                        for s in opts.symbols:
                            st = monitor.trade_stats(s)
                            sparks[s].append(st.tps if st else 0.0)
                    if key_event.is_set() or time.monotonic() >= next_draw:
                        key_event.clear()
                        live.update(render(), refresh=True)
                        if time.monotonic() >= next_draw:
                            next_draw = time.monotonic() + refresh_s
    finally:
        keyboard.stop()
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


async def _wait_key(stop: Stop, key: asyncio.Event, seconds: float) -> None:
    """Until a reason to stop or a key arrives, or ``seconds`` pass."""
    if stop.is_set or key.is_set():
        return
    waits = [asyncio.ensure_future(stop.event.wait()), asyncio.ensure_future(key.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
