"""Many symbols live: `bybitmon serve --simulate --symbols N` in one process at Bybit's push
rates (orderbook.50 every 20 ms, trades bursting), the client + pipeline (headless) in this one.

Run:  python bench/scale.py                      # N = 50, 200, 500; 20 s each
      python bench/scale.py --symbols 500 --seconds 60
      python bench/scale.py --watch-all          # `watch --all` drawn in a terminal, 500 symbols

``--watch-all``: the whole command as a user runs it, see :func:`watch_all` below.

For each N it prints: frames/s received, the client's CPU (% of one core, from getrusage),
lag p50/p99 of (processing done - local receive time) per frame, the end-to-end age of each
frame when processed (done - exchange ts, which includes the simulator's own delay), and
whether that age grows from the first half of the run to the second (a growing backlog).
No assertions: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import subprocess
import sys
import time

import orjson

import _benchutil as bu

from bybitmon.transport.client import BybitClient
from bybitmon.transport.feed import LiveFeed
from bybitmon.core.monitor import Monitor
from bybitmon.core.protocol import book_topic, trade_topic


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_client(url: str, symbols: list[str], seconds: float, warmup: float, server_pid: int,
                     pipeline: bool = True) -> dict:
    """Receive ``symbols`` from the server at ``url``: through LiveFeed + Monitor, or with
    ``pipeline=False`` through the bare client only (frames are received and dropped), which
    measures what the server and the transport alone cost in age."""
    m = Monitor("linear")
    lags: list[float] = []
    ages: list[tuple[float, float]] = []
    counting = False
    frames = 0

    def on_frame(recv_ns: int, conn: str, raw: str) -> None:
        nonlocal frames
        if not counting:
            return
        done = time.time_ns()
        frames += 1
        if frames % 7 == 0:  # sample: keep the bookkeeping off the hot path
            lags.append((done - recv_ns) / 1e6)
            if pipeline:
                now_ms = m.now_ms
            else:
                ts = orjson.loads(raw).get("ts")
                now_ms = ts if type(ts) is int else None
            if now_ms is not None:
                ages.append((time.monotonic(), done / 1e6 - now_ms))

    if pipeline:
        feed = LiveFeed(m, url=url, on_frame=on_frame)
        client = feed.client
        await feed.start(symbols)
    else:
        feed = None
        client = BybitClient("linear", url=url, on_frame=on_frame)
        await client.start()
        await client.subscribe([t for s in symbols for t in (book_topic(s, 50), trade_topic(s))])
    t_end = time.monotonic() + warmup
    while time.monotonic() < t_end:
        await asyncio.sleep(0.1)
    ready = sum(1 for s in symbols if m.states.get(s) and m.states[s].book.ready) if pipeline else None
    counting = True
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    s0 = proc_cpu_s(server_pid)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    s1 = proc_cpu_s(server_pid)
    t1 = time.monotonic()
    counting = False
    if feed is not None:
        await feed.stop()
    else:
        await client.stop()
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / (t1 - t0) * 100
    mid = t0 + (t1 - t0) / 2
    first = [a for t, a in ages if t < mid]
    second = [a for t, a in ages if t >= mid]
    return {"ready": ready, "fps": frames / (t1 - t0), "cpu": cpu, "server_cpu": (s1 - s0) / (t1 - t0) * 100,
            "lag50": pct(lags, 0.5), "lag99": pct(lags, 0.99),
            "age50_1": pct(first, 0.5), "age50_2": pct(second, 0.5), "age99": pct([a for _, a in ages], 0.99),
            "conns": len(client.conns)}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":  # the watch process of --watch-all
        from _watchall import child

        return child(sys.argv[2], sys.argv[4:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--watch-all", action="store_true",
                    help="`bybitmon watch --all` in a pseudo-terminal: frames, lag, CPU, refresh cost, key latency")
    ap.add_argument("--width", type=int, default=160, help="--watch-all: terminal columns (default 160)")
    ap.add_argument("--height", type=int, default=50, help="--watch-all: terminal lines (default 50)")
    ap.add_argument("--settle", type=float, default=15.0,
                    help="--watch-all: seconds after the table appears before measuring (default 15)")
    ap.add_argument("--serve-from", metavar="FILE",
                    help="--watch-all: the server replays FILE (a capture of N symbols, e.g. made with "
                         "bench/_benchutil.sim_recording) instead of simulating")
    ap.add_argument("--symbols", type=int, nargs="*", default=[50, 200, 500])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--uvloop", action="store_true", help="run the client on uvloop (pip install uvloop)")
    ap.add_argument("--no-pipeline", action="store_true",
                    help="receive and drop the frames (no Monitor): the age the server and transport alone add")
    args = ap.parse_args()
    if args.watch_all:
        from _watchall import watch_all

        return watch_all(args)
    runner = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    print(f"# bybitmon live scale: server and client in separate processes (client loop: "
          f"{'uvloop' if args.uvloop else 'asyncio'}; {'bare client, no pipeline' if args.no_pipeline else 'LiveFeed + Monitor'})\n")
    print(bu.machine_line() if hasattr(bu, "machine_line") else f"python {sys.version.split()[0]}")
    print()
    print("| symbols | conns | books ready | frames/s | client CPU % | server CPU % | lag p50 ms | lag p99 ms | age p50 1st half | age p50 2nd half | age p99 ms |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for n in args.symbols:
        symbols = bu.sim_symbols(n)
        srv = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", "--simulate", "--port", "0",
                                "--symbols", ",".join(symbols)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        try:
            url = re.search(r"(ws://127\.0\.0\.1:\d+)", srv.stdout.readline()).group(1)
            r = runner(run_client(url, symbols, args.seconds, args.warmup, srv.pid, pipeline=not args.no_pipeline))
        finally:
            srv.terminate()
            srv.wait(10)
        print(f"| {n} | {r['conns']} | {'-' if r['ready'] is None else r['ready']} | {r['fps']:,.0f} | {r['cpu']:.0f} | {r['server_cpu']:.0f} | {r['lag50']:.2f} | "
              f"{r['lag99']:.2f} | {r['age50_1']:.0f} | {r['age50_2']:.0f} | {r['age99']:.0f} |", flush=True)
    print("\nlag = processing done - local receive time (time spent in this process per frame);")
    print("age = processing done - exchange ts (includes the simulated server's own delay on a shared 2-core box);")
    print("server CPU near 100 % means the simulated server, not the client, sets the frame rate.")


if __name__ == "__main__":
    main()
