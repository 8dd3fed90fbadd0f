"""Memory of bybitmon's pipeline: RSS over a long simulated run (must be flat) and RSS per symbol.

Run:  /work/venv/bin/python bench/memory.py               (1 simulated hour of 3 symbols, then 50 symbols)
      /work/venv/bin/python bench/memory.py --minutes 10  (shorter)
      /work/venv/bin/python bench/memory.py --only cli    (the command itself: RSS of
          `bybitmon replay --simulate --duration 60m --speed max --json` sampled from outside)

Settings as a live monitor would run: orderbook.50 (a delta every 20 ms), trade window 60 s,
about 100 trades/s per symbol (MarketSimulator trade_rate 45 gives ~100 fills/s on average with
its bursts; the measured rate is printed), a snapshot of every symbol once per simulated second
(what ``--json --interval 1s`` does). Frames are generated once by a child process and cached on
disk, then streamed from the file at max speed, so neither the simulator nor the frames sit in
this process's memory. RSS is VmRSS from /proc/self/status.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import threading
import time

import orjson

import _benchutil as bu

from bybitmon.core import protocol
from bybitmon.core.monitor import Monitor

TRADE_RATE = 45.0  # MarketSimulator trade_rate giving ~100 trades/s per symbol (bursts included)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope dy/dx."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def cache_bytes_per_entry(n: int = 100_000) -> float:
    """RSS cost of one entry of bybitmon's validated-string caches (protocol._PRICES/_SIZES),
    measured by pushing ``n`` fresh price strings through the same code path in frame-sized
    batches (the strings stay alive as the cache's keys, as they do live)."""
    gc.collect()
    before = bu.rss_mb()
    for start in range(0, n, 200):
        protocol._levels([[f"{10_000_000 + i}.5", "1"] for i in range(start, start + 200)])
    gc.collect()
    return (bu.rss_mb() - before) * 1024 * 1024 / n


def long_run(args) -> None:
    symbols = bu.sim_symbols(args.symbols)
    path = bu.sim_recording_in_subprocess(symbols=symbols, seed=args.seed, duration_ms=args.minutes * 60_000,
                                          depth=args.depth, trade_rate=TRADE_RATE)
    gc.collect()
    rss0 = bu.rss_mb()
    m = Monitor("linear", window_ms=args.window_s * 1000)
    samples: list[tuple[int, float, float, int, int, int]] = []  # minute, rss, tps, held, caches
    start = None
    next_snap = next_min = 0
    frames = 0
    t0 = time.perf_counter()
    for ts, raw in bu.stream_recording(path):
        if start is None:
            start = ts
            next_snap = ts + 1000
            next_min = ts + 60_000
        while ts >= next_snap:  # once per simulated second, like --json --interval 1s
            for s in symbols:
                m.snapshot(s)
            next_snap += 1000
        if ts >= next_min:
            minute = (next_min - start) // 60_000
            snaps = [m.snapshot(s) for s in symbols]
            tps = sum(sn["trades"]["tps"] for sn in snaps) / len(snaps)
            held = sum(len(m.states[s].trades._ids) for s in symbols)
            samples.append((minute, bu.rss_mb(), tps, held, len(protocol._PRICES) + len(protocol._OLD_PRICES),
                            len(protocol._SIZES) + len(protocol._OLD_SIZES)))
            next_min += 60_000
        m.feed(ts * 1_000_000 + 5_000_000, raw)
        frames += 1
    wall = time.perf_counter() - t0
    print(f"\n### RSS over {args.minutes} simulated minutes, {len(symbols)} symbols "
          f"({frames:,} frames in {wall:.0f} s wall, {frames / wall:,.0f} frames/s incl. reading the file)\n")
    print(f"RSS before the Monitor: {rss0:.1f} MB")
    every = max(1, len(samples) // 12)
    rows = [(f"{mi}", f"{r:.1f}", f"{r - rss0:+.1f}", f"{t:.0f}", f"{h:,}", f"{cp:,} / {cs:,}")
            for i, (mi, r, t, h, cp, cs) in enumerate(samples) if i % every == 0 or i == len(samples) - 1]
    bu.print_table(["sim minute", "RSS MB", "vs before", "mean trades/s per symbol (60 s window)",
                    "trades held (all symbols)", "price / size cache entries"], rows)
    warm = [(mi, r) for mi, r, *_ in samples if mi >= args.warmup_min]
    cache = [(mi, cp + cs) for mi, _, _, _, cp, cs in samples if mi >= args.warmup_min]
    per_entry = cache_bytes_per_entry()
    cache_mb = slope(cache) * per_entry / (1024 * 1024)
    half = warm[len(warm) // 2:]
    print()
    bu.print_table(["RSS slope", "MB per simulated minute", "MB per simulated hour"], [
        (f"minutes {warm[0][0]}-{warm[-1][0]} (after {args.warmup_min} min warm-up)" if warm else "n/a",
         f"{slope(warm):+.4f}", f"{slope(warm) * 60:+.2f}"),
        (f"second half, minutes {half[0][0]}-{half[-1][0]}" if half else "n/a",
         f"{slope(half):+.4f}", f"{slope(half) * 60:+.2f}"),
        (f"of which protocol price/size caches ({slope(cache):.0f} new entries/min x {per_entry:.0f} B)",
         f"{cache_mb:+.4f}", f"{cache_mb * 60:+.2f}"),
        ("after warm-up, net of the caches", f"{slope(warm) - cache_mb:+.4f}", f"{(slope(warm) - cache_mb) * 60:+.2f}"),
    ], align="lrr")
    if warm:
        lo, hi = min(r for _, r in warm), max(r for _, r in warm)
        print(f"\nRSS after warm-up: min {lo:.1f} MB, max {hi:.1f} MB, spread {hi - lo:.1f} MB; "
              f"protocol caches at the end: {samples[-1][4]:,} prices, {samples[-1][5]:,} sizes "
              f"(young + old generation, each at most {protocol._CACHE_MAX:,})")


def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cli_run(args) -> None:
    """RSS of the real command over a long simulated run, sampled from outside the process,
    against the simulated clock read from the snapshots it prints. The simulator's own trade
    rate (5 fills/s per symbol) is lower than the in-process run's; this checks the command's
    whole path (driver, JSON emitter), not the per-trade cost."""
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"][:max(1, min(3, args.symbols))]
    cmd = [sys.executable, "-m", "bybitmon", "replay", "--simulate", "--symbols", ",".join(symbols),
           "--duration", f"{args.minutes}m", "--speed", "max", "--json", "--interval", "1s"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    clock = {"first": None, "last": None, "lines": 0}

    def read() -> None:
        for line in p.stdout:  # type: ignore[union-attr]
            ts = orjson.loads(line).get("ts")
            if isinstance(ts, int):
                clock["first"] = clock["first"] or ts
                clock["last"] = ts
            clock["lines"] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples: list[tuple[float, float]] = []  # simulated minute, RSS MB
    t0 = time.perf_counter()
    while p.poll() is None:
        time.sleep(0.25)
        try:
            rss = process_rss_mb(p.pid)
        except (OSError, RuntimeError):
            break
        if clock["last"] is not None:
            samples.append(((clock["last"] - clock["first"]) / 60_000, rss))
    p.wait()
    reader.join(5)
    wall = time.perf_counter() - t0
    print(f"\n### `{' '.join(cmd[2:])}`: RSS sampled from outside\n")
    print(f"{clock['lines']:,} snapshot lines in {wall:.0f} s wall; exit status {p.returncode}\n")
    every = max(1, len(samples) // 12)
    rows = [(f"{m:.1f}", f"{r:.1f}") for i, (m, r) in enumerate(samples) if i % every == 0 or i == len(samples) - 1]
    bu.print_table(["sim minute", "RSS MB"], rows)
    warm = [(m, r) for m, r in samples if m >= args.warmup_min]
    if warm:
        half = warm[len(warm) // 2:]
        print(f"\nafter {args.warmup_min} simulated min: RSS min {min(r for _, r in warm):.1f} MB, max "
              f"{max(r for _, r in warm):.1f} MB; slope {slope(warm):+.4f} MB per simulated minute "
              f"(second half {slope(half):+.4f})")


def per_symbol(args) -> None:
    n = args.n_symbols
    symbols = bu.sim_symbols(n)
    warm_ms = args.warmup_s * 1000
    path = bu.sim_recording_in_subprocess(symbols=symbols, seed=args.seed, duration_ms=warm_ms,
                                          depth=args.depth, trade_rate=TRADE_RATE)
    gc.collect()
    before = bu.rss_mb()
    m = Monitor("linear", window_ms=args.window_s * 1000)
    next_snap = None
    frames = 0
    for ts, raw in bu.stream_recording(path):
        if next_snap is None:
            next_snap = ts + 1000
        while ts >= next_snap:
            for s in symbols:
                m.snapshot(s)
            next_snap += 1000
        m.feed(ts * 1_000_000 + 5_000_000, raw)
        frames += 1
    gc.collect()
    after = bu.rss_mb()
    snaps = [m.snapshot(s) for s in symbols]
    tps = sum(s["trades"]["tps"] for s in snaps) / n
    held = sum(len(m.states[s].trades._ids) for s in symbols) / n
    levels = sum(len(m.states[s].book.bids) + len(m.states[s].book.asks) for s in symbols) / n
    print(f"\n### Memory per symbol, N={n} symbols, after {args.warmup_s} simulated s ({frames:,} frames)\n")
    bu.print_table(["RSS before MB", "RSS after MB", "delta MB", "MB per symbol", "trades/s per symbol",
                    "trades held per symbol", "book levels per symbol"],
                   [(f"{before:.1f}", f"{after:.1f}", f"{after - before:.1f}", f"{(after - before) / n:.2f}",
                     f"{tps:.0f}", f"{held:,.0f}", f"{levels:.0f}")], align="rrrrrrr")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=60, help="simulated minutes of the long run (default 60)")
    ap.add_argument("--symbols", type=int, default=3, help="symbols of the long run (default 3)")
    ap.add_argument("--warmup-min", type=int, default=5, help="minutes left out of the slope (default 5)")
    ap.add_argument("--n-symbols", type=int, default=50, help="symbols of the per-symbol measurement (default 50)")
    ap.add_argument("--warmup-s", type=int, default=90, help="simulated seconds fed before the per-symbol RSS "
                                                             "(default 90: longer than the window)")
    ap.add_argument("--window-s", type=int, default=60)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--only", choices=["long", "per-symbol", "cli"], help="run one part in this process")
    args = ap.parse_args()
    if args.only == "long":
        long_run(args)
        return
    if args.only == "per-symbol":
        per_symbol(args)
        return
    if args.only == "cli":
        cli_run(args)
        return
    print(f"# bybitmon memory\n\n{bu.machine_line()}\ndepth {args.depth}, window {args.window_s} s, "
          f"MarketSimulator trade_rate {TRADE_RATE:g}", flush=True)
    # Each part runs in a fresh child process, so memory one part freed cannot be reused
    # (and hidden) by the other.
    for part in ("long", "per-symbol"):
        subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", part], check=True)


if __name__ == "__main__":
    main()
