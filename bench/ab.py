"""A/B: the same frames through two source trees of bybitmon, in separate processes, interleaved.

Used to show that a change of layout (or a compiled core) costs nothing measurable: each round
runs tree A then tree B (order alternating), each in a fresh interpreter, over the same simulated
recording; the table gives the best and the median of each and the ratio B/A.

Run (tree A: a checkout of an earlier commit; tree B: this checkout):
    git worktree add /tmp/bybitmon-before f46164c
    python bench/ab.py --a /tmp/bybitmon-before --b . --rounds 5

Two measurements per round and tree:
  * ``feed``: ``Monitor.feed`` in-process over the recording held in memory (frames/s);
  * ``replay``: the whole command ``python -m bybitmon replay FILE --json --speed max`` (frames/s
    of wall time, output to /dev/null).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _benchutil import machine_line, print_table, sim_recording_in_subprocess, sim_symbols

_FEED = r"""
import sys, time, gc
try:
    from bybitmon.core.monitor import Monitor
except ImportError:
    from bybitmon.monitor import Monitor
path = sys.argv[1]
frames = []
with open(path, "rb") as f:
    for line in f:
        ts, _, raw = line.partition(b"\t")
        frames.append((int(ts) * 1_000_000 + 5_000_000, raw.rstrip(b"\n")))
gc.collect()
m = Monitor("linear")
t0 = time.perf_counter()
feed = m.feed
for recv_ns, raw in frames:
    feed(recv_ns, raw)
dt = time.perf_counter() - t0
print(len(frames) / dt)
"""


def _env(tree: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree.resolve())
    return env


def run_feed(tree: Path, rec: Path) -> float:
    out = subprocess.run([sys.executable, "-c", _FEED, str(rec)], env=_env(tree), capture_output=True,
                         text=True, check=True, cwd="/")
    return float(out.stdout.strip())


def run_replay(tree: Path, ndjson: Path, n_frames: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bybitmon", "replay", str(ndjson), "--json", "--speed", "max"],
                   env=_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd="/")
    return n_frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, type=Path, help="source tree A (holds bybitmon/)")
    ap.add_argument("--b", required=True, type=Path, help="source tree B (holds bybitmon/)")
    ap.add_argument("--frames", type=int, default=300_000)
    ap.add_argument("--symbols", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rec = sim_recording_in_subprocess(n_frames=args.frames, symbols=sim_symbols(args.symbols))
    # `replay` reads a plain NDJSON capture (one raw frame per line) of the same frames.
    ndjson = rec.with_suffix(".ndjson")
    n = 0
    with open(rec, "rb") as f, open(ndjson, "wb") as out:
        for line in f:
            out.write(line.partition(b"\t")[2])
            n += 1
    print(machine_line())
    print(f"recording: {rec} ({n:,} frames, {args.symbols} symbols); A={args.a}  B={args.b}")
    res: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        order = [("A", args.a), ("B", args.b)] if r % 2 == 0 else [("B", args.b), ("A", args.a)]
        for name, tree in order:
            res.setdefault(("feed", name), []).append(run_feed(tree, rec))
            res.setdefault(("replay", name), []).append(run_replay(tree, ndjson, n))
    rows = []
    for what in ("feed", "replay"):
        a, b = res[(what, "A")], res[(what, "B")]
        rows.append((what, f"{max(a):,.0f}", f"{statistics.median(a):,.0f}", f"{max(b):,.0f}",
                     f"{statistics.median(b):,.0f}", f"{max(b) / max(a):.3f}",
                     f"{statistics.median(b) / statistics.median(a):.3f}"))
    print_table(("frames/s", "A best", "A median", "B best", "B median", "B/A best", "B/A median"), rows)


if __name__ == "__main__":
    main()
