"""``bybitmon replay``: a recording, capture or simulated market through the pipeline.

The :class:`Driver` is the replay engine: it feeds ``(recv_ns, raw)`` pairs into a Monitor,
paces them with the one :class:`~bybitmon.app.pacing.Pacer`, emits JSON snapshots and alerts
with the one :class:`~bybitmon.app.emit.Every` rule and ticks the UI.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator, Optional, TextIO

from ..core.monitor import Monitor
from ..errors import printable
from ..errors import UsageError
from .emit import AlertSink, JsonEmitter, Output
from .files import check_outputs, open_append
from .pacing import Pacer

__all__ = ["Driver", "ReplayOptions", "run_replay", "report_input"]


class Driver:
    """Feeds (recv_ns, raw) pairs into a Monitor, paces them, emits JSON snapshots and ticks the UI.

    Pacing follows the receive time when the source has one (recordings), else the pipeline
    clock (plain captures, the simulator): ``speed`` x real time, or as fast as possible.
    """

    def __init__(self, monitor: Monitor, *, speed: float | None, json_out: Output | Callable[[bytes], None] | None,
                 interval_ms: int, on_tick: Optional[Callable[[], None]] = None, tick_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 alerts: AlertSink | None = None) -> None:
        self.monitor = monitor
        self.speed = speed
        self.emitter = JsonEmitter(monitor, interval_ms, json_out, alerts) if (json_out or alerts) else None
        self.on_tick = on_tick
        self.tick_s = tick_s
        self.clock = clock
        self.sleep = sleep
        self.frames = 0

    def run(self, frames: Iterable[tuple[int, str]]) -> None:
        if self.speed is None and self.on_tick is None:
            self._run_fast(frames)
        else:
            self._run_paced(frames)
        self.finish()
        if self.on_tick is not None:
            self.on_tick()

    def _run_fast(self, frames: Iterable[tuple[int, str]]) -> None:
        """As fast as possible, no screen: ``Monitor.feed_until`` feeds up to each interval
        boundary in one call, and the emitter is called only when one is reached."""
        monitor = self.monitor
        emitter = self.emitter
        frames = iter(frames)
        if emitter is None:
            nxt: float = math.inf
        else:
            every = emitter.every
            # Every.due's rule: the first clock reading sets the first boundary (not due).
            nxt = -(2**63) if every.next_ms is None else every.next_ms
        start = monitor.frames
        try:
            while True:
                monitor.feed_until(frames, nxt)  # type: ignore[arg-type]
                now = monitor.now_ms
                if emitter is None or now is None or now < nxt:
                    return  # the input ended
                emitter.maybe_emit()
                nxt = every.next_ms
        finally:
            self.frames += monitor.frames - start

    def _run_paced(self, frames: Iterable[tuple[int, str]]) -> None:
        next_tick = self.clock() + self.tick_s
        for ahead in self.paced(frames):
            if ahead > 0:
                next_tick = self._wait(ahead, next_tick)
            if self.on_tick is not None:
                wall = self.clock()
                if wall >= next_tick:
                    self.on_tick()
                    next_tick = wall + self.tick_s

    def paced(self, frames: Iterable[tuple[int, str]]) -> Iterator[float]:
        """Feed ``frames``; yield the seconds to wait whenever the source is ahead of the wall
        clock at ``speed``, and 0.0 every 64 frames (a chance to draw). The caller sleeps, or
        awaits, what is yielded: the one pacing loop of the plain and the interactive replay."""
        monitor = self.monitor
        feed = monitor.feed
        speed = self.speed
        emitter = self.emitter
        pacer = Pacer(speed, clock=self.clock)
        for recv_ns, raw in frames:
            feed(recv_ns, raw)
            self.frames += 1
            if emitter is not None:
                emitter.maybe_emit()
            ahead = pacer.delay(recv_ns / 1e6 if recv_ns else monitor.now_ms) if speed is not None else 0.0
            if ahead > 0 or self.frames & 63 == 0:
                yield ahead

    def finish(self) -> None:
        """The end of the input: the Monitor's last state, the last JSON/alerts emission."""
        self.monitor.finish()
        if self.emitter is not None:
            self.emitter.emit_all()

    def _wait(self, seconds: float, next_tick: float) -> float:
        # Keep the screen alive while we wait for the next frame's time.
        end = self.clock() + seconds
        while True:
            left = end - self.clock()
            if left <= 0:
                return next_tick
            self.sleep(min(left, max(0.0, next_tick - self.clock()) or left, 0.25))
            if self.on_tick is not None and self.clock() >= next_tick:
                self.on_tick()
                next_tick = self.clock() + self.tick_s


@dataclass
class ReplayOptions:
    """What ``bybitmon replay`` was asked to do (parsed and range-checked by the CLI)."""

    file: str | None = None
    simulate: bool = False
    symbols: list[str] = field(default_factory=list)
    duration_ms: int = 20_000
    seed: int = 1
    speed: float | None = None
    category: str = "linear"
    window_ms: int = 60_000
    bps: float = 50.0
    json: bool = False
    interval_ms: int = 1000
    density_x: float = 5.0
    min_notional: float = 0.0
    alerts: list[str] = field(default_factory=list)
    alerts_out: str | None = None
    follow: bool = False


def _simulated_frames(symbols: list[str], duration_ms: int, seed: int, category: str) -> Iterator[tuple[int, str]]:
    from ..sim.market import MarketSimulator

    sim = MarketSimulator(symbols, seed=seed, category=category)
    for ts_ms, raw in sim.frames(duration_ms):
        yield ts_ms * 1_000_000, raw


def run_replay(opts: ReplayOptions, *, stdout: BinaryIO, stderr: TextIO, terminal: TextIO | None = None,
               terminal_in: TextIO | None = None) -> int:
    """Run ``bybitmon replay``; returns the exit status.

    Args:
        opts: the parsed options.
        stdout: where ``--json`` lines go.
        stderr: warnings and the summary.
        terminal: the text stream the table is drawn on (the CLI's stdout).
        terminal_in: where keys are read from while a paced replay is drawn on a terminal
            (default stdin, and only when it is a terminal).
    """
    check_outputs([("--alerts-out", opts.alerts_out)], inputs=[opts.file or ""], append=["--alerts-out"])
    monitor = Monitor(opts.category, opts.window_ms, opts.bps, opts.density_x, opts.min_notional)
    out = Output(stdout, "stdout")
    alerts = None
    if opts.alerts:
        file = Output(open_append(opts.alerts_out), printable(opts.alerts_out), flush=True) if opts.alerts_out else None
        alerts = AlertSink(opts.alerts, file=file, stdout=out if opts.json else None)
    reader = None
    if opts.simulate:
        frames = _simulated_frames(opts.symbols, opts.duration_ms, opts.seed, opts.category)
        title = f"simulated {opts.category} market (seed {opts.seed}) — SIMULATED DATA, not the exchange"
    else:
        from ..transport.recording import FrameReader

        reader = FrameReader(opts.file, follow=opts.follow)  # type: ignore[arg-type]
        frames = reader.pairs()
        title = f"replay {printable(opts.file)}"
    pace = opts.speed
    status = 0
    try:
        if opts.json:
            Driver(monitor, speed=pace, json_out=out, interval_ms=opts.interval_ms, alerts=alerts).run(frames)
            out.flush()
        else:
            status = _run_table(monitor, opts, frames, reader, alerts, title, terminal, terminal_in)
    finally:
        if alerts is not None:
            alerts.close()
    if alerts is not None and opts.alerts_out and not opts.json:
        print(f"{alerts.events} alert events written to {printable(opts.alerts_out)}", file=stderr)
    report_input(monitor, reader, stderr)
    return status


def _run_table(monitor: Monitor, opts: ReplayOptions, frames, reader, alerts: AlertSink | None, title: str,
               terminal: TextIO | None, terminal_in: TextIO | None = None) -> int:
    """The table: the interactive screen while paced on a terminal, else the final table."""
    from rich.console import Console

    from .. import ui

    console = Console(file=terminal)
    pace = opts.speed

    def render():
        snaps = [monitor.snapshot(s) for s in monitor.symbols]
        lat = {s: monitor.latency(s) for s in monitor.symbols} if reader is not None else None
        dps = {s: monitor.price_decimals(s) for s in monitor.symbols}
        return ui.activity_table(snaps, width=console.width, title=title, latencies=lat, decimals=dps,
                                 firing=alerts.firing(monitor.symbols) if alerts else None)

    if pace is not None and console.is_terminal:
        import asyncio  # the interactive screen only: a batch replay does not pay for importing it

        return asyncio.run(_run_screen(monitor, opts, frames, reader, alerts, title, console, terminal_in))
    elif reader is not None and console.is_terminal:
        # As fast as possible: a progress bar (bytes read, frames, frames/s, ETA), then the table.
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TextColumn("{task.fields[frames]:,} frames  {task.fields[fps]:,.0f} frames/s"),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("replay", total=reader.total_bytes or None, frames=0, fps=0.0)
            t0 = time.monotonic()
            driver = Driver(monitor, speed=None, json_out=None, interval_ms=opts.interval_ms, alerts=alerts)

            def tick() -> None:
                dt = max(1e-9, time.monotonic() - t0)
                progress.update(task, completed=reader.bytes_read, frames=driver.frames,
                                fps=driver.frames / dt, refresh=True)

            driver.on_tick = tick
            driver.run(frames)
        console.print(render())
    else:
        Driver(monitor, speed=pace, json_out=None, interval_ms=opts.interval_ms, alerts=alerts).run(frames)
        console.print(render())
    return 0


async def _run_screen(monitor: Monitor, opts: ReplayOptions, frames, reader, alerts: AlertSink | None, title: str,
                      console, terminal_in: TextIO | None) -> int:
    """A paced replay on watch's interactive screen (keys, density screen, ladder): the frames
    are fed by a task that awaits the pacing delays; the screen ends with the input (showing
    the final state), with ``q`` (status 0) or with Ctrl-C (130)."""
    import asyncio

    from rich.text import Text

    from ..core.screener import SCREEN_SORTS
    from ..ui.screen import ScreenState
    from .board import Board
    from .live import Stop
    from .screen import FrameRate, LiveScreen, WatchScreen
    from .watch import SORT_KEYS

    stop = Stop()
    state = ScreenState(SORT_KEYS, "tps", tuple(SCREEN_SORTS))
    live = LiveScreen(state, terminal_in)
    board = Board.of(monitor, opts.symbols)
    screen = WatchScreen(board, state, window_ms=opts.window_ms, bps=opts.bps,
                         interactive=live.interactive(None, False))
    driver = Driver(monitor, speed=opts.speed, json_out=None, interval_ms=opts.interval_ms, alerts=alerts)
    rate = FrameRate()

    def header() -> Text:
        # The numbers stay whole at any width; the title gives way (cut with an ellipsis).
        stats = f"  {rate.update(driver.frames):,.0f} frames/s  {len(board)} symbols  {opts.speed:g}x"
        # The simulated market says so first, where no width cuts it.
        what = f"SIMULATED DATA  {opts.category}, seed {opts.seed}" if opts.simulate else title
        t = Text(f"bybitmon {what}", style="bold magenta" if opts.simulate else "bold cyan")
        t.truncate(max(10, console.width - len(stats)), overflow="ellipsis")
        t.append(stats, style="dim")
        return t

    def tick() -> None:
        if len(monitor.symbols) != len(board):  # a recording's symbols appear as they come
            board.follow(monitor.category, monitor.symbols)

    async def feed() -> None:
        for ahead in driver.paced(frames):
            await asyncio.sleep(ahead)
        driver.finish()
        tick()
        live.stale = True   # draw the final state; the task's end then ends the screen
        live.key.set()
        await asyncio.sleep(0.1)

    def firing() -> dict[str, set[str]]:
        return {s: rules for s in board.labels if (rules := alerts.engine.firing(s))} if alerts else {}

    stop.install()
    feeder = asyncio.create_task(feed(), name="bybitmon-replay-feed")
    feeder.add_done_callback(lambda t: stop.event.set())  # the input's end, or an error feeding it
    try:
        await live.run(screen, console, stop, header=header, firing=firing, tick=tick)
    finally:
        stop.uninstall()
        feeder.cancel()
        res = await asyncio.gather(feeder, return_exceptions=True)
    if isinstance(res[0], BaseException) and not isinstance(res[0], asyncio.CancelledError):
        raise res[0]
    return stop.status


def report_input(monitor: Monitor, reader, stderr: TextIO) -> None:
    """Warn about skipped lines and bad frames; an input without any frame is an error."""
    if reader is not None:
        rep = reader.report
        path = printable(rep.path)
        for line in rep.warnings(20):
            print(f"warning: {printable(line, 1000)}", file=stderr)
        if rep.frames == 0 and not rep.skipped:
            raise UsageError(f"{path}: no frames in file")
    if monitor.bad_frames:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(monitor.bad_reasons.items()))
        print(f"warning: {monitor.bad_frames} bad frames skipped ({printable(reasons, 2000)})", file=stderr)
