"""Recordings: an append-only, line-based writer and a reader for every input format we replay.

Recording format (version 1), one line each, UTF-8, ``\\n``-terminated:

    {"format":"bybitmon-recording","version":1,"category":...,"url":...,"symbols":[...],
     "depth":...,"start_ns":...,"bybitmon":"0.1.0"}
    <recv_ns> <conn> <raw frame text, byte-identical>

A frame whose text holds a line break (Bybit never sends one), or starts with ``=``, is stored
as ``<recv_ns> <conn> =<JSON string literal of the text>`` so it still fits one line losslessly.
Because every frame is one line, a crash leaves at most a torn last line, which the reader
reports and skips.

The reader also takes plain NDJSON captures (one raw frame per line, e.g. from any WS client)
and tardis.dev-style raw lines (``<ISO timestamp> <raw message>``); gzip and zstd compression
is recognised by magic bytes.

What the reader does with bad input (README, "What bybitmon does with bad input"):

- a line it cannot read is skipped and reported with its line number: ``ReadReport.skipped``
  keeps the first :data:`MAX_REPORTED_LINES`, ``ReadReport.skipped_total`` counts them all;
- a receive time must be 1-19 ASCII digits within int64 (``'²'.isdigit()`` is true in Python,
  so ``str.isdigit`` alone is not enough); a tardis timestamp must fall in 1970..2262;
- a line longer than :data:`MAX_LINE_BYTES` is skipped without being held in memory;
- one decompression step yields at most about :data:`MAX_INFLATE_BYTES` (a small file that
  inflates to gigabytes is read in bounded pieces, never at once);
- compressed data that ends mid-stream (a file cut off, or still being written) is reported;
- a path that is not a regular file (a FIFO, ``/dev/zero``, a socket) is refused unless the
  caller asked to follow it (``follow=True``): such inputs may never end.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import BinaryIO, Iterator

import orjson

from ..errors import printable
from ..errors import RecordingError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "MAX_LINE_BYTES", "MAX_REPORTED_LINES", "MAX_INFLATE_BYTES",
           "Frame", "ReadReport", "FrameReader", "RecordingWriter", "open_frames"]

FORMAT_NAME = "bybitmon-recording"
FORMAT_VERSION = 1
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: Longest line the reader accepts, in bytes: twice the client's 16 MiB frame limit, so any
#: frame the client takes fits even when stored ``=``-escaped. Longer lines are skipped.
MAX_LINE_BYTES = 32 * 2**20
#: Bad lines reported one by one (line number and reason); the rest are counted.
MAX_REPORTED_LINES = 100
#: The most one decompression step may return: gzip asks zlib for at most 1 MiB; zstd is fed
#: 256-byte slices of input, and each zstd block (at most 128 KiB out) needs 4 bytes or more.
MAX_INFLATE_BYTES = 8 * 2**20
_GZIP_STEP = 2**20
_ZSTD_SLICE = 256
_READ_SIZE = 1 << 16
_INT64_MAX = 2**63 - 1
_TORN = "torn last line (file cut off mid-write?)"
_PAIRS = object()  # a batch of _line_batches that is already (recv_ns, raw) pairs
_BLANKS = b"\n\r\t "
_BLANK_RUN = re.compile(rb"[\n\r\t ]*")


@dataclass(frozen=True, slots=True)
class Frame:
    """One received frame: local receive time (ns; 0 when the source has none), connection, text."""

    recv_ns: int
    conn: str
    raw: str
    line_no: int


@dataclass(slots=True)
class ReadReport:
    """What the reader met: format, header, and the lines it had to skip.

    ``skipped`` holds ``(line number, why)`` for the first :data:`MAX_REPORTED_LINES` skipped
    lines; ``skipped_total`` counts every one. ``torn_tail``: the last line was cut off;
    ``truncated``: compressed data ended mid-stream.
    """

    path: str
    format: str = "unknown"
    header: dict | None = None
    frames: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    skipped_total: int = 0
    torn_tail: bool = False
    truncated: bool = False

    def skip(self, line_no: int, why: str) -> None:
        """Count a skipped line; keep its number and reason while under the report's bound."""
        self.skipped_total += 1
        if len(self.skipped) < MAX_REPORTED_LINES:
            self.skipped.append((line_no, why))

    def warnings(self, limit: int = 20) -> list[str]:
        """One line per skipped line (at most ``limit``), then one line counting the rest."""
        out = [f"{self.path}:{n}: {why}; skipped" for n, why in self.skipped[:limit]]
        if self.skipped_total > len(out):
            out.append(f"{self.skipped_total - len(out)} more unreadable lines skipped in {self.path}")
        return out


def _open_binary(path: str, follow: bool = False) -> BinaryIO:
    """The open file ``path``, refused when it is not a regular file (unless ``follow``).

    The check runs on ``os.stat`` before opening: opening a FIFO blocks until a writer comes.
    """
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(st.st_mode) and not follow:
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file")
            raise RecordingError(f"{path}: is {kind}, not a regular file, and may never end "
                                 "(use --follow to read it as a stream)")
        return open(path, "rb")
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a directory, not a recording") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot open ({exc.strerror or exc})") from None


def _chunks(f: BinaryIO, path: str, report: ReadReport) -> Iterator[bytes]:
    """The decompressed bytes of ``f`` (gzip and zstd by magic bytes), in bounded pieces.

    Decompression is incremental on purpose: a file cut off by a crash yields everything up
    to the cut (and sets ``report.truncated``) instead of failing at the end of the stream.
    """
    with f:
        try:
            head = f.read(_READ_SIZE)
            if head[:2] == _GZIP_MAGIC:
                yield from _gunzip(f, head, path, report)
            elif head[:4] == _ZSTD_MAGIC:
                yield from _unzstd(f, head, path, report)
            else:
                while head:
                    yield head
                    head = f.read(_READ_SIZE)
        except OSError as exc:
            raise RecordingError(f"{path}: read failed ({exc.strerror or exc})") from None


def _gunzip(f: BinaryIO, data: bytes, path: str, report: ReadReport) -> Iterator[bytes]:
    d = zlib.decompressobj(wbits=31)
    while True:
        try:
            out = d.decompress(data, _GZIP_STEP)
        except zlib.error as exc:
            raise RecordingError(f"{path}: corrupt gzip data ({exc})") from None
        if out:
            yield out
        if d.unconsumed_tail:
            data = d.unconsumed_tail
            continue
        if d.eof:
            data = d.unused_data
            if data.strip(b"\0"):  # concatenated members (appended or rotated files)
                d = zlib.decompressobj(wbits=31)
                continue
            data = b""
        else:
            data = b""
        more = f.read(_READ_SIZE)
        if not more:
            if not d.eof:
                report.truncated = True
                rest = d.flush()  # whatever zlib still holds of a cut-off stream (< its 32 KiB window)
                if rest:
                    yield rest
            return
        if d.eof:
            d = zlib.decompressobj(wbits=31)
        data = more


def _unzstd(f: BinaryIO, data: bytes, path: str, report: ReadReport) -> Iterator[bytes]:
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    d = dctx.decompressobj()
    pending: list[bytes] = []
    size = 0
    started = False
    while data:
        i = 0
        while i < len(data):
            # Small input slices bound what one call can return (a zstd "bomb" expands each
            # 4-byte RLE block to 128 KiB).
            piece = data[i:i + _ZSTD_SLICE]
            i += _ZSTD_SLICE
            try:
                out = d.decompress(piece)
            except zstandard.ZstdError as exc:
                raise RecordingError(f"{path}: corrupt zstd data ({exc})") from None
            started = True
            if out:
                pending.append(out)
                size += len(out)
                if size >= _READ_SIZE:
                    yield b"".join(pending)
                    pending.clear()
                    size = 0
            if d.eof:
                rest = d.unused_data + data[i:]
                d = dctx.decompressobj()  # concatenated frames (appended or rotated files)
                started = False
                data, i = rest, 0
        data = f.read(_READ_SIZE)
    if pending:
        yield b"".join(pending)
    if started:
        report.truncated = True


def _tardis_ts_ns(stamp: str) -> int:
    if not stamp.isascii():
        raise ValueError("non-ASCII timestamp")
    dt = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    ns = int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    if not 0 <= ns <= _INT64_MAX:
        raise ValueError("timestamp outside 1970..2262")
    return ns


def _recv_ns(text: str) -> int | None:
    """A receive time: 1 to 19 ASCII digits, within int64; anything else is None."""
    if 0 < len(text) <= 19 and text.isascii() and text.isdigit():
        value = int(text)
        if value <= _INT64_MAX:
            return value
    return None


class FrameReader:
    """Iterate the frames of a recording or capture; bad lines are skipped into ``report``.

    Args:
        path: the file (gzip or zstd compressed, or not).
        follow: read a FIFO or device too (it may never end); refused otherwise.
        max_line_bytes: lines longer than this are skipped and reported.

    ``report.torn_tail`` is set when the last line has no line break and does not parse
    (a recorder killed mid-write).

    Raises:
        RecordingError: the file cannot be opened or read, is not a recording, or its
            compressed data is corrupt.
    """

    def __init__(self, path: str, *, follow: bool = False, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.path = path
        self.follow = follow
        self.max_line_bytes = max_line_bytes
        self.report = ReadReport(path)
        self._file: BinaryIO | None = None

    @property
    def total_bytes(self) -> int | None:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return None

    @property
    def bytes_read(self) -> int:
        """Bytes of the file (compressed, if it is) consumed so far: for a progress bar."""
        f = self._file
        try:
            return f.tell() if f is not None and not f.closed else (self.total_bytes or 0)
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[Frame]:
        return self._records(True)  # type: ignore[return-value]

    def pairs(self) -> Iterator[tuple[int, str]]:
        """``(recv_ns, raw)`` of every frame, as :meth:`__iter__` reads them (same checks, same
        ``report``) but without a :class:`Frame` per line: what replay feeds the Monitor.

        They come a batch of lines at a time, chained in C: a batch whose lines are all the
        usual line of the format becomes its list of pairs at once, without a step of this
        generator per line. ``report.frames`` counts a batch's frames when it is read."""
        return chain.from_iterable(self._records(False))  # type: ignore[arg-type]

    def _records(self, frames: bool) -> Iterator[Frame | list[tuple[int, str]]]:
        """The one reading loop: :class:`Frame` objects when ``frames``, else lists of
        ``(recv_ns, raw)`` (a batch's, or one line's).

        Lines come a chunk's worth at a time (:func:`_line_batches`), so the per-line work is
        this loop only; the common line of each format takes a few string operations here, and
        anything unusual goes through :meth:`_frame`, the one definition of a readable line.
        """
        path = self.path
        report = self.report
        self._file = _open_binary(path, self.follow)
        chunks = _chunks(self._file, path, report)
        fmt: str | None = None
        line_no = 0
        cap = self.max_line_bytes
        make = self._frame
        fast: list = [None]  # _line_batches' line loop in C, once the format is known
        try:
            for line_no, lines, complete in _line_batches(chunks, cap, fast):
                if complete is _PAIRS:  # already the pairs of the format's usual lines
                    line_no += len(lines)
                    report.frames += len(lines)
                    yield lines
                    continue
                if not frames and complete:
                    usual = _usual_pairs(fmt, lines)
                    if usual is not None:
                        line_no += len(lines)
                        report.frames += len(usual)
                        yield usual
                        continue
                for line in lines:
                    line_no += 1
                    if line is None:
                        report.skip(line_no, f"line longer than {cap:,} bytes")
                        continue
                    if fmt == "bybitmon" and complete:
                        parts = _usual_recording_line(line)
                        if parts is not None:
                            report.frames += 1
                            yield Frame(parts[0], parts[1], parts[2], line_no) if frames else [(parts[0], parts[2])]
                            continue
                    elif fmt == "ndjson" and complete and line[:1] == "{":
                        report.frames += 1
                        yield Frame(0, "", line, line_no) if frames else [(0, line)]
                        continue
                    if not line.strip():
                        continue
                    if fmt is None:
                        fmt = self._detect(line, line_no)
                        report.format = fmt
                        if not frames:
                            fast[0] = _FAST_PAIRS.get(fmt)
                        if fmt == "bybitmon":
                            continue
                    frame = make(fmt, line, line_no)
                    if frame is None:
                        if not complete:
                            report.torn_tail = True
                            report.skip(line_no, _TORN)
                        else:
                            report.skip(line_no, f"unreadable {fmt} line")
                        continue
                    if not complete and fmt != "ndjson" and not _complete_json(frame.raw):
                        report.torn_tail = True
                        report.skip(line_no, _TORN)
                        continue
                    report.frames += 1
                    yield frame if frames else [(frame.recv_ns, frame.raw)]
            if report.truncated:
                report.skip(line_no + 1, "torn compressed data: it ends mid-stream (file cut off mid-write?)")
        finally:
            chunks.close()  # type: ignore[attr-defined]

    def _detect(self, line: str, line_no: int) -> str:
        if line.startswith('{"format":"bybitmon-recording"') or line.startswith('{"format": "bybitmon-recording"'):
            try:
                header = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise RecordingError(f"{self.path}:{line_no}: corrupt recording header") from None
            if header.get("version") != FORMAT_VERSION:
                raise RecordingError(
                    f"{self.path}:{line_no}: recording format version {printable(repr(header.get('version')), 40)} "
                    f"is not supported (this bybitmon reads version {FORMAT_VERSION})")
            self.report.header = header
            return "bybitmon"
        if line[:1] in ("{", "["):
            return "ndjson"
        if len(line) > 20 and line[:4].isascii() and line[:4].isdigit() and line[4] == "-" and " " in line:
            return "tardis"
        if line[:1].isascii() and line[:1].isdigit() and " " in line:
            return "bybitmon"  # a recording whose header line was lost
        raise RecordingError(f"{self.path}:{line_no}: not a recording, NDJSON capture or tardis raw file")

    @staticmethod
    def _frame(fmt: str, line: str, line_no: int) -> Frame | None:
        if fmt == "ndjson":
            return Frame(0, "", line, line_no)
        if fmt == "tardis":
            stamp, _, raw = line.partition(" ")
            try:
                return Frame(_tardis_ts_ns(stamp), "", raw, line_no)
            except (ValueError, OverflowError, OSError):
                return None
        parts = line.split(" ", 2)
        if len(parts) != 3:
            return None
        recv_ns = _recv_ns(parts[0])
        if recv_ns is None:
            return None
        raw = parts[2]
        if raw.startswith("="):
            try:
                raw = orjson.loads(raw[1:])
            except orjson.JSONDecodeError:
                return None
            if not isinstance(raw, str):
                return None
        return Frame(recv_ns, parts[1], raw, line_no)


def _complete_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _lines(chunks: Iterator[bytes], max_line_bytes: int) -> Iterator[tuple[int, str | None, bool]]:
    """(line number, text without its line ending or None when over-long, whether a line
    break ended it), one line at a time (see :func:`_line_batches`; blank lines may be left out)."""
    for base, lines, complete in _line_batches(chunks, max_line_bytes):
        for line in lines:
            base += 1
            yield base, line, complete


def _line_batches(chunks: Iterator[bytes], max_line_bytes: int,
                  fast: list | None = None) -> Iterator[tuple[int, list, bool | object]]:
    """The lines of ``chunks`` in batches: (number of the line before the batch's first, the
    lines' texts without their line endings, None for an over-long one, whether a line break
    ended them). A batch's lines are consecutive; blank lines may be left out (a batch then
    starts after them). Linear in the input: a line's pieces are joined once, when it ends;
    an over-long line's pieces are dropped as soon as it passes ``max_line_bytes``; the lines
    inside one chunk are decoded and split in one go.

    When ``fast[0]`` holds one of ``_FAST_PAIRS`` (the caller sets it once the format is known),
    the lines inside a chunk come as the ``(recv_ns, raw)`` pairs it makes of them, the batch's
    third item ``_PAIRS``, when it takes them all; else as above."""
    line_no = 0
    pending: list[bytes] = []
    pending_len = 0
    too_long = False
    for chunk in chunks:
        nl = chunk.find(b"\n")
        if nl < 0:
            if not too_long:
                pending_len += len(chunk)
                if pending_len > max_line_bytes:
                    too_long = True
                    pending.clear()
                else:
                    pending.append(chunk)
            continue
        # The line in progress ends at the first line break of this chunk.
        base = line_no
        line_no += 1
        first: str | None
        if too_long or pending_len + nl > max_line_bytes:
            first = None
        elif pending:
            pending.append(chunk[:nl])
            first = _decode(b"".join(pending).rstrip(b"\r"))  # Bybit's history files use CRLF
        else:
            first = _decode(chunk[:nl].rstrip(b"\r"))
        pending.clear()
        pending_len = 0
        too_long = False
        last = chunk.rfind(b"\n")
        pairs = fast[0](chunk, nl + 1, last, max_line_bytes) if last > nl and fast and fast[0] else None
        if pairs is not None:
            yield base, [first], True
            yield line_no, pairs, _PAIRS
            line_no += len(pairs)
        elif last > nl:
            n_breaks = chunk.count(b"\n", nl + 1, last + 1)
            if n_breaks * 8 > last - nl and not chunk[nl + 1:last + 1].translate(None, _BLANKS):
                # Only blank lines (a stream inflating to newlines): counted, not yielded.
                yield base, [first], True
                line_no += n_breaks
            elif n_breaks * 8 > last - nl:
                # Mostly blank lines: runs of them are skipped in C, not yielded one by one.
                yield base, [first], True
                pos = nl + 1
                while True:
                    first_ch = _BLANK_RUN.match(chunk, pos, last + 1).end()  # type: ignore[union-attr]
                    if first_ch > last:
                        line_no += chunk.count(b"\n", pos, last + 1)
                        break
                    start = chunk.rfind(b"\n", pos, first_ch) + 1 or pos
                    line_no += chunk.count(b"\n", pos, start) + 1
                    end = chunk.find(b"\n", first_ch)
                    if end - start > max_line_bytes:
                        yield line_no - 1, [None], True
                    else:
                        yield line_no - 1, [_decode(chunk[start:end].rstrip(b"\r"))], True
                    pos = end + 1
            else:
                mid = chunk[nl + 1:last]
                lines: list[str | None]
                if len(mid) <= max_line_bytes:
                    # No line in here can pass the cap: decode and split the lot at once (a
                    # line break is never part of a multi-byte character, so this equals
                    # decoding line by line).
                    try:
                        text = mid.decode("utf-8")
                    except UnicodeDecodeError:
                        lines = [_decode(b.rstrip(b"\r")) for b in mid.split(b"\n")]
                    else:
                        lines = text.split("\n")  # type: ignore[assignment]
                        if "\r" in text:
                            lines = [ln.rstrip("\r") for ln in lines]  # type: ignore[union-attr]
                else:
                    lines = [None if len(b) > max_line_bytes else _decode(b.rstrip(b"\r"))
                             for b in mid.split(b"\n")]
                lines.insert(0, first)
                yield base, lines, True
                line_no += n_breaks
        else:
            yield base, [first], True
        tail = chunk[last + 1:]
        if tail:
            pending_len = len(tail)
            if pending_len > max_line_bytes:
                too_long = True
            else:
                pending.append(tail)
    if too_long:
        yield line_no, [None], False
    elif pending:
        yield line_no, [_decode(b"".join(pending).rstrip(b"\r"))], False


def _usual_recording_line(line: str) -> tuple[int, str, str] | None:
    """(recv_ns, topic, raw) of the usual recording line, checked as :meth:`FrameReader._frame`
    checks it (the receive time: 1-19 ASCII digits within int64); None for anything else."""
    parts = line.split(" ", 2)
    if len(parts) == 3:
        stamp = parts[0]
        raw = parts[2]
        if 0 < len(stamp) <= 19 and stamp.isascii() and stamp.isdigit() and raw[:1] != "=":
            recv_ns = int(stamp)
            if recv_ns <= _INT64_MAX:
                return recv_ns, parts[1], raw
    return None


def _usual_pairs(fmt: str | None, lines: list[str | None]) -> list[tuple[int, str]] | None:
    """The ``(recv_ns, raw)`` pairs of a batch of complete lines when every one is the usual line
    of ``fmt`` (an NDJSON object; a recording line), as the per-line loop would read them; None
    when any is not (the batch then goes line by line)."""
    if fmt == "ndjson":
        usual = [(0, line) for line in lines if line and line[0] == "{"]
        return usual if len(usual) == len(lines) else None
    if fmt == "bybitmon":
        pairs = []
        for line in lines:
            parts = None if line is None else _usual_recording_line(line)
            if parts is None:
                return None
            pairs.append((parts[0], parts[2]))
        return pairs
    return None


def _decode(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("utf-8", "replace")


def open_frames(path: str, *, follow: bool = False) -> FrameReader:
    return FrameReader(path, follow=follow)


class RecordingWriter:
    """Append-only writer: a header line, then one line per frame, flushed every ``flush_s``.

    Compressed when the path ends in ``.gz`` (stdlib gzip) or ``.zst`` (zstandard); each flush
    ends a compressed block so a crash loses at most the last flush interval.

    Raises:
        RecordingError: the path cannot be written, or the disk is full (never silently dropped).
    """

    def __init__(self, path: str, *, header: dict, flush_s: float = 1.0) -> None:
        self.path = path
        self.flush_s = flush_s
        self.frames = 0
        self._last_flush_ns = 0
        self._closed = False
        try:
            self._raw = open(path, "wb")
        except OSError as exc:
            raise RecordingError(f"{path}: cannot write ({exc.strerror})") from None
        if path.endswith(".gz"):
            self._out: BinaryIO = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)  # type: ignore[assignment]
            self._zstd = None
        elif path.endswith(".zst"):
            import zstandard
            self._zstd = zstandard.ZstdCompressor(level=3).stream_writer(self._raw, closefd=False)
            self._out = self._zstd  # type: ignore[assignment]
        else:
            self._out = self._raw
            self._zstd = None
        full_header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **header}
        self._write(orjson.dumps(full_header) + b"\n")
        self.flush()

    def write(self, recv_ns: int, conn: str, raw: str | bytes) -> None:
        """Append one frame exactly as received."""
        if isinstance(raw, (bytes, bytearray)):
            raw = bytes(raw).decode("utf-8", "surrogateescape")
        if "\n" in raw or "\r" in raw or raw.startswith("="):
            text = "=" + orjson.dumps(raw).decode()
        else:
            text = raw
        self._write(f"{recv_ns} {conn or '-'} {text}\n".encode("utf-8", "surrogateescape"))
        self.frames += 1
        if recv_ns - self._last_flush_ns >= self.flush_s * 1e9:
            self.flush()
            self._last_flush_ns = recv_ns

    def flush_if_due(self, now_ns: int) -> None:
        """Flush when the last flush is ``flush_s`` old, even if no frame arrived since (a
        quiet market must not leave frames sitting in a buffer)."""
        if self.frames and now_ns - self._last_flush_ns >= self.flush_s * 1e9:
            self.flush()
            self._last_flush_ns = now_ns

    def _write(self, data: bytes) -> None:
        try:
            self._out.write(data)
        except OSError as exc:
            raise RecordingError(f"{self.path}: write failed ({exc.strerror or exc}); recording stopped") from None

    def flush(self) -> None:
        """Push everything written so far to the OS (a compressed block is ended)."""
        try:
            if self._zstd is not None:
                import zstandard
                self._zstd.flush(zstandard.FLUSH_BLOCK)
            else:
                self._out.flush()
            if self._out is not self._raw:
                self._raw.flush()
        except OSError as exc:
            raise RecordingError(f"{self.path}: write failed ({exc.strerror or exc}); recording stopped") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            try:
                self.flush()
                if self._out is not self._raw:
                    self._out.close()
            finally:
                self._raw.close()
        except OSError as exc:
            raise RecordingError(f"{self.path}: close failed ({exc.strerror or exc})") from None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fast_pairs() -> dict:
    """The compiled reader's line loops by format (``_fast.ndjson_pairs``, ``_fast.recording_pairs``)
    when the compiled core runs, else none; their reference is the line loop of
    :func:`_line_batches` and :func:`_usual_pairs`."""
    from ..core import implementation

    if implementation() != "compiled":
        return {}
    try:
        from ..core._fast import ndjson_pairs, recording_pairs
    except ImportError:
        return {}
    return {"ndjson": ndjson_pairs, "bybitmon": recording_pairs}


_FAST_PAIRS = _fast_pairs()
