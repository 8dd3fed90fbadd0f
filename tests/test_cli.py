from __future__ import annotations

import gzip
import subprocess
import sys

import orjson
import pytest

from bybitmon.core.monitor import Monitor

from paths import fixture_lines, fixture_path

BYBITMON = [sys.executable, "-m", "bybitmon"]
# Two-symbol linear and one-symbol spot captures: Bybit's live frames (optional, from
# BYBITMON_REAL_CAPTURES) and `bybitmon serve --simulate` recorded (tests/data).
LINEAR = ["cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "sim_linear_BTCUSDT_ETHUSDT.ndjson"]
SPOT = ["cryptofeed_spot_BTCUSDT.ndjson", "sim_spot_BTCUSDT.ndjson"]


def run(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*BYBITMON, *args], capture_output=True, timeout=timeout, input=input)


def final_snapshots(stdout: bytes) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for line in stdout.splitlines():
        snap = orjson.loads(line)
        out[snap["symbol"]] = snap
    return out


@pytest.mark.parametrize("name,category", [
    ("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "linear"),
    ("cryptofeed_spot_BTCUSDT.ndjson", "spot"),
    ("nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson", "linear"),
    ("sim_linear_BTCUSDT_ETHUSDT.ndjson", "linear"),
    ("sim_spot_BTCUSDT.ndjson", "spot"),
])
def test_replay_json_final_snapshots_equal_the_pipeline(name, category):
    """The CLI's last line per symbol is the Monitor's snapshot after the whole file."""
    p = run("replay", str(fixture_path(name)), "--category", category, "--json")
    assert p.returncode == 0, p.stderr
    got = final_snapshots(p.stdout)
    m = Monitor(category)
    for raw in fixture_lines(name):
        m.feed(0, raw.rstrip(b"\r"))
    m.finish()
    assert sorted(got) == m.symbols
    for s in m.symbols:
        assert got[s] == orjson.loads(orjson.dumps(m.snapshot(s)))


@pytest.mark.parametrize("name,interval_s,lo,hi", [
    ("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", 5, 8, 11),  # ~43 s of data
    ("sim_linear_BTCUSDT_ETHUSDT.ndjson", 2, 7, 10),  # ~15 s of data
])
def test_replay_json_emits_on_the_pipeline_clock_interval(name, interval_s, lo, hi):
    p = run("replay", str(fixture_path(name)), "--json", "--interval", f"{interval_s}s")
    snaps = [orjson.loads(l) for l in p.stdout.splitlines()]
    ts = sorted({s["ts"] for s in snaps})
    # one emission per boundary crossed, plus the final one
    assert lo <= len(ts) <= hi
    assert all(b - a >= 0.8 * interval_s * 1000 for a, b in zip(ts[:-2], ts[1:-1]))


@pytest.mark.parametrize("name", LINEAR)
def test_replay_twice_is_byte_identical(name):
    f = str(fixture_path(name))
    a, b = run("replay", f, "--json"), run("replay", f, "--json")
    assert a.stdout == b.stdout and a.stdout


def test_simulated_replay_is_deterministic_and_labelled():
    a = run("replay", "--simulate", "--duration", "5s", "--speed", "max", "--json", "--seed", "3")
    b = run("replay", "--simulate", "--duration", "5s", "--speed", "max", "--json", "--seed", "3")
    assert a.returncode == 0 and a.stdout == b.stdout
    snaps = final_snapshots(a.stdout)
    assert set(snaps) == {"BTCUSDT", "ETHUSDT"}
    assert all(s["book"]["ready"] for s in snaps.values())
    table = run("replay", "--simulate", "--duration", "3s", "--speed", "max")
    assert b"SIMULATED" in table.stdout and b"BTCUSDT" in table.stdout


@pytest.mark.parametrize("name", LINEAR)
def test_bad_lines_are_skipped_counted_and_reported(tmp_path, name):
    lines = fixture_lines(name)
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b"\n".join(lines[:100] + [b'{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1,"data":{"b":"x"}}', b"{not json"] + lines[100:]) + b"\n")
    p = run("replay", str(bad), "--json")
    assert p.returncode == 0
    snaps = final_snapshots(p.stdout)
    assert snaps["BTCUSDT"]["health"]["bad_frames"] == 2
    assert b"2 bad frames skipped" in p.stderr


@pytest.mark.parametrize("name", SPOT)
def test_gzip_capture_replays_like_the_plain_one(tmp_path, name):
    src = fixture_path(name)
    gz = tmp_path / "spot.ndjson.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    a = run("replay", str(src), "--json", "--category", "spot")
    b = run("replay", str(gz), "--json", "--category", "spot")
    assert a.stdout == b.stdout and a.stdout


@pytest.mark.parametrize("args", [
    ["replay", "/nonexistent/file.ndjson"],
    ["replay", "--simulate", "--speed", "fast"],
    ["replay", "--simulate", "--window", "soon"],
    ["replay", "--simulate", "--category", "futures"],
    ["replay", "--simulate", "--bps", "-5"],
    ["replay", "--simulate", "--symbols", ""],
    ["replay", "--simulate", "--duration", "0s"],
    ["replay"],
    ["replay", "--no-such-option"],
    ["watch"],
    ["watch", "BTCUSDT", "--sort", "nonsense"],
    ["watch", "BTCUSDT", "--url", "http://example"],
    ["watch", "BTCUSDT", "--depth", "7"],
    ["record", "BTCUSDT"],
    ["serve"],
    ["serve", "--simulate", "--speed", "0"],
])
def test_bad_arguments_give_one_line_and_nonzero_exit(args):
    p = run(*args)
    assert p.returncode != 0
    err = p.stderr.decode().strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:"), err
    assert "Traceback" not in err


def test_directory_and_garbage_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 10)
    for target in (str(tmp_path), str(junk)):
        p = run("replay", target)
        assert p.returncode != 0
        assert len(p.stderr.decode().strip().splitlines()) == 1 and b"Traceback" not in p.stderr
