"""`bybitmon record` against `bybitmon serve`: what is recorded, crash safety (kill -9), disk
full, and record -> replay equivalence."""

from __future__ import annotations

import os
import random
import re
import resource
import signal
import subprocess
import sys
import time

import orjson
import pytest

from bybitmon.transport.recording import FrameReader

from paths import TIMEOUT_FACTOR, fixture_path

BM = [sys.executable, "-m", "bybitmon"]


def serve(*args: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([*BM, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    m = re.search(r"(ws://127\.0\.0\.1:\d+)", p.stdout.readline())
    assert m, p.stderr.read() if p.poll() is not None else "no URL"
    return p, m.group(1)


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def book_u_runs(frames) -> dict[str, list[int]]:
    us: dict[str, list[int]] = {}
    for f in frames:
        if f.raw.startswith('{"topic":"orderbook'):
            msg = orjson.loads(f.raw)
            us.setdefault(msg["topic"], []).append(msg["data"]["u"])
    return us


def test_record_writes_header_and_verbatim_frames_then_replays(tmp_path):
    srv, url = serve("--simulate", "--symbols", "BTCUSDT,ETHUSDT")
    out = tmp_path / "rec.ndjson.zst"
    try:
        p = subprocess.run([*BM, "record", "BTCUSDT", "ETHUSDT", "-o", str(out), "--url", url, "--duration", "2s"],
                           capture_output=True, text=True, timeout=30 * TIMEOUT_FACTOR)
    finally:
        stop(srv)
    assert p.returncode == 0, p.stderr
    reader = FrameReader(str(out))
    frames = list(reader)
    h = reader.report.header
    assert h["format"] == "bybitmon-recording" and h["version"] == 1 and h["category"] == "linear"
    assert h["symbols"] == ["BTCUSDT", "ETHUSDT"] and h["depth"] == 50 and h["url"].startswith(url)
    assert h["start_ns"] > 0 and "bybitmon" in h
    assert len(frames) > 50 and all(f.conn == "linear#1" for f in frames)
    assert [f.recv_ns for f in frames] == sorted(f.recv_ns for f in frames)
    assert any('"op":"subscribe"' in f.raw for f in frames)  # acks are recorded too
    for topic, us in book_u_runs(frames).items():
        assert us == list(range(us[0], us[0] + len(us))), topic  # nothing lost in the middle
    rp = subprocess.run([*BM, "replay", str(out), "--json"], capture_output=True, timeout=60)
    assert rp.returncode == 0
    snaps = {orjson.loads(l)["symbol"]: orjson.loads(l) for l in rp.stdout.splitlines()}
    assert snaps["BTCUSDT"]["book"]["ready"] and snaps["ETHUSDT"]["book"]["ready"]


def test_recording_a_served_capture_replays_to_the_same_final_metrics(tmp_path):
    """Record `serve --from X`, replay the recording: same final numbers as replaying X."""
    src = fixture_path("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson")
    srv, url = serve("--from", str(src), "--speed", "4")
    out = tmp_path / "rec.ndjson"
    try:
        p = subprocess.run([*BM, "record", "BTCUSDT", "ETHUSDT", "-o", str(out), "--url", url, "--depth", "200",
                            "--duration", "13s"], capture_output=True, text=True, timeout=60 * TIMEOUT_FACTOR)
    finally:
        stop(srv)
    assert p.returncode == 0, p.stderr

    def final(path: str) -> dict[str, dict]:
        r = subprocess.run([*BM, "replay", path, "--json", "--window", "10s"], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return {orjson.loads(l)["symbol"]: orjson.loads(l) for l in r.stdout.splitlines()}

    direct, recorded = final(str(src)), final(str(out))
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert recorded[sym]["ts"] == direct[sym]["ts"]
        assert recorded[sym]["book"] == direct[sym]["book"], sym
        # heat compares the last 10 s with a baseline reaching back 15 min, i.e. over every trade
        # since the input began; the recording starts when `record` subscribed, a moment after
        # the server began, so its baseline may hold a few trades fewer. Every windowed number
        # must match exactly.
        baseline_only = ("heat", "heat_volume")
        rec_t = {k: v for k, v in recorded[sym]["trades"].items() if k not in baseline_only}
        dir_t = {k: v for k, v in direct[sym]["trades"].items() if k not in baseline_only}
        assert rec_t == dir_t, sym
        assert all(k in recorded[sym]["trades"] for k in baseline_only)


@pytest.mark.parametrize("suffix", [".ndjson", ".ndjson.gz", ".ndjson.zst"])
def test_kill_9_loses_nothing_flushed(tmp_path, suffix):
    """SIGKILL the recorder at random moments (2 per format here; `-m soak` does 7 each)."""
    kill_and_check(tmp_path, suffix, kills=2)


@pytest.mark.soak
@pytest.mark.parametrize("suffix", [".ndjson", ".ndjson.gz", ".ndjson.zst"])
def test_kill_9_soak(tmp_path, suffix):
    kill_and_check(tmp_path, suffix, kills=7)


def kill_and_check(tmp_path, suffix: str, kills: int) -> None:
    """Every frame is intact and in order, the torn tail (if any) is reported, and at most
    the last flush interval (1 s) is lost."""
    srv, url = serve("--simulate", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT")
    rng = random.Random(suffix + str(kills))
    try:
        for run in range(kills):
            out = tmp_path / f"kill{run}{suffix}"
            rec = subprocess.Popen([*BM, "record", "BTCUSDT", "ETHUSDT", "SOLUSDT", "-o", str(out), "--url", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3.0 + rng.random() * 2.0)
            killed_ns = time.time_ns()
            os.kill(rec.pid, signal.SIGKILL)
            rec.wait(10)
            reader = FrameReader(str(out))
            frames = list(reader)
            assert reader.report.header is not None
            assert [s for s in reader.report.skipped if "torn" not in s[1]] == []
            assert len(frames) > 20, run
            for f in frames:
                orjson.loads(f.raw)  # byte-identical Bybit JSON, not a fragment
            for topic, us in book_u_runs(frames).items():
                assert us == list(range(us[0], us[0] + len(us))), topic
            assert killed_ns - frames[-1].recv_ns < 1.6e9 * TIMEOUT_FACTOR, "more than a flush interval lost"
    finally:
        stop(srv)


def test_disk_full_gives_one_clear_error_and_a_valid_file(tmp_path):
    srv, url = serve("--simulate", "--symbols", "BTCUSDT,ETHUSDT")
    out = tmp_path / "full.ndjson"
    limit = 300_000

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    try:
        p = subprocess.run([*BM, "record", "BTCUSDT", "ETHUSDT", "-o", str(out), "--url", url, "--duration", "30s"],
                           capture_output=True, text=True, timeout=60 * TIMEOUT_FACTOR, preexec_fn=small_disk)
    finally:
        stop(srv)
    assert p.returncode != 0
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "write failed" in err[0], p.stderr
    assert "Traceback" not in p.stderr
    frames = list(FrameReader(str(out)))
    assert len(frames) > 100
    for topic, us in book_u_runs(frames).items():
        assert us == list(range(us[0], us[0] + len(us)))


def test_recorder_without_a_server_warns_and_fails_at_the_end(tmp_path):
    out = tmp_path / "none.ndjson"
    p = subprocess.run([*BM, "record", "BTCUSDT", "-o", str(out), "--url", "ws://127.0.0.1:9", "--duration", "2s"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "warning" in p.stderr.lower()
    assert p.stderr.strip().splitlines()[-1].startswith("error: nothing was recorded")


def test_watch_records_and_alerts_while_printing_json(tmp_path):
    """`watch --json --record F --alert R --alerts-out A`: snapshots on stdout, every frame in F,
    alert events in A; the recording replays to the same final book."""
    srv, url = serve("--simulate", "--symbols", "BTCUSDT,ETHUSDT", "--speed", "3")
    rec, alerts = tmp_path / "w.ndjson.gz", tmp_path / "alerts.ndjson"
    try:
        p = subprocess.run([*BM, "watch", "BTCUSDT", "ETHUSDT", "--url", url, "--json", "--duration", "4s",
                            "--record", str(rec), "--alert", "tpm>0", "--alerts-out", str(alerts)],
                           capture_output=True, text=True, timeout=60 * TIMEOUT_FACTOR)
    finally:
        stop(srv)
    assert p.returncode == 0, p.stderr
    lines = [orjson.loads(l) for l in p.stdout.splitlines()]
    snaps = [l for l in lines if l["type"] == "snapshot"]
    assert {s["symbol"] for s in snaps} == {"BTCUSDT", "ETHUSDT"}
    fired = [orjson.loads(l) for l in alerts.read_text().splitlines()]
    assert {a["symbol"] for a in fired} == {"BTCUSDT", "ETHUSDT"}
    assert all(a["type"] == "alert" and a["rule"] == "tpm>0" and a["state"] == "firing" for a in fired)
    assert [l for l in lines if l["type"] == "alert"] == fired  # with --json they go to stdout too
    frames = list(FrameReader(str(rec)))
    assert len(frames) > 100
    r = subprocess.run([*BM, "replay", str(rec), "--json"], capture_output=True, timeout=60)
    final = {orjson.loads(l)["symbol"]: orjson.loads(l) for l in r.stdout.splitlines()}
    last_watch = {s["symbol"]: s for s in snaps}
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert final[sym]["book"] == last_watch[sym]["book"], sym
        assert final[sym]["trades"] == last_watch[sym]["trades"], sym
