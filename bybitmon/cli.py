"""The ``bybitmon`` command line (Typer). The only module that prints errors or exits."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Iterable, Iterator, Optional

import typer
from typer.exceptions import Abort, TyperException

from .core.activity import parse_window
from .errors import BybitmonError, UsageError
from .core.monitor import Monitor
from .core.limits import BOOK_DEPTHS, CATEGORIES

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Terminal monitor for Bybit v5 public market data: trade activity, books, densities.",
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__
        from .core import implementation, implementation_note

        print(f"bybitmon {__version__} ({implementation()} core: {implementation_note()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and which core runs (compiled or pure), then exit."),
) -> None:
    """Terminal monitor for Bybit v5 public market data: trade activity, books, densities."""


def _run_async(coro):
    """Run a live command's loop: on uvloop when it is installed (``pip install 'bybitmon[fast]'``,
    +23 % frames/s at 500 symbols in bench/scale.py), else on asyncio."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(coro)
    return uvloop.run(coro)


# -- option parsing ----------------------------------------------------------------------


def parse_speed(text: str) -> float | None:
    """``max`` -> None (as fast as possible); ``1``, ``10``, ``0.5`` -> that multiple of real time."""
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text.rstrip("xX"))
    except ValueError:
        raise UsageError(f"bad --speed {text!r}: use a positive number such as 1 or 10, or max") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"bad --speed {text!r}: use a positive number such as 1 or 10, or max")
    return value


def parse_category(text: str) -> str:
    if text not in CATEGORIES:
        raise UsageError(f"bad --category {text!r}: one of {', '.join(CATEGORIES)}")
    return text


def parse_symbols(items: Iterable[str]) -> list[str]:
    """``["BTCUSDT,ethusdt", "SOLUSDT"]`` -> ``["BTCUSDT", "ETHUSDT", "SOLUSDT"]`` (order kept, no repeats)."""
    out: list[str] = []
    for item in items:
        for sym in item.split(","):
            sym = sym.strip().upper()
            if not sym:
                continue
            if not sym.replace("-", "").replace("_", "").isalnum():
                raise UsageError(f"bad symbol {sym!r}: use exchange symbols such as BTCUSDT")
            if sym not in out:
                out.append(sym)
    return out


# -- the shared driver ---------------------------------------------------------------------


class Driver:
    """Feeds (recv_ns, raw) pairs into a Monitor, paces them, emits JSON snapshots and ticks the UI.

    Pacing follows the receive time when the source has one (recordings), else the pipeline
    clock (plain captures, the simulator): ``speed`` x real time, or as fast as possible.
    """

    def __init__(self, monitor: Monitor, *, speed: float | None, json_out: Optional[Callable[[bytes], None]],
                 interval_ms: int, on_tick: Optional[Callable[[], None]] = None, tick_s: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 alerts=None) -> None:
        from .app.watch import JsonEmitter

        self.monitor = monitor
        self.speed = speed
        self.emitter = JsonEmitter(monitor, interval_ms, json_out, alerts) if (json_out or alerts) else None
        self.on_tick = on_tick
        self.tick_s = tick_s
        self.clock = clock
        self.sleep = sleep
        self.frames = 0

    def run(self, frames: Iterable[tuple[int, str]]) -> None:
        monitor = self.monitor
        feed = monitor.feed
        speed = self.speed
        emitter = self.emitter
        t0_ms: float | None = None
        wall0 = self.clock()
        next_tick = wall0 + self.tick_s
        for recv_ns, raw in frames:
            feed(recv_ns, raw)
            self.frames += 1
            now_ms = monitor.now_ms
            if emitter is not None:
                emitter.maybe_emit()
            if speed is not None:
                t_ms = recv_ns / 1e6 if recv_ns else now_ms
                if t_ms is not None:
                    if t0_ms is None:
                        t0_ms = t_ms
                    ahead = wall0 + (t_ms - t0_ms) / 1000.0 / speed - self.clock()
                    if ahead > 0.005:
                        self._wait(ahead, next_tick)
            if self.on_tick is not None and (self.frames & 63 == 0 or speed is not None):
                wall = self.clock()
                if wall >= next_tick:
                    self.on_tick()
                    next_tick = wall + self.tick_s
        monitor.finish()
        if emitter is not None:
            emitter.emit_all()
        if self.on_tick is not None:
            self.on_tick()

    def _wait(self, seconds: float, next_tick: float) -> None:
        # Keep the screen alive while we wait for the next frame's time.
        end = self.clock() + seconds
        while True:
            left = end - self.clock()
            if left <= 0:
                return
            self.sleep(min(left, max(0.0, next_tick - self.clock()) or left, 0.25))
            if self.on_tick is not None and self.clock() >= next_tick:
                self.on_tick()
                next_tick = self.clock() + self.tick_s



def _stdout_writer() -> Callable[[bytes], None]:
    buf = sys.stdout.buffer

    def write(data: bytes) -> None:
        buf.write(data)

    return write


def _simulated_frames(symbols: list[str], duration_ms: int, seed: int, category: str) -> Iterator[tuple[int, str]]:
    from .sim.market import MarketSimulator

    sim = MarketSimulator(symbols, seed=seed, category=category)
    for ts_ms, raw in sim.frames(duration_ms):
        yield ts_ms * 1_000_000, raw


def _file_frames(reader) -> Iterator[tuple[int, str]]:
    for fr in reader:
        yield fr.recv_ns, fr.raw


# -- commands ------------------------------------------------------------------------------


@app.command()
def replay(
    file: Optional[str] = typer.Argument(None, help="Recording, NDJSON capture or tardis raw file (.gz/.zst too)."),
    simulate: bool = typer.Option(False, "--simulate", help="Replay a seeded simulated market instead of a file."),
    symbols: str = typer.Option("BTCUSDT,ETHUSDT", "--symbols", help="Symbols for --simulate, comma-separated."),
    duration: str = typer.Option("20s", "--duration", help="Simulated time for --simulate (e.g. 20s, 5m)."),
    seed: int = typer.Option(1, "--seed", help="Simulator seed."),
    speed: Optional[str] = typer.Option(None, "--speed", help="1, 10, ... x real time, or max (default: 1 for --simulate, max for files)."),
    category: str = typer.Option("linear", "--category", help="spot, linear, inverse, option."),
    window: str = typer.Option("60s", "--window", help="Trade window (10s, 60s, 5m)."),
    bps: float = typer.Option(50.0, "--bps", help="Depth band around mid, basis points."),
    json_: bool = typer.Option(False, "--json", help="Print version-1 NDJSON snapshots instead of a table."),
    interval: str = typer.Option("1s", "--interval", help="JSON snapshot interval on the pipeline clock."),
    density_x: float = typer.Option(5.0, "--density-x", help="A density is a level >= this x its side's median size."),
    min_notional: float = typer.Option(0.0, "--min-notional", help="... with at least this notional (quote units)."),
    alert: list[str] = typer.Option([], "--alert", help="Alert rule, e.g. 'tps>50' (repeatable; see README)."),
    alerts_out: Optional[str] = typer.Option(None, "--alerts-out", help="Append alert events (NDJSON) to this file."),
) -> None:
    """Replay a capture or recording (or a simulated market) through the pipeline."""
    category = parse_category(category)
    window_ms = parse_window(window)
    interval_ms = parse_window(interval)
    if not bps > 0:
        raise UsageError(f"bad --bps {bps}: it must be positive")
    if not density_x > 0:
        raise UsageError(f"bad --density-x {density_x}: it must be positive")
    if simulate == (file is not None):
        raise UsageError("give either a FILE to replay or --simulate")
    from .core.alerts import parse_alert

    for rule in alert:
        parse_alert(rule)
    monitor = Monitor(category, window_ms, bps, density_x, min_notional)
    from .app.watch import AlertSink

    alerts = AlertSink(alert, path=alerts_out, to_stdout=json_) if alert else None
    reader = None
    if simulate:
        syms = parse_symbols([symbols])
        if not syms:
            raise UsageError("--symbols is empty")
        pace = parse_speed(speed or "1")
        frames = _simulated_frames(syms, parse_window(duration), seed, category)
        title = f"simulated {category} market (seed {seed}) — SIMULATED DATA, not the exchange"
    else:
        from .transport.recording import FrameReader

        pace = parse_speed(speed or "max")
        reader = FrameReader(file)  # type: ignore[arg-type]
        frames = _file_frames(reader)
        title = f"replay {file}"

    from . import ui

    if json_:
        Driver(monitor, speed=pace, json_out=_stdout_writer(), interval_ms=interval_ms, alerts=alerts).run(frames)
        sys.stdout.flush()
    else:
        from rich.console import Console
        from rich.live import Live

        console = Console()

        def render():
            snaps = [monitor.snapshot(s) for s in monitor.symbols]
            lat = {s: monitor.latency(s) for s in monitor.symbols} if reader is not None else None
            dps = {s: monitor.price_decimals(s) for s in monitor.symbols}
            return ui.activity_table(snaps, width=console.width, title=title, latencies=lat, decimals=dps,
                                     firing=alerts.firing(monitor.symbols) if alerts else None)

        if pace is not None and console.is_terminal:
            with Live(render(), console=console, auto_refresh=False, transient=False) as live:
                Driver(monitor, speed=pace, json_out=None, interval_ms=interval_ms, alerts=alerts,
                       on_tick=lambda: live.update(render(), refresh=True)).run(frames)
        elif reader is not None and console.is_terminal:
            # As fast as possible: a progress bar (bytes read, frames, frames/s, ETA), then the table.
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                          TextColumn("{task.fields[frames]:,} frames  {task.fields[fps]:,.0f} frames/s"),
                          TimeRemainingColumn(), console=console, transient=True) as progress:
                task = progress.add_task("replay", total=reader.total_bytes or None, frames=0, fps=0.0)
                t0 = time.monotonic()
                driver = Driver(monitor, speed=None, json_out=None, interval_ms=interval_ms, alerts=alerts)

                def tick() -> None:
                    dt = max(1e-9, time.monotonic() - t0)
                    progress.update(task, completed=reader.bytes_read, frames=driver.frames,
                                    fps=driver.frames / dt, refresh=True)

                driver.on_tick = tick
                driver.run(frames)
            console.print(render())
        else:
            Driver(monitor, speed=pace, json_out=None, interval_ms=interval_ms, alerts=alerts).run(frames)
            console.print(render())
    if alerts is not None:
        alerts.close()
        if alerts_out and not json_:
            print(f"{alerts.events} alert events written to {alerts_out}", file=sys.stderr)
    _report(monitor, reader)


def _parse_depth(depth: int, category: str) -> int:
    allowed = BOOK_DEPTHS
    if depth not in allowed:
        raise UsageError(f"bad --depth {depth}: Bybit {category} books come in depths {', '.join(map(str, allowed))}")
    return depth


def _watch_options(symbols: list[str], category: str, depth: int, window: str, bps: float, density_x: float,
                   min_notional: float, url: Optional[str], testnet: bool, duration: Optional[str]):
    from .transport.client import resolve_url
    from .app.watch import WatchOptions

    syms = parse_symbols(symbols)
    if not syms:
        raise UsageError("name at least one symbol, e.g. BTCUSDT")
    category = parse_category(category)
    resolve_url(category, url, testnet)  # validates --url / BYBITMON_URL up front
    if not bps > 0:
        raise UsageError(f"bad --bps {bps}: it must be positive")
    return WatchOptions(symbols=syms, category=category, depth=_parse_depth(depth, category),
                        window_ms=parse_window(window), bps=bps, density_x=density_x, min_notional=min_notional,
                        url=url, testnet=testnet,
                        duration_s=parse_window(duration) / 1000 if duration else None)


@app.command()
def watch(
    symbols: list[str] = typer.Argument(..., help="Symbols, e.g. BTCUSDT ETHUSDT (commas work too)."),
    category: str = typer.Option("linear", "--category", help="spot, linear, inverse."),
    depth: int = typer.Option(50, "--depth", help="Order book depth to subscribe (1, 50, 200, 1000)."),
    window: str = typer.Option("60s", "--window", help="Trade window (10s, 60s, 5m)."),
    bps: float = typer.Option(50.0, "--bps", help="Depth band around mid, basis points."),
    sort: str = typer.Option("tps", "--sort", help="Row order: tps, tpm, symbol, spread, imbalance, vdelta, volume."),
    json_: bool = typer.Option(False, "--json", help="Print version-1 NDJSON snapshots instead of the table."),
    interval: str = typer.Option("1s", "--interval", help="JSON snapshot interval (pipeline clock)."),
    record: Optional[str] = typer.Option(None, "--record", help="Also record every frame to this file (.gz/.zst compress)."),
    ladder: bool = typer.Option(False, "--ladder", help="Show the depth ladder of the first symbol."),
    url: Optional[str] = typer.Option(None, "--url", help="Server to use instead of Bybit (or env BYBITMON_URL)."),
    testnet: bool = typer.Option(False, "--testnet", help="Use Bybit's testnet."),
    density_x: float = typer.Option(5.0, "--density-x", help="A density is a level >= this x its side's median size."),
    min_notional: float = typer.Option(0.0, "--min-notional", help="... with at least this notional (quote units)."),
    duration: Optional[str] = typer.Option(None, "--duration", help="Stop after this long (default: until Ctrl-C)."),
    alert: list[str] = typer.Option([], "--alert", help="Alert rule, e.g. 'tps>50' (repeatable; see README)."),
    alerts_out: Optional[str] = typer.Option(None, "--alerts-out", help="Append alert events (NDJSON) to this file."),
    bell: bool = typer.Option(False, "--bell", help="Ring the terminal bell when an alert fires."),
) -> None:
    """Watch symbols live: activity, book and densities per symbol, refreshed a few times a second."""
    from .app.watch import SORT_KEYS, run_watch

    opts = _watch_options(symbols, category, depth, window, bps, density_x, min_notional, url, testnet, duration)
    if sort not in SORT_KEYS:
        raise UsageError(f"bad --sort {sort!r}: one of {', '.join(SORT_KEYS)}")
    opts.sort = sort
    opts.json = json_
    opts.interval_ms = parse_window(interval)
    opts.record = record
    opts.ladder = ladder
    from .core.alerts import parse_alert

    for rule in alert:
        parse_alert(rule)  # validated up front: one line for a bad rule
    opts.alerts = list(alert)
    opts.alerts_out = alerts_out
    opts.bell = bell
    _run_async(run_watch(opts))


@app.command()
def record(
    symbols: list[str] = typer.Argument(..., help="Symbols to record."),
    output: str = typer.Option(..., "-o", "--output", help="Recording file (.gz or .zst to compress)."),
    category: str = typer.Option("linear", "--category", help="spot, linear, inverse."),
    depth: int = typer.Option(50, "--depth", help="Order book depth (1, 50, 200, 1000)."),
    duration: Optional[str] = typer.Option(None, "--duration", help="Stop after this long (default: until Ctrl-C)."),
    url: Optional[str] = typer.Option(None, "--url", help="Server to use instead of Bybit (or env BYBITMON_URL)."),
    testnet: bool = typer.Option(False, "--testnet", help="Use Bybit's testnet."),
) -> None:
    """Record every received frame verbatim, with its receive time, for replay."""
    from .app.watch import run_record

    opts = _watch_options(symbols, category, depth, "60s", 50.0, 5.0, 0.0, url, testnet, duration)
    _run_async(run_record(opts, output, progress=sys.stderr.isatty()))


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(0, "--port", help="Port (0 picks a free one)."),
    simulate: bool = typer.Option(False, "--simulate", help="Serve a seeded simulated market."),
    from_file: Optional[str] = typer.Option(None, "--from", help="Serve a recording / NDJSON capture."),
    symbols: str = typer.Option("BTCUSDT,ETHUSDT", "--symbols", help="Symbols for --simulate, comma-separated."),
    seed: int = typer.Option(1, "--seed", help="Simulator seed."),
    speed: str = typer.Option("1", "--speed", help="Replay speed: 1, 10, ... or max."),
    faults: Optional[str] = typer.Option(None, "--faults", help="Fault plan, e.g. 'drop=30s,gap=0.01' (see README)."),
    idle_timeout: str = typer.Option("600s", "--idle-timeout", help="Close connections silent this long (Bybit: 10 min)."),
) -> None:
    """A local Bybit-compatible WebSocket server (simulated market or a recording), with faults on demand."""
    import asyncio

    from .testserver.app import run_serve

    if simulate == (from_file is not None):
        raise UsageError("give either --simulate or --from FILE")
    syms = parse_symbols([symbols])
    if simulate and not syms:
        raise UsageError("--symbols is empty")
    if not 0 <= port <= 65535:
        raise UsageError(f"bad --port {port}")
    pace = parse_speed(speed)
    idle_s = parse_window(idle_timeout) / 1000

    def ready(url: str) -> None:
        print(f"serving Bybit v5 public streams on {url}/v5/public/{{spot,linear,inverse}}", flush=True)
        print(f"try: bybitmon watch {' '.join(syms[:2]) or 'BTCUSDT'} --url {url}", flush=True)

    async def run() -> None:
        import signal

        task = asyncio.ensure_future(run_serve(host, port, simulate=simulate, file=from_file, symbols=syms,
                                               seed=seed, speed=pace, faults=faults, idle_timeout_s=idle_s,
                                               ready=ready))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(run())
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command()
def export(
    file: str = typer.Argument(..., help="Recording, NDJSON capture or tardis raw file."),
    to: Optional[str] = typer.Option(None, "--to", help="Trades table (Parquet)."),
    book: Optional[str] = typer.Option(None, "--book", help="Book metrics sampled every --every (Parquet)."),
    densities: Optional[str] = typer.Option(None, "--densities", help="Ended densities with their fate (Parquet)."),
    every: str = typer.Option("100ms", "--every", help="Book sampling interval on the pipeline clock."),
    category: str = typer.Option("linear", "--category", help="spot, linear, inverse."),
    window: str = typer.Option("60s", "--window", help="Trade window for the sampled activity columns."),
    bps: float = typer.Option(50.0, "--bps", help="Depth band around mid, basis points."),
) -> None:
    """Export a recording to Parquet tables for DuckDB / Polars / pandas (needs bybitmon[export])."""
    from .app.export import export_file

    category = parse_category(category)
    rows = export_file(file, category=category, trades_out=to, book_out=book, densities_out=densities,
                       every_ms=parse_window(every), window_ms=parse_window(window), bps=bps)
    print(", ".join(f"{n} {name} rows" for name, n in rows.items()), file=sys.stderr)


def _report(monitor: Monitor, reader) -> None:
    if reader is not None:
        rep = reader.report
        for line_no, why in rep.skipped[:20]:
            print(f"warning: {rep.path}:{line_no}: {why}; skipped", file=sys.stderr)
        if len(rep.skipped) > 20:
            print(f"warning: {len(rep.skipped) - 20} more unreadable lines skipped", file=sys.stderr)
        if rep.frames == 0 and not rep.skipped:
            raise UsageError(f"{rep.path}: no frames in file")
    if monitor.bad_frames:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(monitor.bad_reasons.items()))
        print(f"warning: {monitor.bad_frames} bad frames skipped ({reasons})", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and a non-zero exit for bad input, never a traceback."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="bybitmon")
    except BybitmonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TyperException as exc:
        message = exc.format_message().strip()
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(message, file=sys.stderr)
        else:
            print(f"error: {message}", file=sys.stderr)
        sys.exit(exc.exit_code or 2)
    except (Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
