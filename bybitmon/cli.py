"""The ``bybitmon`` command line (Typer). The only module that prints errors or exits."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Iterable, Optional

import typer
from typer.exceptions import Abort, TyperException

from .core.activity import parse_window
from .core.limits import BOOK_DEPTHS, CATEGORIES
from .errors import BybitmonError, OutputClosed, UsageError, printable

if TYPE_CHECKING:
    from .app.live import LiveOptions

__all__ = ["app", "main", "exit_interrupted", "parse_category", "parse_duration", "parse_speed", "parse_symbols", "positive", "non_negative",
           "watch", "record", "replay", "export", "serve"]

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


# -- option parsing ----------------------------------------------------------------------


def parse_speed(text: str) -> float | None:
    """``max`` -> None (as fast as possible); ``1``, ``10``, ``0.5`` -> that multiple of real time."""
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text.rstrip("xX"))
    except ValueError:
        raise UsageError(f"bad --speed {printable(text)!r}: use a positive number such as 1 or 10, or max") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"bad --speed {printable(text)!r}: use a positive number such as 1 or 10, or max")
    return value


def parse_duration(option: str, text: str) -> int:
    """A duration option (``--window 60s``, ``--every 100ms``) in ms; errors name the option."""
    try:
        return parse_window(text)
    except UsageError:
        raise UsageError(f"bad {option} {printable(text)!r}: use a duration longer than 0, "
                         f"such as 500ms, 10s, 5m or 1h") from None


def positive(option: str, value: float) -> float:
    """A finite number > 0 (``--bps``, ``--density-x``)."""
    if not 0 < value < float("inf"):
        raise UsageError(f"bad {option} {value}: it must be a positive number")
    return value


def non_negative(option: str, value: float) -> float:
    """A finite number >= 0 (``--min-notional``)."""
    if not 0 <= value < float("inf"):
        raise UsageError(f"bad {option} {value}: it must be 0 or a positive number")
    return value


def parse_category(text: str) -> str:
    if text not in CATEGORIES:
        raise UsageError(f"bad --category {printable(text)!r}: one of {', '.join(CATEGORIES)}")
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
                raise UsageError(f"bad symbol {printable(sym)!r}: use exchange symbols such as BTCUSDT")
            if sym not in out:
                out.append(sym)
    return out


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
    alert: list[str] = typer.Option([], "--alert", help="Alert rule, e.g. 'tps>50', or on densities 'density_notional>=1e6 & density_dist<=0.5' (a density of >= 1M within 0.5 % of the last price); repeatable; see README."),
    alerts_out: Optional[str] = typer.Option(None, "--alerts-out", help="Append alert events (NDJSON) to this file."),
    follow: bool = typer.Option(False, "--follow", help="Read FILE even if it is a pipe or device (it may never end)."),
) -> int:
    """Replay a capture or recording (or a simulated market) through the pipeline."""
    from .app.replay import ReplayOptions, run_replay

    if simulate == (file is not None):
        raise UsageError("give either a FILE to replay or --simulate")
    opts = ReplayOptions(file=file, simulate=simulate, seed=seed, category=parse_category(category),
                         window_ms=parse_duration("--window", window), bps=positive("--bps", bps), json=json_,
                         interval_ms=parse_duration("--interval", interval),
                         density_x=positive("--density-x", density_x),
                         min_notional=non_negative("--min-notional", min_notional),
                         alerts=list(alert), alerts_out=alerts_out, follow=follow)
    if alert:
        from .core.alerts import parse_alert  # only then: a replay without rules does not load them

        for rule in alert:
            parse_alert(rule)
    if simulate:
        opts.symbols = parse_symbols([symbols])
        if not opts.symbols:
            raise UsageError("--symbols is empty")
        opts.duration_ms = parse_duration("--duration", duration)
        opts.speed = parse_speed(speed or "1")
    else:
        opts.speed = parse_speed(speed or "max")
    return run_replay(opts, stdout=sys.stdout.buffer, stderr=sys.stderr, terminal=sys.stdout)


def _parse_depth(depth: int, category: str) -> int:
    allowed = BOOK_DEPTHS
    if depth not in allowed:
        raise UsageError(f"bad --depth {depth}: Bybit {category} books come in depths {', '.join(map(str, allowed))}")
    return depth


def _live_options(symbols: list[str], category: str, depth: int, window: str, bps: float, density_x: float,
                  min_notional: float, url: Optional[str], testnet: bool, duration: Optional[str]) -> "LiveOptions":
    from .app.live import LiveOptions
    from .transport.client import resolve_url

    syms = parse_symbols(symbols)
    if not syms:
        raise UsageError("name at least one symbol, e.g. BTCUSDT")
    category = parse_category(category)
    resolve_url(category, url, testnet)  # validates --url / BYBITMON_URL up front
    return LiveOptions(symbols=syms, category=category, depth=_parse_depth(depth, category),
                       window_ms=parse_duration("--window", window), bps=positive("--bps", bps),
                       density_x=positive("--density-x", density_x),
                       min_notional=non_negative("--min-notional", min_notional), url=url, testnet=testnet,
                       duration_s=parse_duration("--duration", duration) / 1000 if duration is not None else None)


@app.command()
def watch(
    symbols: Optional[list[str]] = typer.Argument(None, help="Symbols, e.g. BTCUSDT ETHUSDT (commas work too)."),
    category: str = typer.Option("linear", "--category", help="spot, linear, inverse (with --all, several: linear,spot)."),
    depth: int = typer.Option(50, "--depth", help="Order book depth to subscribe (1, 50, 200, 1000)."),
    window: str = typer.Option("60s", "--window", help="Trade window (10s, 60s, 5m)."),
    bps: float = typer.Option(50.0, "--bps", help="Depth band around mid, basis points."),
    sort: Optional[str] = typer.Option(None, "--sort", help="Row order: tps, tpm, symbol, spread, imbalance, vdelta, volume, heat (default tps; heat with --all)."),
    json_: bool = typer.Option(False, "--json", help="Print version-1 NDJSON snapshots instead of the table."),
    interval: str = typer.Option("1s", "--interval", help="JSON snapshot interval (pipeline clock)."),
    record: Optional[str] = typer.Option(None, "--record", help="Also record every frame to this file (.gz/.zst compress)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --record file."),
    ladder: bool = typer.Option(False, "--ladder", help="Show the depth ladder of the first symbol."),
    url: Optional[str] = typer.Option(None, "--url", help="Server to use instead of Bybit (or env BYBITMON_URL)."),
    testnet: bool = typer.Option(False, "--testnet", help="Use Bybit's testnet."),
    density_x: float = typer.Option(5.0, "--density-x", help="A density is a level >= this x its side's median size."),
    min_notional: float = typer.Option(0.0, "--min-notional", help="... with at least this notional (quote units)."),
    duration: Optional[str] = typer.Option(None, "--duration", help="Stop after this long (default: until Ctrl-C)."),
    alert: list[str] = typer.Option([], "--alert", help="Alert rule, e.g. 'tps>50', or on densities 'density_notional>=1e6 & density_dist<=0.5' (a density of >= 1M within 0.5 % of the last price); repeatable; see README."),
    alerts_out: Optional[str] = typer.Option(None, "--alerts-out", help="Append alert events (NDJSON) to this file."),
    bell: bool = typer.Option(False, "--bell", help="Ring the terminal bell when an alert fires."),
    all_: bool = typer.Option(False, "--all", help="Discover every trading instrument over REST and follow them all."),
    top: Optional[int] = typer.Option(None, "--top", help="With --all: draw at most N rows (all are followed; --json emits all)."),
    quote: Optional[str] = typer.Option(None, "--quote", help="With --all: only instruments quoted in this coin, e.g. USDT."),
    min_turnover: Optional[float] = typer.Option(None, "--min-turnover", help="With --all: only 24h turnover >= X (quote coin; base coin on inverse)."),
    rediscover: str = typer.Option("10m", "--rediscover", help="With --all: refresh the instrument list this often."),
    rest_timeout: str = typer.Option("10s", "--rest-timeout", help="With --all: give up on a REST call after this long."),
    quote_units: bool = typer.Option(False, "--quote-units", help="Volume delta and depth in quote currency (x price)."),
    screen_min_notional: float = typer.Option(0.0, "--screen-min-notional",
                                              help="Density screen: hide densities below this notional (quote units)."),
    screen_auto_notional: Optional[float] = typer.Option(
        None, "--screen-auto-notional",
        help="Density screen: hide densities below this many times the symbol's traded turnover over the window."),
    max_distance: Optional[float] = typer.Option(None, "--max-distance",
                                                 help="Density screen: hide densities farther than this % from the last price."),
    min_lifetime: str = typer.Option("2s", "--min-lifetime", help="Density screen: hide densities younger than this (0 shows all)."),
) -> int:
    """Watch symbols live: activity, book and densities per symbol, refreshed a few times a second.

    In a terminal, keys work as in htop: q quit, ? help, s/S sort, arrows or j/k select, Enter
    ladder, Esc back, d density screen, / filter, f pin, p pause.
    """
    from .app.runner import run_async
    from .app.watch import SORT_KEYS, run_watch
    from .core.alerts import parse_alert

    all_opts = None
    if all_ and (record or ladder):
        raise UsageError(f"{'--record' if record else '--ladder'} goes without --all: name the symbols")
    if all_:
        all_opts = _watch_all_options(symbols, category, depth, window, bps, density_x, min_notional, url, testnet,
                                      duration, top, quote, min_turnover, rediscover, rest_timeout)
        opts = all_opts.base
    else:
        for flag, given in (("--top", top), ("--quote", quote), ("--min-turnover", min_turnover)):
            if given is not None:
                raise UsageError(f"{flag} goes with --all")
        if not symbols:
            raise UsageError("name at least one symbol, e.g. BTCUSDT, or follow every instrument with --all")
        opts = _live_options(symbols or [], category, depth, window, bps, density_x, min_notional, url, testnet,
                             duration)
    sort = sort or ("heat" if all_opts is not None else "tps")
    if sort not in SORT_KEYS:
        raise UsageError(f"bad --sort {printable(sort)!r}: one of {', '.join(SORT_KEYS)}")
    opts.sort = sort
    opts.json = json_
    opts.interval_ms = parse_duration("--interval", interval)
    opts.record = record
    opts.force = force
    opts.ladder = ladder
    for rule in alert:
        parse_alert(rule)  # validated up front: one line for a bad rule
    opts.alerts = list(alert)
    opts.alerts_out = alerts_out
    opts.bell = bell
    opts.quote_units = quote_units
    from .core.screener import ScreenFilter

    for name, value in (("--screen-min-notional", screen_min_notional), ("--screen-auto-notional", screen_auto_notional),
                        ("--max-distance", max_distance)):
        if value is not None and not 0 <= value < float("inf"):
            raise UsageError(f"bad {name} {value}: use a number >= 0")
    if max_distance is not None and max_distance <= 0:
        raise UsageError(f"bad --max-distance {max_distance}: use a percentage > 0")
    life_ms = 0 if min_lifetime.strip() in ("0", "0s") else parse_duration("--min-lifetime", min_lifetime)
    opts.density_filter = ScreenFilter(min_notional=screen_min_notional, auto_notional=screen_auto_notional,
                                       max_distance_pct=max_distance, min_lifetime_ms=life_ms)
    if all_opts is not None:
        from .app.watch_all import run_watch_all

        return run_async(run_watch_all(all_opts, stdout=sys.stdout.buffer, stderr=sys.stderr, terminal=sys.stdout))
    return run_async(run_watch(opts, stdout=sys.stdout.buffer, stderr=sys.stderr, terminal=sys.stdout))


def _watch_all_options(symbols: Optional[list[str]], category: str, depth: int, window: str, bps: float,
                       density_x: float, min_notional: float, url: Optional[str], testnet: bool,
                       duration: Optional[str], top: Optional[int], quote: Optional[str],
                       min_turnover: Optional[float], rediscover: str, rest_timeout: str):
    from .app.watch_all import AllOptions
    from .core.limits import SERVED_CATEGORIES

    if symbols:
        raise UsageError("give symbols or --all, not both")
    cats = list(dict.fromkeys(c.strip().lower() for c in category.split(",") if c.strip()))
    for c in cats:
        if c not in SERVED_CATEGORIES:
            raise UsageError(f"bad --category {printable(c)!r}: one or more of {', '.join(SERVED_CATEGORIES)}, "
                             f"comma-separated")
    if not cats:
        raise UsageError("--category is empty")
    if top is not None and top < 1:
        raise UsageError(f"bad --top {top}: it must be at least 1")
    if quote is not None and not (quote.isascii() and quote.isalnum() and 1 <= len(quote) <= 20):
        raise UsageError(f"bad --quote {printable(quote)!r}: a coin such as USDT")
    if min_turnover is not None:
        non_negative("--min-turnover", min_turnover)
    base = _live_options(["ALL"], cats[0], depth, window, bps, density_x, min_notional, url, testnet, duration)
    for c in cats[1:]:
        _parse_depth(depth, c)
    base.symbols = []
    return AllOptions(base, categories=cats, quote=quote.upper() if quote else None, min_turnover=min_turnover,
                      top=top, rediscover_s=parse_duration("--rediscover", rediscover) / 1000,
                      rest_timeout_s=parse_duration("--rest-timeout", rest_timeout) / 1000)


@app.command()
def record(
    symbols: list[str] = typer.Argument(..., help="Symbols to record."),
    output: str = typer.Option(..., "-o", "--output", help="Recording file (.gz or .zst to compress)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the file if it exists (else it is refused)."),
    category: str = typer.Option("linear", "--category", help="spot, linear, inverse."),
    depth: int = typer.Option(50, "--depth", help="Order book depth (1, 50, 200, 1000)."),
    duration: Optional[str] = typer.Option(None, "--duration", help="Stop after this long (default: until Ctrl-C)."),
    url: Optional[str] = typer.Option(None, "--url", help="Server to use instead of Bybit (or env BYBITMON_URL)."),
    testnet: bool = typer.Option(False, "--testnet", help="Use Bybit's testnet."),
) -> int:
    """Record every received frame verbatim, with its receive time, for replay."""
    from .app.record import run_record
    from .app.runner import run_async

    opts = _live_options(symbols, category, depth, "60s", 50.0, 5.0, 0.0, url, testnet, duration)
    opts.force = force
    return run_async(run_record(opts, output, stderr=sys.stderr, progress=sys.stderr.isatty()))


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
    verbose: bool = typer.Option(False, "--verbose", help="Log connections, subscriptions, refusals and each fault to stderr."),
) -> int:
    """A local Bybit-compatible WebSocket server (simulated market or a recording), with faults on demand."""
    import asyncio

    from .app.runner import serve_until_signal
    from .testserver.run import run_serve

    if simulate == (from_file is not None):
        raise UsageError("give either --simulate or --from FILE")
    syms = parse_symbols([symbols])
    if simulate and not syms:
        raise UsageError("--symbols is empty")
    if not 0 <= port <= 65535:
        raise UsageError(f"bad --port {port}")
    pace = parse_speed(speed)
    idle_s = parse_duration("--idle-timeout", idle_timeout) / 1000
    if from_file is not None:
        from .app.files import check_input

        check_input(from_file, "serve --from reads a recording or capture file: save the stream to a file first")

    def say(line: str) -> None:
        print(line, flush=True)

    def log(line: str) -> None:
        print(f"serve: {line}", file=sys.stderr, flush=True)

    def start():
        return run_serve(host, port, simulate=simulate, file=from_file, symbols=syms, seed=seed, speed=pace,
                         faults=faults, idle_timeout_s=idle_s, say=say, log=log if verbose else None)

    try:
        return asyncio.run(serve_until_signal(start))
    except OSError as exc:
        raise UsageError(f"cannot listen on {printable(host)}:{port}: {exc.strerror or exc}") from None


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
    force: bool = typer.Option(False, "--force", help="Overwrite output files that exist (else they are refused)."),
) -> None:
    """Export a recording to Parquet tables for DuckDB / Polars / pandas (needs bybitmon[export])."""
    from .app.export import export_file

    category = parse_category(category)
    rows = export_file(file, category=category, trades_out=to, book_out=book, densities_out=densities,
                       every_ms=parse_duration("--every", every), window_ms=parse_duration("--window", window),
                       bps=positive("--bps", bps), force=force, stderr=sys.stderr)
    print(", ".join(f"{n} {name} rows" for name, n in rows.items()), file=sys.stderr)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush into a closed pipe is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def exit_interrupted() -> None:
    """Say ``interrupted`` and end with status 130, whatever other SIGINT is still pending.

    pyarrow re-sends a SIGINT it intercepted to the main thread; a second KeyboardInterrupt
    raised while exiting would end the process by the signal (status -2) instead of 130. So
    SIGINT is ignored from here on, a pending interrupt is absorbed, and the process exits
    without running the interpreter's teardown again (outputs were closed on the way out).
    """
    said = False
    while True:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if not said:
                said = True
                sys.stderr.write("interrupted\n")
            sys.stderr.flush()
            try:
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
            break
        except KeyboardInterrupt:
            continue
    os._exit(130)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and a non-zero exit for bad input, never a traceback.

    Exit status: 0 done (also when the reader of stdout went away, as with ``| head``); 2 an
    error (one ``error:`` line on stderr); 130 Ctrl-C, 143 SIGTERM, in every command.
    """
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="bybitmon")
    except OutputClosed:
        _quiet_stdout()
        sys.exit(0)
    except BybitmonError as exc:
        print(f"error: {printable(exc, 2000)}", file=sys.stderr)
        sys.exit(2)
    except TyperException as exc:
        message = exc.format_message().strip()
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(message, file=sys.stderr)
        else:
            print(f"error: {printable(message, 2000)}", file=sys.stderr)
        sys.exit(exc.exit_code or 2)
    except (Abort, KeyboardInterrupt):
        exit_interrupted()
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error of ours.
        _quiet_stdout()
        sys.exit(0)
    if isinstance(rv, int) and rv:
        if rv == 130:
            print("interrupted", file=sys.stderr)
        elif rv == 143:
            print("terminated", file=sys.stderr)
        sys.exit(rv)
