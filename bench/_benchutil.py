"""Shared helpers of the benchmark scripts (not a test module; no timed assertions).

The scripts run as ``python bench/X.py`` so this directory is on ``sys.path``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import platform
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

REPO = Path(__file__).resolve().parents[1]
# The real captures: BYBITMON_REAL_CAPTURES as for the tests, else ../shared beside the checkout.
FIXTURES = Path(os.environ.get("BYBITMON_REAL_CAPTURES")
                or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "bybit-real")
CACHE_DIR = Path(tempfile.gettempdir()) / "bybitmon-bench"

# The simulator's known instruments first (realistic ticks and lots), then made-up ones. Every
# name ends in USDT so the peers' symbol tables can hold them.
_KNOWN = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]


def sim_symbols(n: int) -> list[str]:
    """``n`` simulator symbol names: the 5 known ones, then ``SIM00USDT``, ``SIM01USDT``..."""
    names = _KNOWN[:n]
    names += [f"SIM{i:02d}USDT" for i in range(n - len(names))]
    return names


def rss_mb() -> float:
    """Resident set size of this process, MB (VmRSS from /proc/self/status)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def machine_line() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        model = "?"
    return (f"python {platform.python_version()} ({sys.executable}), {os.cpu_count()} cpus, {model}")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call, after a full collection so earlier garbage is not billed."""
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> None:
    """A plain-text (markdown-compatible) table; ``align`` is one ``l``/``r`` per column."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w)
                                 for c, w, a in zip(cells, widths, align)) + " |"

    print(fmt(headers))
    print("|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
                         for w, a in zip(widths, align)) + "|")
    for r in rows:
        print(fmt(r))
    sys.stdout.flush()


def sim_recording(n_frames: int | None, symbols: Sequence[str], seed: int = 7, *, duration_ms: int | None = None,
                  depth: int = 50, trade_rate: float = 5.0, category: str = "linear",
                  quiet: bool = False) -> Path:
    """Path of a file holding a seeded simulated market, one ``ts_ms<TAB>frame`` line per frame:
    its first ``n_frames`` frames, or every frame up to ``duration_ms`` of simulated time.
    Generated once, then cached in the temp directory."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    length = f"{n_frames}f" if n_frames is not None else f"{duration_ms}ms"
    names = ",".join(symbols)
    tag = f"{len(symbols)}sym" if len(names) > 60 else names.replace(",", "_")
    key = f"sim-{category}-{tag}-{seed}-d{depth}-tr{trade_rate:g}-{length}.tsv"
    path = CACHE_DIR / key
    if path.exists():
        return path
    from bybitmon.sim.market import MarketSimulator

    if not quiet:
        what = f"{n_frames:,} frames" if n_frames is not None else f"{duration_ms / 60_000:g} simulated minutes"
        print(f"generating {what} of {len(symbols)} simulated symbols -> {path} ...", flush=True)
    t0 = time.perf_counter()
    sim = MarketSimulator(list(symbols), seed, category=category, depth=depth, trade_rate=trade_rate)
    frames = sim.frames(10**12) if n_frames is not None else sim.frames(duration_ms)
    tmp = path.with_suffix(".tmp")
    last, count = sim.start_ms, 0
    with open(tmp, "w") as f:
        for ts, text in islice(frames, n_frames):
            f.write(f"{ts}\t{text}\n")
            last = ts
            count += 1
    tmp.rename(path)
    if not quiet:
        print(f"  {count:,} frames in {time.perf_counter() - t0:.1f} s; covers {(last - sim.start_ms) / 60_000:.1f} "
              f"simulated minutes", flush=True)
    return path


def sim_recording_in_subprocess(**kwargs) -> Path:
    """:func:`sim_recording` run in a child process, so generating leaves no trace in this
    process's memory (for RSS measurements)."""
    arg = json.dumps(kwargs)
    out = subprocess.run([sys.executable, __file__, arg], check=True, stdout=subprocess.PIPE, text=True).stdout
    lines = out.strip().splitlines()
    for line in lines[:-1]:
        print(line, flush=True)
    return Path(lines[-1])


def read_recording(path: Path, recv_delay_ms: int = 5) -> list[tuple[int, str]]:
    """``[(recv_ns, frame_text)]`` of a cached recording; receive time = ts + ``recv_delay_ms``."""
    out = []
    append = out.append
    delay = recv_delay_ms * 1_000_000
    with open(path) as f:
        for line in f:
            ts, _, text = line.partition("\t")
            append((int(ts) * 1_000_000 + delay, text[:-1] if text.endswith("\n") else text))
    return out


def stream_recording(path: Path) -> Iterator[tuple[int, str]]:
    """``(ts_ms, frame_text)`` of a cached recording, read lazily (constant memory)."""
    with open(path) as f:
        for line in f:
            ts, _, text = line.partition("\t")
            yield int(ts), text.rstrip("\n")


if __name__ == "__main__":  # used by sim_recording_in_subprocess
    kw = json.loads(sys.argv[1])
    print(sim_recording(kw.pop("n_frames", None), kw.pop("symbols"), **kw))
