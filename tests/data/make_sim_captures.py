"""Regenerate the simulator captures in this folder (see SOURCES.md).

Runs ``bybitmon serve --simulate`` on a free loopback port, records it with ``bybitmon record``
(the same commands a user would type) and turns each recording into the capture layout the tests
read: ``NAME.ndjson`` (one raw frame per line, as received) and ``NAME.recv_ts.txt`` (line N is
frame N's receive time in epoch seconds). Frames and times depend on the wall clock, so a rerun
gives different bytes with the same shape; tests must not pin numbers that only one run has.

    python tests/data/make_sim_captures.py          # from the repository root, package installed
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BM = [sys.executable, "-m", "bybitmon"]
SEED = "7"
# (output stem, category, symbols, recorded seconds)
CAPTURES = [
    ("sim_linear_BTCUSDT_ETHUSDT", "linear", ["BTCUSDT", "ETHUSDT"], 15),
    ("sim_spot_BTCUSDT", "spot", ["BTCUSDT"], 8),
]


def start_server() -> tuple[subprocess.Popen, str]:
    srv = subprocess.Popen([*BM, "serve", "--simulate", "--symbols", "BTCUSDT,ETHUSDT", "--seed", SEED,
                            "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert srv.stdout is not None
    for line in srv.stdout:
        found = re.search(r"ws://127\.0\.0\.1:\d+", line)
        if found:
            return srv, found.group(0)
    srv.kill()
    raise SystemExit("serve did not print its URL")


def convert(recording: Path, stem: str) -> int:
    """Recording lines ``<recv_ns> <connection> <frame>`` -> ``stem.ndjson`` + ``stem.recv_ts.txt``."""
    lines = recording.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header.get("format") == "bybitmon-recording", header
    frames, times = [], []
    for line in lines[1:]:
        recv_ns, _conn, raw = line.split(" ", 2)
        json.loads(raw)  # every frame is whole JSON
        frames.append(raw)
        times.append(f"{int(recv_ns) // 1_000_000_000}.{int(recv_ns) % 1_000_000_000:09d}")
    (HERE / f"{stem}.ndjson").write_text("".join(f + "\n" for f in frames), encoding="utf-8")
    (HERE / f"{stem}.recv_ts.txt").write_text("".join(t + "\n" for t in times), encoding="utf-8")
    return len(frames)


def main() -> None:
    srv, url = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for stem, category, symbols, seconds in CAPTURES:
                rec = Path(tmp) / f"{stem}.bybitmon.ndjson"
                subprocess.run([*BM, "record", *symbols, "-o", str(rec), "--category", category, "--depth", "50",
                                "--duration", f"{seconds}s", "--url", url], check=True)
                print(f"{stem}: {convert(rec, stem)} frames")
    finally:
        srv.terminate()
        srv.wait(10)


if __name__ == "__main__":
    main()
