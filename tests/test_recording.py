from __future__ import annotations

import os

import orjson
import pytest

from bybitmon.errors import RecordingError
from bybitmon.transport.recording import FrameReader, RecordingWriter

from paths import fixture_lines

HEADER = {"category": "linear", "url": "ws://127.0.0.1:1/v5/public/linear", "symbols": ["BTCUSDT"],
          "depth": 50, "start_ns": 1, "bybitmon": "test"}


def frames_of(path) -> list:
    return [(f.recv_ns, f.conn, f.raw) for f in FrameReader(str(path))]


@pytest.mark.parametrize("name", ["cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "sim_linear_BTCUSDT_ETHUSDT.ndjson"])
@pytest.mark.parametrize("suffix", [".ndjson", ".ndjson.gz", ".ndjson.zst"])
def test_recording_round_trip_is_byte_identical(tmp_path, suffix, name):
    lines = [l.decode() for l in fixture_lines(name)]
    path = tmp_path / f"rec{suffix}"
    with RecordingWriter(str(path), header=HEADER) as w:
        for i, raw in enumerate(lines):
            w.write(1_000 + i, "linear#1", raw)
    reader = FrameReader(str(path))
    got = [(f.recv_ns, f.conn, f.raw) for f in reader]
    assert got == [(1_000 + i, "linear#1", raw) for i, raw in enumerate(lines)]
    assert reader.report.format == "bybitmon" and reader.report.header["symbols"] == ["BTCUSDT"]
    assert reader.report.header["format"] == "bybitmon-recording" and not reader.report.skipped


def test_frame_with_line_break_is_kept_losslessly(tmp_path):
    path = tmp_path / "rec.ndjson"
    odd = '{"topic":"x",\n"ts":1}\r'
    with RecordingWriter(str(path), header=HEADER) as w:
        w.write(5, "c", odd)
        w.write(6, "c", "{}")
    assert frames_of(path) == [(5, "c", odd), (6, "c", "{}")]


def test_torn_last_line_is_reported_and_skipped(tmp_path):
    path = tmp_path / "rec.ndjson"
    with RecordingWriter(str(path), header=HEADER) as w:
        w.write(1, "c", '{"topic":"a","ts":1}')
        w.write(2, "c", '{"topic":"b","ts":2}')
    data = path.read_bytes()
    path.write_bytes(data[:-8])  # cut mid-frame, no final newline
    reader = FrameReader(str(path))
    assert [f.raw for f in reader] == ['{"topic":"a","ts":1}']
    assert reader.report.torn_tail and reader.report.skipped[0][0] == 3


def test_corrupt_line_in_the_middle_is_skipped_with_its_line_number(tmp_path):
    path = tmp_path / "rec.ndjson"
    with RecordingWriter(str(path), header=HEADER) as w:
        w.write(1, "c", '{"ts":1}')
    with open(path, "ab") as f:
        f.write(b"garbage line\n")
        f.write(b'7 c {"ts":7}\n')
    reader = FrameReader(str(path))
    assert [f.recv_ns for f in reader] == [1, 7]
    assert reader.report.skipped == [(3, "unreadable bybitmon line")]


def test_tardis_raw_lines_are_read_with_their_timestamps(tmp_path):
    path = tmp_path / "bybit.txt"
    path.write_text('2024-12-01T00:00:00.123456Z {"topic":"a","ts":1}\n2024-12-01T00:00:01.000000Z {"ts":2}\n')
    got = frames_of(path)
    assert got[0] == (1733011200123456000, "", '{"topic":"a","ts":1}')
    assert got[1][0] == 1733011201000000000


def test_crlf_capture_lines_lose_only_the_line_ending():
    from paths import fixture_path

    raw = [l.rstrip(b"\r").decode() for l in fixture_path("nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson").read_bytes().splitlines()]
    got = [f.raw for f in FrameReader(str(fixture_path("nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson")))]
    assert got == raw and len(got) == 50


def test_unsupported_version_and_missing_file_are_clear_errors(tmp_path):
    path = tmp_path / "future.ndjson"
    path.write_text(orjson.dumps({"format": "bybitmon-recording", "version": 99}).decode() + "\n")
    with pytest.raises(RecordingError, match="version 99"):
        list(FrameReader(str(path)))
    with pytest.raises(RecordingError, match="no such file"):
        list(FrameReader(str(tmp_path / "nope")))


def test_unwritable_path_is_a_recording_error(tmp_path):
    with pytest.raises(RecordingError, match="cannot write"):
        RecordingWriter(str(tmp_path / "no" / "such" / "dir.ndjson"), header=HEADER)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_is_a_recording_error_not_a_silent_drop():
    with pytest.raises(RecordingError, match="write failed"):
        w = RecordingWriter("/dev/full", header=HEADER, flush_s=0)
        for i in range(10_000):
            w.write(i, "c", '{"topic":"x"}')
        w.close()


@pytest.mark.parametrize("suffix", [".ndjson", ".ndjson.gz", ".ndjson.zst"])
def test_every_flushed_frame_survives_a_cut_anywhere_after_the_flush(tmp_path, suffix):
    """A crash leaves the flushed prefix plus some torn bytes: the reader returns every
    flushed frame, in order, byte-identical, and reports the tail instead of failing."""
    path = tmp_path / f"rec{suffix}"
    w = RecordingWriter(str(path), header=HEADER, flush_s=3600)
    frames = [f'{{"topic":"publicTrade.X","ts":{i},"data":[]}}' for i in range(300)]
    for i, raw in enumerate(frames[:200]):
        w.write(i, "c", raw)
    w.flush()
    flushed = path.stat().st_size
    for i, raw in enumerate(frames[200:], 200):
        w.write(i, "c", raw)
    w.flush()
    full = path.read_bytes()
    w.close()
    for cut in sorted({flushed, flushed + 1, flushed + 7, (flushed + len(full)) // 2, len(full) - 1}):
        torn = tmp_path / f"torn{cut}{suffix}"
        torn.write_bytes(full[:cut])
        got = [f.raw for f in FrameReader(str(torn))]
        assert got[:200] == frames[:200], cut
        assert got == frames[: len(got)], cut
