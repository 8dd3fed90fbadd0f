"""Compiled vs pure-Python core vs cryptofeed vs the orjson floor, on one simulated capture.

Every measurement is a fresh process, and the processes alternate round by round, so a burst of
load from other jobs lands on all of them alike; the table gives the best and the median of each,
for wall time and for the CPU time of the process (user + sys of the child), and the ratios of
the medians within the run. On a loaded machine read the CPU columns: wall time then mostly
measures the other jobs.

Whole process (start-up, reading the file, everything; output to /dev/null):
  * ``bybitmon replay FILE --json --speed max``, compiled core and ``BYBITMON_PURE=1``;
  * cryptofeed: a script that reads the file's lines and awaits ``Bybit.message_handler`` on each
    (as bench/throughput.py drives it), in the Python given by ``--peer-python``;
  * orjson floor: a script that reads the file's lines and ``orjson.loads`` each.
In-process (``--feed``): only the loop over frames already in memory: ``Monitor.feed`` compiled
and pure, cryptofeed's handler, ``orjson.loads``.

    python bench/cores.py --frames 500000 --rounds 5 --peer-python /tmp/benchvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _benchutil import machine_line, print_table, sim_recording_in_subprocess, sim_symbols  # noqa: E402

_READ = r"""
import sys
path = sys.argv[2]
with open(path, "rb") as f:
    lines = [ln.rstrip(b"\n") for ln in f if ln.strip()]
"""

# The timed loop of each in-process child; prints frames/s of the loop (wall) and of its CPU time.
_TIMED = r"""
import gc, time
gc.collect(); gc.freeze()
t0 = time.perf_counter(); c0 = time.process_time()
run()
w = time.perf_counter() - t0; c = time.process_time() - c0
print(json.dumps({"wall": w, "cpu": c, "n": len(lines)}))
"""

CHILDREN = {
    "orjson": _READ + r"""
import json, orjson
def run():
    loads = orjson.loads
    for raw in lines:
        loads(raw)
""",
    "feed": _READ + r"""
import json
from bybitmon.core.monitor import Monitor
def run():
    feed = Monitor("linear").feed
    ns = 0
    for raw in lines:
        ns += 1_000_000
        feed(ns, raw)
""",
    "cryptofeed": _READ + r"""
import asyncio, json
sys.path.insert(0, sys.argv[3])
from throughput import Cryptofeed, Dataset
syms = sorted({"BTCUSDT", "ETHUSDT", "SOLUSDT"})
topics = [f"orderbook.50.{s}" for s in syms] + [f"publicTrade.{s}" for s in syms]
impl = Cryptofeed(syms)
ds = Dataset("x", "linear", [], 1, topics)
feed, conn = impl.make(ds)
def run():
    async def go():
        handler = feed.message_handler
        ns = 0.0
        for raw in lines:
            ns += 0.001
            await handler(raw, conn, ns)
    asyncio.run(go())
""",
}


def _child(kind: str, path: Path, python: str, pure: bool, in_process: bool) -> tuple[float, dict | None]:
    """Wall seconds of the whole process, and the in-process loop's {"wall", "cpu"} seconds if asked."""
    env = {k: v for k, v in os.environ.items() if k != "BYBITMON_PURE"}
    if pure:
        env["BYBITMON_PURE"] = "1"
    if python != sys.executable:  # the peers' Python imports bench/throughput.py, which imports bybitmon
        env["PYTHONPATH"] = str(HERE.parent)
    if kind == "replay":
        cmd = [python, "-m", "bybitmon", "replay", str(path), "--json", "--speed", "max"]
    else:
        code = CHILDREN[kind] + (_TIMED if in_process else "\nrun()\n")
        cmd = [python, "-c", code, "-", str(path), str(HERE)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if in_process else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd="/")
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{kind} failed ({proc.returncode}): {err.decode()[-2000:]}")
    inner = json.loads(out.decode().strip().splitlines()[-1]) if in_process else None
    return wall, inner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=500_000)
    ap.add_argument("--symbols", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peer-python", default=None, help="a Python with cryptofeed installed (skipped without)")
    ap.add_argument("--feed", action="store_true", help="in-process loops instead of whole processes")
    args = ap.parse_args()
    rec = sim_recording_in_subprocess(n_frames=args.frames, symbols=sim_symbols(args.symbols))
    ndjson = rec.with_suffix(".ndjson")
    if not ndjson.exists():
        with open(rec, "rb") as f, open(ndjson, "wb") as out:
            for line in f:
                out.write(line.partition(b"\t")[2])
    n = sum(1 for _ in open(ndjson, "rb"))
    check = subprocess.run([sys.executable, "-c", "import bybitmon.core as c; print(c.implementation())"],
                           capture_output=True, text=True, cwd="/").stdout.strip()
    print(machine_line())
    print(f"capture: {ndjson} ({n:,} frames, {args.symbols} symbols, orderbook.50 + publicTrade); "
          f"bybitmon core without BYBITMON_PURE: {check}")
    if os.path.exists("/proc/loadavg"):
        print("load average at start:", open("/proc/loadavg").read().split()[:3])
    runs = [("bybitmon compiled", "feed" if args.feed else "replay", sys.executable, False),
            ("bybitmon pure", "feed" if args.feed else "replay", sys.executable, True),
            ("orjson.loads floor", "orjson", sys.executable, False)]
    if args.peer_python:
        runs.append(("cryptofeed handler", "cryptofeed", args.peer_python, False))
    res: dict[str, list[tuple[float, float]]] = {r[0]: [] for r in runs}
    for r in range(args.rounds):
        order = runs[r % len(runs):] + runs[: r % len(runs)]
        for name, kind, python, pure in order:
            c0 = os.times()
            wall, inner = _child(kind, ndjson, python, pure, args.feed)
            c1 = os.times()
            cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
            if inner is not None:
                wall, cpu = inner["wall"], inner["cpu"]
            res[name].append((n / wall, n / cpu))
            print(f"  round {r + 1}: {name}: {n / wall:,.0f} frames/s wall, {n / cpu:,.0f} CPU", file=sys.stderr,
                  flush=True)
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    after = subprocess.run([sys.executable, "-c", "import bybitmon.core as c; print(c.implementation())"],
                           capture_output=True, text=True, cwd="/").stdout.strip()
    if after != check:
        raise SystemExit(f"the core changed during the run ({check} -> {after}): the numbers are void")
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in res.items()}
    floor = med["orjson.loads floor"]
    cf = med.get("cryptofeed handler")
    rows = []
    for name, v in res.items():
        m = med[name]
        rows.append((name, f"{max(x[0] for x in v):,.0f}", f"{m[0]:,.0f}", f"{max(x[1] for x in v):,.0f}",
                     f"{m[1]:,.0f}", f"{m[1] / floor[1]:.3f}", f"{m[1] / cf[1]:.2f}" if cf else "-",
                     f"{m[0] / floor[0]:.3f}", f"{m[0] / cf[0]:.2f}" if cf else "-"))
    what = "in-process loop" if args.feed else "whole process"
    print(f"\n{what}, frames/s, {args.rounds} rounds (x = ratio of medians in this run)\n")
    print_table(("", "wall best", "wall median", "CPU best", "CPU median", "CPU x floor", "CPU x cryptofeed",
                 "wall x floor", "wall x cryptofeed"), rows)


if __name__ == "__main__":
    main()
