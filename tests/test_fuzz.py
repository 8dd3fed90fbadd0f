"""Bad input never escapes as an exception: the parser, the pipeline and the file readers are
fed garbage (hypothesis), huge numbers, negative sizes, unknown topics and 10 MB lines."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bybitmon.core.events import BadFrame
from bybitmon.core.monitor import Monitor
from bybitmon.core.protocol import parse_frame
from bybitmon.transport.recording import FrameReader

from paths import fixture_lines, fixture_path

# Valid linear frames to mutate: a capture of `bybitmon serve --simulate` (in the repository) and
# Bybit's live stream as cryptofeed recorded it (optional: skipped without BYBITMON_REAL_CAPTURES).
LINEAR = ["sim_linear_BTCUSDT_ETHUSDT.ndjson", "cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson"]
SPOT = ["sim_spot_BTCUSDT.ndjson", "cryptofeed_spot_BTCUSDT.ndjson"]


@pytest.fixture(scope="module", params=LINEAR)
def frames(request) -> list[bytes]:
    """The first 300 frames of a linear capture (acks, book snapshot and deltas, trades)."""
    return fixture_lines(request.param)[:300]


def mutate(raw: bytes, data) -> bytes:
    """A real frame, cut, spliced or with a value replaced by something of the wrong type."""
    how = data.draw(st.sampled_from(["cut", "splice", "replace", "bytes"]))
    if how == "cut":
        return raw[: data.draw(st.integers(0, len(raw)))]
    if how == "splice":
        i = data.draw(st.integers(0, len(raw)))
        return raw[:i] + data.draw(st.binary(max_size=20)) + raw[i:]
    if how == "bytes":
        return data.draw(st.binary(max_size=300))
    msg = orjson.loads(raw)
    weird = data.draw(st.sampled_from([None, True, -1, 10**30, "x", [], {}, [["1"]], "-5", "1e400", "nan", 1.5]))
    target = data.draw(st.sampled_from(["ts", "type", "data", "topic", "u", "b", "a", "T", "v", "p", "S", "i", "seq"]))
    if target in msg:
        msg[target] = weird
    elif isinstance(msg.get("data"), dict) and target in msg["data"]:
        msg["data"][target] = weird
    elif isinstance(msg.get("data"), list) and msg["data"] and target in msg["data"][0]:
        msg["data"][0][target] = weird
    try:
        return orjson.dumps(msg)
    except TypeError:
        return raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_frames_never_raise_and_bad_ones_are_counted(frames, data):
    m = Monitor("linear")
    bad = 0
    for raw in frames[:60]:
        frame = mutate(raw, data) if data.draw(st.booleans()) else raw
        ev = parse_frame(frame, 0)
        bad += isinstance(ev, BadFrame)
        m.feed(0, frame)
        for s in m.symbols:
            m.snapshot(s)
    assert m.bad_frames == bad


def test_huge_numbers_negative_sizes_and_unknown_topics_are_handled():
    m = Monitor("linear")
    frames = [
        b'{"topic":"orderbook.50.X","type":"snapshot","ts":1,"data":{"b":[["1e308","1"]],"a":[["1e309","1"]],"u":1,"seq":1}}',
        b'{"topic":"orderbook.50.X","type":"snapshot","ts":1,"data":{"b":[["100","-1"]],"a":[],"u":1,"seq":1}}',
        b'{"topic":"orderbook.50.X","type":"snapshot","ts":1,"data":{"b":[],"a":[],"u":100000000000000000000000,"seq":1}}',
        b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"S":"Buy","v":"-3","p":"1","i":"a"}]}',
        b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"S":"Buy","v":"1","p":"0","i":"a"}]}',
        b'{"topic":"nonsense.topic.X","ts":5}',
        b'{"topic":"orderbook.rpi.X","type":"snapshot","ts":6,"data":{}}',
    ]
    for f in frames:
        m.feed(0, f)
    assert m.bad_frames == 5
    assert m.now_ms == 6


def test_ten_megabyte_line_is_one_bad_frame_not_a_crash(tmp_path, frames):
    path = tmp_path / "big.ndjson"
    huge = b'{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"b":[' + b'["1","1"],' * 1_000_000
    path.write_bytes(frames[0] + b"\n" + huge + b"\n" + frames[1] + b"\n")
    p = subprocess.run([sys.executable, "-m", "bybitmon", "replay", str(path), "--json"], capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert b"1 bad frames skipped" in p.stderr and b"Traceback" not in p.stderr


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from([b"\n", b"\r\n"]), st.booleans())
def test_file_reader_takes_any_bytes(tmp_path_factory, frames, data, eol, header):
    """Whatever a file holds, the reader yields frames or reports lines, or raises RecordingError
    (one clear message), never anything else; replay then exits 0 or 2 with one line."""
    from bybitmon.errors import RecordingError

    lines = data.draw(st.lists(st.one_of(st.binary(max_size=200), st.sampled_from(frames[:20])), max_size=30))
    path = tmp_path_factory.mktemp("fuzz") / "f.ndjson"
    body = eol.join(lines)
    if header:
        body = b'{"format":"bybitmon-recording","version":1}' + eol + body
    path.write_bytes(body)
    try:
        frames = list(FrameReader(str(path)))
    except RecordingError as exc:
        assert "\n" not in str(exc)
        return
    m = Monitor("linear")
    for f in frames:
        m.feed(f.recv_ns, f.raw)


@pytest.mark.parametrize("name", SPOT)
def test_replay_at_different_speeds_gives_identical_json(name):
    """Output is on the pipeline clock: pacing (here 2000x real time vs as fast as possible)
    changes nothing."""
    f = str(fixture_path(name))
    fast = subprocess.run([sys.executable, "-m", "bybitmon", "replay", f, "--json", "--category", "spot"],
                          capture_output=True, timeout=60)
    paced = subprocess.run([sys.executable, "-m", "bybitmon", "replay", f, "--json", "--category", "spot",
                            "--speed", "2000"], capture_output=True, timeout=60)
    assert fast.returncode == paced.returncode == 0
    assert fast.stdout == paced.stdout and fast.stdout
