"""Recordings: an append-only, line-based writer and a reader for every input format we replay.

Recording format (version 1), one line each, UTF-8, ``\\n``-terminated:

    {"format":"bybitmon-recording","version":1,"category":...,"url":...,"symbols":[...],
     "depth":...,"start_ns":...,"bybitmon":"0.1.0"}
    <recv_ns> <conn> <raw frame text, byte-identical>

A frame whose text holds a line break (Bybit never sends one) is stored as
``<recv_ns> <conn> =<JSON string literal of the text>`` so it still fits one line losslessly.
Because every frame is one line, a crash leaves at most a torn last line, which the reader
reports and skips.

The reader also takes plain NDJSON captures (one raw frame per line, e.g. from any WS client)
and tardis.dev-style raw lines (``<ISO timestamp> <raw message>``); gzip and zstd compression
is recognised by magic bytes.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Iterator

import orjson

from ..errors import RecordingError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Frame", "ReadReport", "FrameReader", "RecordingWriter", "open_frames"]

FORMAT_NAME = "bybitmon-recording"
FORMAT_VERSION = 1
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True, slots=True)
class Frame:
    """One received frame: local receive time (ns; 0 when the source has none), connection, text."""

    recv_ns: int
    conn: str
    raw: str
    line_no: int


@dataclass(slots=True)
class ReadReport:
    """What the reader met: format, header, and lines it had to skip (line number, why)."""

    path: str
    format: str = "unknown"
    header: dict | None = None
    frames: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    torn_tail: bool = False


def _open_binary(path: str) -> tuple[BinaryIO, Iterator[bytes]]:
    """The open file and the decompressed chunks of ``path`` (gzip and zstd by magic bytes).

    Decompression is incremental on purpose: a file cut off by a crash yields everything up
    to the cut instead of failing at the end of the stream.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a directory, not a recording") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot open ({exc.strerror})") from None
    return f, _chunks(f, path)


def _chunks(f: BinaryIO, path: str, size: int = 1 << 16) -> Iterator[bytes]:
    with f:
        head = f.read(size)
        if head[:2] == _GZIP_MAGIC:
            new = lambda: zlib.decompressobj(wbits=31)  # noqa: E731
        elif head[:4] == _ZSTD_MAGIC:
            import zstandard
            dctx = zstandard.ZstdDecompressor()
            new = dctx.decompressobj
        else:
            while head:
                yield head
                head = f.read(size)
            return
        d = new()
        data = head
        while data:
            try:
                out = d.decompress(data)
            except Exception as exc:  # zlib.error / ZstdError: corrupt, not merely cut short
                raise RecordingError(f"{path}: corrupt compressed data ({exc})") from None
            if out:
                yield out
            rest = d.unused_data if d.eof else b""
            if rest:
                d = new()  # concatenated members / frames (appended or rotated files)
                data = rest
                continue
            data = f.read(size)


def _tardis_ts_ns(stamp: str) -> int:
    dt = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


class FrameReader:
    """Iterate the frames of a recording or capture; bad lines are skipped into ``report``.

    ``report.torn_tail`` is set when the last line has no line break and does not parse
    (a recorder killed mid-write).
    """

    def __init__(self, path: str) -> None:
        self.path = path
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
        path = self.path
        report = self.report
        self._file, chunks = _open_binary(path)
        fmt: str | None = None
        try:
            for line_no, line, complete in _lines(chunks, path):
                if not line.strip():
                    continue
                if fmt is None:
                    fmt = self._detect(line)
                    report.format = fmt
                    if fmt == "bybitmon":
                        continue
                frame = self._frame(fmt, line, line_no)
                if frame is None:
                    if not complete:
                        report.torn_tail = True
                        report.skipped.append((line_no, "torn last line (file cut off mid-write?)"))
                    else:
                        report.skipped.append((line_no, f"unreadable {fmt} line"))
                    continue
                if not complete and fmt != "ndjson" and not _complete_json(frame.raw):
                    report.torn_tail = True
                    report.skipped.append((line_no, "torn last line (file cut off mid-write?)"))
                    continue
                report.frames += 1
                yield frame
        finally:
            chunks.close()  # type: ignore[attr-defined]

    def _detect(self, line: str) -> str:
        if line.startswith('{"format":"bybitmon-recording"') or line.startswith('{"format": "bybitmon-recording"'):
            try:
                header = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise RecordingError(f"{self.path}:1: corrupt recording header") from None
            if header.get("version") != FORMAT_VERSION:
                raise RecordingError(
                    f"{self.path}:1: recording format version {header.get('version')!r} is not supported "
                    f"(this bybitmon reads version {FORMAT_VERSION})")
            self.report.header = header
            return "bybitmon"
        if line[:1] in ("{", "["):
            return "ndjson"
        if len(line) > 20 and line[:4].isdigit() and line[4] == "-" and " " in line:
            return "tardis"
        if line[:1].isdigit() and " " in line:
            return "bybitmon"  # a recording whose header line was lost
        raise RecordingError(f"{self.path}:1: not a recording, NDJSON capture or tardis raw file")

    @staticmethod
    def _frame(fmt: str, line: str, line_no: int) -> Frame | None:
        if fmt == "ndjson":
            return Frame(0, "", line, line_no)
        if fmt == "tardis":
            stamp, _, raw = line.partition(" ")
            try:
                return Frame(_tardis_ts_ns(stamp), "", raw, line_no)
            except ValueError:
                return None
        parts = line.split(" ", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        raw = parts[2]
        if raw.startswith("="):
            try:
                raw = orjson.loads(raw[1:])
            except orjson.JSONDecodeError:
                return None
            if not isinstance(raw, str):
                return None
        return Frame(int(parts[0]), parts[1], raw, line_no)


def _complete_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _lines(chunks: Iterator[bytes], path: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text without line ending, whether a line break ended it)."""
    line_no = 0
    pending = b""
    for chunk in chunks:
        if pending:
            chunk = pending + chunk
        parts = chunk.split(b"\n")
        pending = parts.pop()
        for bline in parts:
            line_no += 1
            yield line_no, _decode(bline.rstrip(b"\r")), True  # Bybit's history files use CRLF
    if pending:
        yield line_no + 1, _decode(pending.rstrip(b"\r")), False


def _decode(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("utf-8", "replace")


def open_frames(path: str) -> FrameReader:
    return FrameReader(path)


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
        if "\n" in raw or "\r" in raw:
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
