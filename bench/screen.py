"""CPU cost of one refresh of the live table for 50 symbols, and what 4 refreshes/s cost.

Run:  /work/venv/bin/python bench/screen.py
      /work/venv/bin/python bench/screen.py --symbols 100 --refreshes 100

A Monitor is fed 90 simulated seconds of 50 symbols (orderbook.50 + ~100 trades/s each, the
same cached recording as bench/memory.py), so windows, books and densities are full. Then one
refresh is timed the way ``bybitmon watch`` builds it (bybitmon/app/watch.py ``render``):
  1. ``Monitor.snapshot(s)`` and ``Monitor.latency(s)`` (and ``price_decimals`` if present) per symbol;
  2. ``ui.activity_table(snaps, width=160, ...)`` builds the rich Table;
  3. ``Console(file=io.StringIO(), width=160, force_terminal=True).print(table)`` renders it to ANSI text.
Best of ``--samples`` samples of ``--refreshes`` refreshes each. The Monitor is not fed between
refreshes (feeding is measured by bench/throughput.py).
"""

from __future__ import annotations

import argparse
import inspect
import io
import time
from collections import deque

import _benchutil as bu
from rich.console import Console

from bybitmon import ui
from bybitmon.app.board import Board
from bybitmon.core.monitor import Monitor

TRADE_RATE = 45.0  # as bench/memory.py: ~100 trades/s per symbol


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--sim-s", type=int, default=90, help="simulated seconds fed before timing (default 90)")
    ap.add_argument("--refreshes", type=int, default=20, help="refreshes per sample (default 20)")
    ap.add_argument("--samples", type=int, default=5, help="samples, best of (default 5)")
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--rows", type=int, default=None,
                    help="rows that fit the terminal (watch draws height - 8); default: every symbol")
    ap.add_argument("--hz", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    print(f"# bybitmon screen refresh cost\n\n{bu.machine_line()}")

    symbols = bu.sim_symbols(args.symbols)
    path = bu.sim_recording(None, symbols, args.seed, duration_ms=args.sim_s * 1000, trade_rate=TRADE_RATE)
    m = Monitor("linear")
    frames = 0
    for ts, raw in bu.stream_recording(path):
        m.feed(ts * 1_000_000 + 5_000_000, raw)
        frames += 1
    print(f"Monitor fed {frames:,} frames ({args.sim_s} simulated s, {len(symbols)} symbols)")

    accepted = set(inspect.signature(ui.activity_table).parameters)
    has_decimals = hasattr(m, "price_decimals") and "decimals" in accepted
    sparks = {s: deque((float(i % 7) for i in range(60)), maxlen=60) for s in symbols}
    console = Console(file=io.StringIO(), width=args.width, force_terminal=True)
    buf = console.file

    rows = args.rows or len(symbols)
    board = Board.of(m, symbols)

    def collect():
        # As `watch` does: every symbol ordered by TPS, snapshot and latency only for drawn rows.
        order = board.order("tps")[:rows]
        snaps = [m.snapshot(s) for s in order]
        kw = {"latencies": {s: m.latency(s) for s in order}, "max_rows": rows, "n_symbols": len(symbols)}
        if "sparks" in accepted:
            kw["sparks"] = sparks
        if has_decimals:
            kw["decimals"] = {s: m.price_decimals(s) for s in symbols}
        return snaps, kw

    def build(snaps, kw):
        return ui.activity_table(snaps, width=args.width, **kw)

    def render(table):
        buf.seek(0)
        buf.truncate()
        console.print(table)

    # One refresh to check what is drawn.
    snaps, kw = collect()
    table = build(snaps, kw)
    render(table)
    text = buf.getvalue()
    header = next(line for line in text.splitlines() if "symbol" in line)
    print(f"table: {header.count('┃') - 1} columns, {len(snaps)} rows, {len(text.splitlines())} lines, "
          f"{len(text):,} characters of output per refresh (console color system: {console.color_system}); "
          f"keyword args passed: {sorted(kw)}")

    best = {"collect": float("inf"), "build": float("inf"), "render": float("inf"), "total": float("inf")}
    n = args.refreshes
    for _ in range(args.samples):
        t = {"collect": 0.0, "build": 0.0, "render": 0.0}
        t_start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            snaps, kw = collect()
            t1 = time.perf_counter()
            table = build(snaps, kw)
            t2 = time.perf_counter()
            render(table)
            t3 = time.perf_counter()
            t["collect"] += t1 - t0
            t["build"] += t2 - t1
            t["render"] += t3 - t2
        total = time.perf_counter() - t_start
        for k, v in t.items():
            best[k] = min(best[k], v / n)
        best["total"] = min(best["total"], total / n)

    print(f"\n### One refresh of the live table, {len(symbols)} symbols, width {args.width} "
          f"(best of {args.samples} x {n} refreshes)\n")
    hz = args.hz
    steps = [
        ("order every symbol; snapshot and latency of the drawn rows", best["collect"]),
        (f"ui.activity_table ({rows} rows drawn)", best["build"]),
        ("Console.print (render to ANSI text)", best["render"]),
        ("whole refresh", best["total"]),
    ]
    bu.print_table(["step", "ms per refresh", f"% of one core at {hz:g} Hz"],
                   [(name, f"{v * 1e3:.2f}", f"{v * hz * 100:.1f}") for name, v in steps], align="lrr")
    print("\n(the parts are each their own best sample, so they need not add up exactly to the whole)")


if __name__ == "__main__":
    main()
