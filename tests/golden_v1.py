"""Recorded version-1 snapshot output: the replays behind tests/data/v1_*.

``v1_lines`` feeds frames through a Monitor and snapshots every symbol every ``every_ms`` of
pipeline clock and at the end, as ``replay --json`` does, then one symbol that never appeared;
the bytes are ``Snapshot.to_json()``. The expected files were written by
``python tests/golden_v1.py`` before the snapshot became typed, so they pin today's v1 bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Iterable

import orjson

from bybitmon.core.monitor import Monitor
from bybitmon.sim import MarketSimulator

DATA = Path(__file__).resolve().parent / "data"
SIM_FILE = DATA / "v1_sim_snapshots.ndjson.gz"
DIGESTS_FILE = DATA / "v1_fixture_digests.json"
FIXTURE_CASES = (
    ("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "linear", 500),
    ("cryptofeed_spot_BTCUSDT.ndjson", "spot", 500),
    ("nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson", "linear", 200),
)


# Fields added to the v1 snapshot after the recording (additive: every recorded key keeps its
# value and place). ``strip_added`` removes them, so what remains must be the recorded bytes.
ADDED = {"trades": ("heat", "heat_volume"), "health": ("clock_jumps", "overflow")}


def strip_added(line: bytes) -> bytes:
    d = orjson.loads(line)
    for section, keys in ADDED.items():
        for key in keys:
            d[section].pop(key, None)
    return orjson.dumps(d)


def _dump(snap) -> bytes:
    return snap.to_json() if hasattr(snap, "to_json") else orjson.dumps(snap)


def v1_lines(frames: Iterable[tuple[int, bytes | str]], category: str, every_ms: int,
             **monitor_kw) -> list[bytes]:
    m = Monitor(category, **monitor_kw)
    out: list[bytes] = []
    next_ms = None
    for recv_ns, raw in frames:
        m.feed(recv_ns, raw)
        now = m.now_ms
        if now is None:
            continue
        if next_ms is None:
            next_ms = (now // every_ms + 1) * every_ms
        elif now >= next_ms:
            out.extend(_dump(m.snapshot(s)) for s in m.symbols)
            next_ms = (now // every_ms + 1) * every_ms
    m.finish()
    out.extend(_dump(m.snapshot(s)) for s in m.symbols)
    out.append(_dump(m.snapshot("NEVERSEEN")))  # last: before the change, it created state
    return out


def sim_frames() -> list[tuple[int, str]]:
    sim = MarketSimulator(["BTCUSDT", "ETHUSDT", "SOLUSDT"], seed=7, trade_rate=8.0, plant_every_s=4.0)
    return [(ts * 1_000_000 + 3_000_000, raw) for ts, raw in sim.frames(40_000)]


def sim_lines() -> list[bytes]:
    return v1_lines(sim_frames(), "linear", 250, window_ms=10_000, density_list_max=5)


def fixture_digest(path: Path, category: str, every_ms: int, strip: bool = False) -> str:
    lines = [ln.rstrip(b"\r") for ln in path.read_bytes().splitlines() if ln.strip()]
    got = v1_lines(((0, ln) for ln in lines), category, every_ms)
    if strip:
        got = [strip_added(x) for x in got]
    return hashlib.sha256(b"\n".join(got)).hexdigest()


if __name__ == "__main__":  # records the expected files (run once, before a change)
    import os

    captures = Path(os.environ["BYBITMON_REAL_CAPTURES"])
    DATA.mkdir(exist_ok=True)
    SIM_FILE.write_bytes(gzip.compress(b"\n".join(sim_lines()) + b"\n", mtime=0))
    digests = {name: fixture_digest(captures / name if (captures / name).exists() else DATA / name, cat, every)
               for name, cat, every in FIXTURE_CASES}
    DIGESTS_FILE.write_text(json.dumps(digests, indent=1) + "\n")
