"""A user's files survive every command: an existing file and every input come out
byte-identical unless ``--force`` was given; outputs are checked before any input is read or
any server is contacted."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from paths import TIMEOUT_FACTOR, fixture_path

BM = [sys.executable, "-m", "bybitmon"]
REAL = "cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson"  # optional: BYBITMON_REAL_CAPTURES
SIM = "sim_linear_BTCUSDT_ETHUSDT.ndjson"  # `serve --simulate` capture in tests/data
PRECIOUS = b"my precious notes\n" * 100
UNREACHABLE = "ws://127.0.0.1:9"


def bm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*BM, *args], capture_output=True, text=True, timeout=timeout * TIMEOUT_FACTOR)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


@pytest.fixture
def precious(tmp_path) -> Path:
    f = tmp_path / "precious.ndjson"
    f.write_bytes(PRECIOUS)
    return f


def unique_trades(path: Path) -> int:
    """Trades in a capture, a repeated (symbol, id) once (the live capture: 79)."""
    ids = set()
    for line in path.read_bytes().splitlines():
        msg = orjson.loads(line)
        if str(msg.get("topic", "")).startswith("publicTrade."):
            ids.update((t["s"], t["i"]) for t in msg["data"])
    return len(ids)


@pytest.fixture(params=[REAL, SIM])
def capture(tmp_path, request) -> Path:
    f = tmp_path / "capture.ndjson"
    f.write_bytes(fixture_path(request.param).read_bytes())
    return f


@pytest.fixture(scope="module")
def sim_url():
    p = subprocess.Popen([*BM, "serve", "--simulate", "--port", "0", "--symbols", "BTCUSDT"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.search(r"(ws://127\.0\.0\.1:\d+)", p.stdout.readline())  # type: ignore[union-attr]
    assert m
    yield m.group(1)
    p.kill()
    p.wait(10)


# -- record and watch --record ------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [["record", "BTCUSDT", "-o"], ["watch", "BTCUSDT", "--json", "--record"]])
def test_existing_file_is_refused_before_connecting(cmd, precious):
    p = bm(*cmd, str(precious), "--url", UNREACHABLE, "--duration", "10s")
    assert p.returncode == 2
    assert one_error_line(p) == f"error: {cmd[-1]} {precious} already exists; use --force to overwrite it"
    assert precious.read_bytes() == PRECIOUS


def test_record_force_replaces_the_file(precious, sim_url):
    p = bm("record", "BTCUSDT", "-o", str(precious), "--url", sim_url, "--duration", "2s", "--force")
    assert p.returncode == 0, p.stderr
    data = precious.read_bytes()
    assert data.startswith(b'{"format":"bybitmon-recording"') and PRECIOUS not in data


@pytest.mark.parametrize("target,why", [
    ("{tmp}", "is a directory"),
    ("{tmp}/no/such/dir/r.ndjson", "does not exist"),
])
def test_record_to_a_directory_or_a_missing_one_is_one_line(tmp_path, target, why):
    p = bm("record", "BTCUSDT", "-o", target.format(tmp=tmp_path), "--url", UNREACHABLE, "--duration", "10s")
    assert p.returncode == 2
    assert why in one_error_line(p)


# -- export --------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--to", "--book", "--densities"])
def test_export_onto_its_own_input_is_refused(capture, option):
    before = digest(capture)
    p = bm("export", str(capture), option, str(capture))
    assert p.returncode == 2
    assert one_error_line(p) == f"error: {option} {capture} is the input file; write somewhere else"
    assert digest(capture) == before


def test_export_onto_its_input_through_another_name_is_refused(capture, tmp_path):
    link = tmp_path / "link.ndjson"
    link.symlink_to(capture)
    before = digest(capture)
    p = bm("export", str(capture), "--to", str(link), "--force")
    assert p.returncode == 2
    assert "is the input file" in one_error_line(p)
    assert digest(capture) == before


def test_export_never_overwrites_without_force(capture, precious):
    before = digest(capture)
    p = bm("export", str(capture), "--to", str(precious))
    assert p.returncode == 2
    assert one_error_line(p) == f"error: --to {precious} already exists; use --force to overwrite it"
    assert precious.read_bytes() == PRECIOUS and digest(capture) == before
    p = bm("export", str(capture), "--to", str(precious), "--force")
    assert p.returncode == 0, p.stderr
    assert pq.read_table(precious).num_rows == unique_trades(capture) > 0 and digest(capture) == before
    assert sorted(x.name for x in precious.parent.iterdir()) == ["capture.ndjson", "precious.ndjson"]


@pytest.mark.parametrize("target,why", [
    ("{tmp}", "is a directory"),
    ("{tmp}/no/such/dir/t.parquet", "does not exist"),
    ("/dev/null", "is not a regular file"),
])
def test_export_outputs_are_checked_before_the_input_is_read(tmp_path, target, why):
    """The input does not even exist: the error is about the output, so it came first."""
    p = bm("export", str(tmp_path / "missing-input.ndjson"), "--to", target.format(tmp=tmp_path), "--force")
    assert p.returncode == 2
    line = one_error_line(p)
    assert line.startswith("error: --to ") and why in line, line


def test_export_outputs_naming_one_file_are_refused(capture, tmp_path):
    out = tmp_path / "same.parquet"
    p = bm("export", str(capture), "--to", str(out), "--book", str(out))
    assert p.returncode == 2
    assert "must be different files" in one_error_line(p)
    assert not out.exists()


# -- replay -------------------------------------------------------------------------------------

def test_replay_alerts_out_onto_its_input_is_refused(capture):
    before = digest(capture)
    p = bm("replay", str(capture), "--alert", "tpm>0", "--alerts-out", str(capture))
    assert p.returncode == 2
    assert "is the input file" in one_error_line(p)
    assert digest(capture) == before


def test_replay_alerts_out_appends_and_keeps_what_was_there(capture, precious):
    before = digest(capture)
    p = bm("replay", str(capture), "--alert", "tpm>0", "--alerts-out", str(precious))
    assert p.returncode == 0, p.stderr
    data = precious.read_bytes()
    assert data.startswith(PRECIOUS) and len(data) > len(PRECIOUS)
    assert b'"type":"alert"' in data[len(PRECIOUS):]
    assert digest(capture) == before


# -- a non-regular input: the hint fits the command (only replay has --follow) ----------------

def _special(tmp_path: Path, kind: str) -> str:
    import os

    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        return str(path)
    if not os.path.exists("/dev/zero"):
        pytest.skip("needs /dev/zero")
    return "/dev/zero"


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("command,hint", [
    (["export", "{path}", "--to", "{out}"], "export reads a file to its end: save the stream to a file first"),
    (["serve", "--from", "{path}"], "serve --from reads a recording or capture file: save the stream to a file first"),
    (["replay", "{path}", "--json"], "use --follow to read it as a stream"),
])
def test_non_regular_input_is_refused_with_a_hint_that_fits_the_command(tmp_path, kind, command, hint):
    path = _special(tmp_path, kind)
    out = tmp_path / "t.parquet"
    p = bm(*[a.format(path=path, out=out) for a in command], timeout=20)
    line = one_error_line(p)
    assert p.returncode == 2
    what = "a FIFO" if kind == "fifo" else "a device"
    assert line == f"error: {path}: is {what}, not a regular file, and may never end ({hint})"
    assert not out.exists()
