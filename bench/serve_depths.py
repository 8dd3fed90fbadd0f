"""What serving every book depth costs: `bybitmon serve --simulate` CPU with N symbols, by depths subscribed.

The server runs in its own process (`python -m bybitmon serve --simulate --symbols ...`); one client
in this process subscribes every symbol's trades plus the book depths given, reads everything for
``--seconds`` after ``--warmup``, and the server's CPU is read from /proc over that window.

    python bench/serve_depths.py --symbols 50 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time

from websockets.asyncio.client import connect

sys.path.insert(0, os.path.dirname(__file__))
import _benchutil as bu  # noqa: E402

CASES = {"50": (50,), "200": (200,), "1000": (1000,), "all": (1, 50, 200, 1000)}


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_client(url: str, symbols: list[str], depths: tuple[int, ...], seconds: float, warmup: float,
                     pid: int) -> dict:
    topics = [f"orderbook.{d}.{s}" for s in symbols for d in depths] + [f"publicTrade.{s}" for s in symbols]
    async with connect(f"{url}/v5/public/linear", max_queue=None, max_size=None) as ws:
        for i in range(0, len(topics), 200):
            await ws.send('{"op":"subscribe","args":[%s]}' % ",".join(f'"{t}"' for t in topics[i:i + 200]))
        end_warm = time.monotonic() + warmup
        while time.monotonic() < end_warm:
            await ws.recv()
        frames = 0
        nbytes = 0
        kinds: dict[str, int] = {}
        c0, t0 = cpu_s(pid), time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            raw = await ws.recv()
            frames += 1
            nbytes += len(raw)
            kind = raw[10:raw.index(".", 20)] if raw.startswith('{"topic":"orderbook.') else "trades"
            kinds[kind] = kinds.get(kind, 0) + 1
        c1, t1 = cpu_s(pid), time.monotonic()
    per = ", ".join(f"{k.replace('orderbook.', 'ob')} {n / (t1 - t0):,.0f}" for k, n in sorted(kinds.items()))
    return {"per": per, "fps": frames / (t1 - t0), "mbps": nbytes / (t1 - t0) / 1e6, "cpu": 100.0 * (c1 - c0) / (t1 - t0),
            "ms_per_k": 1e6 * (c1 - c0) / max(1, frames)}


def sim_cost(symbols: list[str], depths: tuple[int, ...], sim_s: float) -> tuple[float, int]:
    """CPU seconds the simulator alone spends per simulated second with ``depths`` active, and frames."""
    from bybitmon.sim.depths import DepthMarket

    m = DepthMarket(symbols, 1)
    m.advance(m.start_ms)
    for s in symbols:
        for d in depths:
            m.set_active(s, d, True)
    c0 = time.process_time()
    frames = 0
    t = m.start_ms
    while t < m.start_ms + sim_s * 1000:
        t += 20  # the server's source tick
        frames += len(m.advance(t))
    return (time.process_time() - c0) / sim_s, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--cases", default="50,all", help=f"comma-separated, of {', '.join(CASES)}")
    args = ap.parse_args()
    print(f"# serve CPU by depths subscribed ({args.symbols} symbols, linear, {args.seconds:g} s after {args.warmup:g} s)\n")
    print(bu.machine_line(), f"; load average {os.getloadavg()[0]:.1f}\n")
    print("Simulator alone (no sockets; process CPU time, so little affected by other load):\n")
    print("| depths active | CPU s per simulated s | frames per simulated s |")
    print("|--|--:|--:|")
    symbols = bu.sim_symbols(args.symbols)
    for case in args.cases.split(","):
        cost, frames = sim_cost(symbols, CASES[case], args.seconds)
        print(f"| {', '.join(map(str, CASES[case]))} | {cost:.3f} | {frames / args.seconds:,.0f} |", flush=True)
    print("\nServer process (`serve --simulate`) with one client reading everything:\n")
    print("| depths subscribed | book topics | frames/s | of which (per s) | MB/s | server CPU % | CPU ms per 1000 frames |")
    print("|--|--:|--:|--|--:|--:|--:|")
    for case in args.cases.split(","):
        depths = CASES[case]
        srv = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", "--simulate", "--port", "0",
                                "--symbols", ",".join(symbols)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = re.search(r"(ws://127\.0\.0\.1:\d+)", srv.stdout.readline()).group(1)
            r = asyncio.run(run_client(url, symbols, depths, args.seconds, args.warmup, srv.pid))
        finally:
            srv.terminate()
            srv.wait(10)
        print(f"| {', '.join(map(str, depths))} | {len(depths) * len(symbols)} | {r['fps']:,.0f} | {r['per']} | {r['mbps']:.2f} | "
              f"{r['cpu']:.0f} | {r['ms_per_k']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
