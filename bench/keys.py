"""Key latency and the cost of each screen of ``bybitmon watch`` with many symbols.

Run:  /work/venv/bin/python bench/keys.py                       # in-process costs, 500 symbols
      /work/venv/bin/python bench/keys.py --live --symbols 500  # + end-to-end key latency in tmux

In-process: a Monitor is fed ``--sim-s`` simulated seconds of ``--symbols`` symbols (the
simulator's orderbook.50 + trades, cached as bench/screen.py does). Then, best of ``--samples``
samples of ``--refreshes`` each, one refresh of each screen is timed the way watch builds it
(bybitmon/app/screen.py ``WatchScreen.body`` then ``Console.print`` to ANSI text):
the symbol table, the density screen (every density of every symbol through the screener),
the ladder, and a key press (``ScreenState.handle`` + the redraw it triggers).

``--live``: ``bybitmon serve --simulate --symbols N`` and ``bybitmon watch`` of those N symbols
in a tmux pane (``--width`` x ``--height``); ``s`` is sent ``--presses`` times, 0.7 s apart, and
the time from ``tmux send-keys`` returning to ``tmux capture-pane`` first showing the new sort
in the footer is measured (polled every 2 ms; a capture itself costs ~3-5 ms here, so the figure
is an upper bound of what a person sees).
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid

import _benchutil as bu
from rich.console import Console, Group

from bybitmon.app.board import SORT_KEYS, Board
from bybitmon.app.screen import WatchScreen
from bybitmon.core.monitor import Monitor
from bybitmon.core.screener import SCREEN_SORTS, ScreenFilter, screen_densities
from bybitmon.ui.screen import ScreenState


def in_process(args) -> None:
    symbols = bu.sim_symbols(args.symbols)
    path = bu.sim_recording(None, symbols, args.seed, duration_ms=args.sim_s * 1000)
    m = Monitor("linear")
    frames = 0
    for ts, raw in bu.stream_recording(path):
        m.feed(ts * 1_000_000 + 5_000_000, raw)
        frames += 1
    every = screen_densities(m, flt=ScreenFilter(min_lifetime_ms=0))
    live = sum(r.state in ("active", "ending") for r in every)
    ended = sum(len(st.densities.ended) for st in m.states.values())
    print(f"Monitor fed {frames:,} frames ({args.sim_s} simulated s, {len(symbols)} symbols); "
          f"{live:,} live densities, {ended:,} ended ones held (30 s)\n")

    results = []
    for width, height in ((80, 24), (args.width, args.height)):
        console = Console(file=io.StringIO(), width=width, height=height, force_terminal=True)
        buf = console.file
        for mode in ("table", "key", "densities", "dkey", "ladder"):
            state = ScreenState(SORT_KEYS, args.sort, tuple(SCREEN_SORTS),
                                mode={"ladder": "ladder", "densities": "densities", "dkey": "densities"}.get(mode, "table"),
                                ladder_symbol=symbols[0])
            clock = [0.0]
            scr = WatchScreen(Board.of(m, symbols), state, window_ms=60_000, bps=50.0, interactive=True,
                              density_filter=ScreenFilter(min_lifetime_ms=2000), clock=lambda: clock[0])

            def refresh() -> None:
                if mode in ("key", "dkey"):
                    state.handle("j")
                # The density screen runs the screener at most once a second (WatchScreen):
                # "densities" times a refresh that runs it, "dkey" a key press that redraws.
                clock[0] += 0.01 if mode == "dkey" else 1.0
                buf.seek(0)
                buf.truncate()
                # A Group, as watch's Live draws it (console.print of a bare Text would join it
                # with the line end into a new Text that wraps, a slower path watch never takes).
                console.print(Group(scr.body(width=width, height=height - 3, statuses={}, sparks={}),
                                    scr.footer(width)))

            refresh()
            best = float("inf")
            for _ in range(args.samples):
                t0 = time.perf_counter()
                for _ in range(args.refreshes):
                    refresh()
                best = min(best, (time.perf_counter() - t0) / args.refreshes)
            what = {"table": "symbol table", "densities": "density screen: screener pass + draw",
                    "dkey": "density screen: key press (handle('j') + redraw from the rows)",
                    "ladder": "ladder", "key": "symbol table: key press (handle('j') + redraw)"}[mode]
            results.append((what, f"{width}x{height}", f"{best * 1e3:.1f}"))
    print(f"### One refresh of each screen, {len(symbols)} symbols (best of {args.samples} x {args.refreshes})\n")
    bu.print_table(["screen", "terminal", "ms per refresh"], results, align="llr")


def live(args) -> None:
    if shutil.which("tmux") is None:
        sys.exit("--live needs tmux")
    symbols = bu.sim_symbols(args.symbols)
    srv = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", "--simulate", "--port", "0",
                            "--symbols", ",".join(symbols)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = srv.stdout.readline()  # type: ignore[union-attr]
    url = re.search(r"(ws://127\.0\.0\.1:\d+)", line).group(1)  # type: ignore[union-attr]
    name = f"bmk{uuid.uuid4().hex[:8]}"
    cmd = f"env -u COLUMNS -u LINES {sys.executable} -m bybitmon watch {' '.join(symbols)} --url {url}"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(args.width), "-y", str(args.height), cmd],
                   check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-t", name, "-p"], capture_output=True, text=True).stdout

    try:
        end = time.monotonic() + 120
        while "connected" not in screen() or "sort: tps" not in screen():
            if time.monotonic() > end:
                sys.exit("watch never showed its table:\n" + screen())
            time.sleep(0.2)
        time.sleep(args.settle)  # let every symbol's snapshot arrive and the feed reach its rate
        print(f"watch {len(symbols)} symbols in tmux {args.width}x{args.height}: {screen().splitlines()[0].strip()}")
        lat = []
        idx = 0
        for _ in range(args.presses):
            idx = (idx + 1) % len(SORT_KEYS)
            want = f"sort: {SORT_KEYS[idx]} "
            subprocess.run(["tmux", "send-keys", "-t", name, "s"], check=True)
            t0 = time.perf_counter()
            while want not in screen():
                if time.perf_counter() - t0 > 10:
                    sys.exit(f"no {want!r} after 10 s")
                time.sleep(0.002)
            lat.append((time.perf_counter() - t0) * 1e3)
            time.sleep(0.7)
        lat.sort()
        p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
        print(f"\n### Key to screen, {len(symbols)} symbols ({args.presses} presses of s)\n")
        bu.print_table(["p50 ms", "p95 ms", "max ms"],
                       [(f"{statistics.median(lat):.0f}", f"{p95:.0f}", f"{lat[-1]:.0f}")], align="rrr")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        srv.terminate()
        srv.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--sim-s", type=int, default=30, help="simulated seconds fed before timing (default 30)")
    ap.add_argument("--refreshes", type=int, default=10)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=50)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--sort", default="heat", help="the table's sort (default heat, as watch --all)")
    ap.add_argument("--live", action="store_true", help="also measure key latency end to end in tmux")
    ap.add_argument("--presses", type=int, default=20)
    ap.add_argument("--settle", type=float, default=10.0, help="seconds after the table appears before pressing")
    ap.add_argument("--skip-in-process", action="store_true")
    args = ap.parse_args()
    print(f"# bybitmon keys and screens\n\n{bu.machine_line()}")
    t0 = time.perf_counter()
    sum(range(10**7))
    print(f"machine speed now: sum(range(10**7)) took {(time.perf_counter() - t0) * 1e3:.0f} ms "
          f"(~150 ms on this box when idle; other processes slow every figure below by that ratio)\n")
    if not args.skip_in_process:
        in_process(args)
    if args.live:
        live(args)


if __name__ == "__main__":
    main()
