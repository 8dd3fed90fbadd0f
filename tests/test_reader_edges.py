"""The recording reader against hostile files: odd receive times, huge lines, decompression
bombs, inputs that never end, truncated compressed streams, and many bad lines; and the
writer's escaping. Each case also goes through the real ``bybitmon replay`` where a user meets it."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from bybitmon.errors import RecordingError
from bybitmon.transport.recording import (MAX_INFLATE_BYTES, MAX_REPORTED_LINES, FrameReader,
                                          RecordingWriter, _lines)

from paths import TIMEOUT_FACTOR

HEADER = {"category": "linear", "symbols": ["BTCUSDT"], "depth": 50, "start_ns": 1, "bybitmon": "test"}
GOOD = '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1700000000000,"data":[]}'
HEAD_LINE = b'{"format":"bybitmon-recording","version":1}\n'


def read(path, **kw) -> tuple[list, FrameReader]:
    reader = FrameReader(str(path), **kw)
    return [(f.line_no, f.recv_ns, f.raw) for f in reader], reader


def replay(path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bybitmon", "replay", str(path), "--json", *args],
                          capture_output=True, timeout=timeout * TIMEOUT_FACTOR)


# -- receive times (issue 14, item 4) ---------------------------------------------------------

@pytest.mark.parametrize("stamp", ["²", "1²3", "٣٤٥", "１２３", "4" * 400, "5" * 5000,
                                   str(2**63), "99999999999999999999", "-5", "+5", "1_000", " 7"])
def test_receive_time_must_be_ascii_digits_within_int64(tmp_path, stamp):
    path = tmp_path / "rec.ndjson"
    path.write_bytes(HEAD_LINE + f"1 c {GOOD}\n{stamp} c {GOOD}\n3 c {GOOD}\n".encode())
    frames, reader = read(path)
    assert [(n, ns) for n, ns, _ in frames] == [(2, 1), (4, 3)]
    assert reader.report.skipped == [(3, "unreadable bybitmon line")]


def test_largest_int64_receive_time_is_accepted(tmp_path):
    path = tmp_path / "rec.ndjson"
    path.write_bytes(HEAD_LINE + f"{2**63 - 1} c {GOOD}\n".encode())
    assert read(path)[0] == [(2, 2**63 - 1, GOOD)]


@pytest.mark.parametrize("stamp", ["１９７０-01-01T00:00:00Z", "2263-01-01T00:00:00Z", "1969-12-31T23:59:59Z"])
def test_tardis_timestamp_outside_int64_ns_or_not_ascii_is_a_bad_line(tmp_path, stamp):
    path = tmp_path / "bybit.txt"
    path.write_text(f"2024-12-01T00:00:00.000001Z {GOOD}\n{stamp} {GOOD}\n")
    frames, reader = read(path)
    assert [n for n, _, _ in frames] == [1] and reader.report.skipped == [(2, "unreadable tardis line")]


def test_replay_reports_a_5000_digit_receive_time_as_a_bad_line(tmp_path):
    path = tmp_path / "rec.ndjson"
    path.write_bytes(HEAD_LINE + f"1 c {GOOD}\n{'5' * 5000} c {GOOD}\n²7 c {GOOD}\n".encode())
    p = replay(path)
    assert p.returncode == 0 and b"Traceback" not in p.stderr
    assert f"{path}:3: unreadable bybitmon line".encode() in p.stderr
    assert f"{path}:4: unreadable bybitmon line".encode() in p.stderr


# -- the writer's escaping (issue 14, item 12) ------------------------------------------------

@pytest.mark.parametrize("raw", ["=", "=abc", '="x"', '=""', "==", "=\n", '{"a":"="}'])
def test_frames_starting_with_equals_survive_a_round_trip(tmp_path, raw):
    path = tmp_path / "rec.ndjson"
    with RecordingWriter(str(path), header=HEADER) as w:
        w.write(5, "c", raw)
        w.write(6, "c", GOOD)
    assert [r for _, _, r in read(path)[0]] == [raw, GOOD]


# -- bad lines are all reported, boundedly (issue 14, item 12) --------------------------------

def test_every_bad_line_is_counted_and_the_first_ones_named_with_their_line_numbers(tmp_path):
    path = tmp_path / "rec.ndjson"
    body = [HEAD_LINE]
    bad = []
    for i in range(2, 2 + 3 * 250, 3):  # line i good, i+1 bad, i+2 good
        body += [f"{i} c {GOOD}\n".encode(), b"junk line\n", f"{i + 2} c {GOOD}\n".encode()]
        bad.append(i + 1)
    path.write_bytes(b"".join(body))
    frames, reader = read(path)
    rep = reader.report
    assert len(frames) == 500 and rep.skipped_total == 250
    assert rep.skipped == [(n, "unreadable bybitmon line") for n in bad[:MAX_REPORTED_LINES]]
    warnings = rep.warnings(20)
    assert warnings[:20] == [f"{path}:{n}: unreadable bybitmon line; skipped" for n in bad[:20]]
    assert warnings[20:] == [f"230 more unreadable lines skipped in {path}"]


def test_replay_names_bad_lines_in_the_middle_with_their_numbers(tmp_path):
    path = tmp_path / "rec.ndjson"
    path.write_bytes(HEAD_LINE + f"1 c {GOOD}\ngarbage\n2 c {GOOD}\nx y\n3 c {GOOD}\n".encode())
    p = replay(path)
    assert p.returncode == 0, p.stderr
    assert f"{path}:3: unreadable bybitmon line".encode() in p.stderr
    assert f"{path}:5: unreadable bybitmon line".encode() in p.stderr


# -- long lines (issue 14, item 5) ------------------------------------------------------------

def test_an_over_long_line_is_skipped_with_its_number_and_the_rest_is_read(tmp_path):
    path = tmp_path / "rec.ndjson"
    long = "9" * 5000
    path.write_bytes(HEAD_LINE + f"1 c {GOOD}\n2 c {long}\n3 c {GOOD}\n4 c {long}".encode())
    frames, reader = read(path, max_line_bytes=1000)
    assert [n for n, _, _ in frames] == [2, 4]
    assert reader.report.skipped == [(3, "line longer than 1,000 bytes"), (5, "line longer than 1,000 bytes")]


@pytest.mark.parametrize("chunking", ["one chunk", "split across chunks"])
def test_line_cap_applies_whether_a_line_spans_chunks_or_not(tmp_path, chunking):
    path = tmp_path / "cap.ndjson"
    size = 70_000 if chunking == "split across chunks" else 3000  # reads are 64 KiB
    lines = [f"{i} c " + "x" * (size if i % 2 else 10) for i in range(1, 9)]
    path.write_bytes(HEAD_LINE + "\n".join(lines).encode() + b"\n")
    frames, reader = read(path, max_line_bytes=size)
    assert [n for n, _, _ in frames] == [3, 5, 7, 9]
    assert reader.report.skipped == [(n, f"line longer than {size:,} bytes") for n in (2, 4, 6, 8)]


def test_a_30_mb_line_is_read_in_linear_time(tmp_path):
    """Joining a line's pieces once: the old ``pending + chunk`` took ~6 s for this line."""
    path = tmp_path / "big.ndjson"
    raw = '{"topic":"x","data":"' + "a" * (30 * 2**20) + '"}'
    path.write_bytes(HEAD_LINE + f"1 c {raw}\n2 c {GOOD}\n".encode())
    t0 = time.perf_counter()
    frames, _ = read(path)
    elapsed = time.perf_counter() - t0
    assert [(n, len(r)) for n, _, r in frames] == [(2, len(raw)), (3, len(GOOD))]
    assert elapsed < 2.0 * TIMEOUT_FACTOR, elapsed


def test_a_line_over_the_default_cap_is_skipped(tmp_path):
    path = tmp_path / "huge.ndjson"
    with open(path, "wb") as f:
        f.write(HEAD_LINE + b"1 c ")
        block = b"z" * 2**20
        for _ in range(33):
            f.write(block)
        f.write(f"\n2 c {GOOD}\n".encode())
    frames, reader = read(path)
    assert [n for n, _, _ in frames] == [3]
    assert reader.report.skipped == [(2, f"line longer than {32 * 2**20:,} bytes")]


_LINE_PARTS = [b"", b"a", b"  ", b"\r", b" x ", b"bcdefghij", b"\t\t\t\t\t\t\t", b"\xff"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_LINE_PARTS), max_size=4).map(b"".join), max_size=40),
       st.booleans(), st.lists(st.integers(1, 40), min_size=1, max_size=20), st.integers(1, 12))
def test_line_splitting_matches_a_plain_split_whatever_the_chunking(lines, final_break, cuts, cap):
    """Fast paths (blank runs, pieces across chunks, the cap) give what one ``split`` gives."""
    data = b"\n".join(lines) + (b"\n" if final_break and lines else b"")
    chunks, i, k = [], 0, 0
    while i < len(data):
        chunks.append(data[i:i + cuts[k % len(cuts)]])
        i += cuts[k % len(cuts)]
        k += 1
    parts = data.split(b"\n")
    tail = parts.pop()
    expect = [(n, None if len(p) > cap else p.rstrip(b"\r").decode("utf-8", "replace"), True)
              for n, p in enumerate(parts, 1)]
    if tail:
        expect.append((len(parts) + 1, None if len(tail) > cap else tail.rstrip(b"\r").decode("utf-8", "replace"), False))
    blank = {n for n, p in enumerate(parts + [tail], 1) if not p.strip(b"\n\r\t ")}
    got = [x for x in _lines(iter(chunks), cap) if x[0] not in blank]
    assert got == [x for x in expect if x[0] not in blank]


# -- decompression is bounded (issue 14, item 5) ----------------------------------------------

def _bomb(tmp_path, kind: str, newlines: int) -> str:
    body = HEAD_LINE + b"\n" * newlines + f"7 c {GOOD}\n".encode()
    path = tmp_path / f"bomb.ndjson.{kind}"
    if kind == "gz":
        path.write_bytes(gzip.compress(body, 9))
    else:
        path.write_bytes(zstandard.ZstdCompressor(level=19).compress(body))
    return str(path)


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_a_small_file_inflating_to_a_flood_of_newlines_is_read_in_bounded_memory(tmp_path, kind):
    n = 32 * 2**20
    path = _bomb(tmp_path, kind, n)
    assert os.path.getsize(path) < 300_000
    tracemalloc.start()
    try:
        frames, _ = read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert frames == [(n + 2, 7, GOOD)]
    assert peak < 4 * MAX_INFLATE_BYTES, peak


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_a_small_file_inflating_to_one_huge_line_is_skipped_in_bounded_memory(tmp_path, kind):
    body = HEAD_LINE + b"1 c " + b"q" * (16 * 2**20) + f"\n2 c {GOOD}\n".encode()
    path = tmp_path / f"line.ndjson.{kind}"
    path.write_bytes(gzip.compress(body, 9) if kind == "gz" else zstandard.ZstdCompressor(level=19).compress(body))
    tracemalloc.start()
    try:
        frames, reader = read(path, max_line_bytes=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [n for n, _, _ in frames] == [3]
    assert reader.report.skipped == [(2, "line longer than 1,048,576 bytes")]
    assert peak < 4 * MAX_INFLATE_BYTES, peak


# -- truncated compressed streams (issue 14, item 12) -----------------------------------------

@pytest.mark.parametrize("suffix", [".ndjson.gz", ".ndjson.zst"])
def test_a_compressed_recording_cut_at_a_flush_boundary_is_reported(tmp_path, suffix):
    """Cut exactly after a flush, every line is whole: only the compressed stream shows the cut."""
    path = tmp_path / f"rec{suffix}"
    w = RecordingWriter(str(path), header=HEADER, flush_s=3600)
    for i in range(50):
        w.write(i + 1, "c", GOOD)
    w.flush()
    cut = path.read_bytes()
    w.close()
    path.write_bytes(cut)
    frames, reader = read(path)
    assert len(frames) == 50
    assert reader.report.truncated
    assert reader.report.skipped == [(52, "torn compressed data: it ends mid-stream (file cut off mid-write?)")]
    p = replay(path)
    assert p.returncode == 0 and f"{path}:52: torn compressed data".encode() in p.stderr


@pytest.mark.parametrize("suffix", [".ndjson.gz", ".ndjson.zst"])
def test_a_complete_compressed_recording_with_an_appended_member_is_not_reported(tmp_path, suffix):
    path = tmp_path / f"rec{suffix}"
    with RecordingWriter(str(path), header=HEADER) as w:
        w.write(1, "c", GOOD)
    more = f"2 c {GOOD}\n".encode()
    more = gzip.compress(more) if suffix.endswith(".gz") else zstandard.ZstdCompressor().compress(more)
    with open(path, "ab") as f:  # frames appended as a second gzip member / zstd frame
        f.write(more)
    frames, reader = read(path)
    assert [ns for _, ns, _ in frames] == [1, 2]
    assert not reader.report.truncated and reader.report.skipped == []


# -- inputs that never end (issue 14, item 5) -------------------------------------------------

def _in_thread(fn, timeout: float = 5.0):
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout * TIMEOUT_FACTOR)
    assert not t.is_alive(), "the reader hung"
    return out


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_refused_at_once():
    out = _in_thread(lambda: list(FrameReader("/dev/zero")))
    assert isinstance(out.get("error"), RecordingError)
    assert str(out["error"]) == ("/dev/zero: is a device, not a regular file, and may never end "
                                 "(use --follow to read it as a stream)")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = _in_thread(lambda: list(FrameReader(str(fifo))))
    assert isinstance(out.get("error"), RecordingError) and "is a FIFO" in str(out["error"])


def test_a_fifo_is_read_to_its_end_when_followed(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as f:
            f.write(HEAD_LINE + f"1 c {GOOD}\n2 c {GOOD}\n".encode())

    threading.Thread(target=writer, daemon=True).start()
    out = _in_thread(lambda: [f.recv_ns for f in FrameReader(str(fifo), follow=True)])
    assert out.get("value") == [1, 2]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_replay_of_dev_zero_is_one_error_line_and_exit_2():
    p = replay("/dev/zero", timeout=20)
    assert p.returncode == 2
    assert p.stderr.decode().strip().splitlines() == [
        "error: /dev/zero: is a device, not a regular file, and may never end (use --follow to read it as a stream)"]


def test_replay_follow_reads_a_fifo_to_its_end(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "bybitmon", "replay", str(fifo), "--follow", "--json",
                             "--interval", "1ms"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, "wb") as f:
        for i in range(3):
            f.write(f"{i} c {GOOD.replace('1700000000000', str(1700000000000 + i))}\n".encode())
    out, err = proc.communicate(timeout=60 * TIMEOUT_FACTOR)
    assert proc.returncode == 0, err
    assert b'"symbol":"BTCUSDT"' in out


_LINE_KINDS = st.sampled_from(["good", "good", "good", "good", "blank", "junk", "stamp", "bigstamp", "pad"])


@settings(max_examples=60, deadline=None)
@given(kinds=st.lists(_LINE_KINDS, min_size=1, max_size=120), recording=st.booleans(),
       torn=st.booleans(), gz=st.booleans())
def test_pairs_read_what_frames_read(tmp_path_factory, kinds, recording, torn, gz):
    """replay reads ``pairs()``, whole batches of usual lines at a time; it must give exactly the
    (recv_ns, raw) of the frames ``iter(reader)`` gives, and the same report, whatever the mix
    of usual lines, blank and junk lines, odd receive times, 60 KB lines (batches of one chunk
    and of many), a torn last line, plain or gzip."""
    lines = []
    for i, kind in enumerate(kinds):
        for j in range(60 if kind == "good" else 1):  # runs of usual lines fill whole 64 KB chunks
            body = GOOD.replace("1700000000000", str(1700000000000 + 100 * i + j))
            if kind == "pad":
                body = GOOD.replace('"data":[]', '"data":[],"x":"' + "y" * 60_000 + '"')
            stamp = {"stamp": "12a", "bigstamp": "99999999999999999999"}.get(
                kind, str(1_700_000_000_000_000_000 + 100 * i + j))
            line = {"blank": "", "junk": "not json at all"}.get(kind, body)
            if recording and kind not in ("blank", "junk"):
                line = f"{stamp} publicTrade.BTCUSDT {line}"
            lines.append(line)
    text = "\n".join(lines) + ("" if torn else "\n")
    data = (HEAD_LINE if recording else b"") + text.encode()
    path = tmp_path_factory.mktemp("pairs") / ("f.ndjson.gz" if gz else "f.ndjson")
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        frames, by_frames = read(path)
    except RecordingError as exc:  # e.g. a first line that is junk: both must refuse it alike
        with pytest.raises(RecordingError, match=str(exc).split(":")[-1].strip()[:30] or None):
            list(FrameReader(str(path)).pairs())
        return
    by_pairs = FrameReader(str(path))
    assert list(by_pairs.pairs()) == [(ns, raw) for _, ns, raw in frames]
    a, b = by_frames.report, by_pairs.report
    assert (a.format, a.frames, a.skipped, a.skipped_total, a.torn_tail, a.truncated) == \
        (b.format, b.frames, b.skipped, b.skipped_total, b.torn_tail, b.truncated)
