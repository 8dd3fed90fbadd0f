"""Export a recording or capture to Parquet tables: trades, sampled book metrics, ended densities.

The file is replayed through the same :class:`~bybitmon.core.monitor.Monitor` as ``bybitmon replay``,
so every book and density number in the tables is the pipeline's own. Tables are written in
row groups as the file is read, so a long recording never has to fit in memory. pyarrow is an
optional dependency (``pip install 'bybitmon[export]'``), imported only when exporting.

Tables (times are exchange milliseconds):

- **trades**: ``ts`` (fill time T), ``symbol``, ``side`` (``Buy``/``Sell``, the taker), ``price``,
  ``size``, ``id``, ``recv_ns`` (local receive time; 0 when the source has none). Every trade
  once, in arrival order: an id seen again for the same symbol within ``DEDUPE_MS`` of the
  trades' clock is dropped.
- **book**: one row per symbol at the first frame whose pipeline clock reaches each ``every_ms``
  boundary, and a final row per symbol at the end of the input -- the same rows, at the same
  times, as ``bybitmon replay FILE --json --interval {every_ms}ms`` prints. ``ts`` is the
  snapshot's ``ts``; null means not known (book not ready, no sell volume).
- **densities**: every density that ended (``eaten``, ``pulled``, ``faded``), once, as the
  snapshots show it.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from typing import Any, Callable, TextIO

from ..core.snapshot import ENDED_STATES
from ..errors import UsageError, printable
from ..core.events import TradeBatch
from ..core.monitor import Monitor
from ..core.limits import CATEGORIES
from ..core.protocol import parse_frame
from ..transport.recording import FrameReader
from .emit import Every
from .files import check_input, check_outputs

__all__ = ["export_file", "DEDUPE_MS", "ROW_GROUP_ROWS", "TRADE_COLUMNS", "BOOK_COLUMNS", "DENSITY_COLUMNS"]

DEDUPE_MS = 600_000       # remember trade ids this long (exchange time) after their fill
ROW_GROUP_ROWS = 50_000   # rows buffered per table before a row group is written
_FORGET_ENDED_MS = 300_000

TRADE_COLUMNS = ("ts", "symbol", "side", "price", "size", "id", "recv_ns")
# The book table's snapshot fields, as (section, field) of core/snapshot.py's declaration (a
# test checks each exists there); the column is named by the field.
_BOOK_SOURCES = (("book", "ready"), ("book", "best_bid"), ("book", "best_ask"), ("book", "mid"),
                 ("book", "spread_bps"), ("book", "bid_depth"), ("book", "ask_depth"), ("book", "bid_notional"),
                 ("book", "ask_notional"), ("book", "imbalance"), ("trades", "tps"), ("trades", "tpm"),
                 ("trades", "volume_delta"), ("trades", "buy_sell_ratio"))
BOOK_COLUMNS = ("ts", "symbol", *(name for _, name in _BOOK_SOURCES))
DENSITY_COLUMNS = ("symbol", "side", "price", "size", "notional", "x_median", "since", "ended", "state")


def _schemas(pa: Any) -> dict[str, Any]:
    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    return {
        "trades": pa.schema([("ts", i64), ("symbol", s), ("side", s), ("price", f64), ("size", f64),
                             ("id", s), ("recv_ns", i64)]),
        "book": pa.schema([("ts", i64), ("symbol", s), ("ready", pa.bool_())]
                          + [(name, f64) for name in BOOK_COLUMNS[3:]]),
        "densities": pa.schema([("symbol", s), ("side", s), ("price", f64), ("size", f64), ("notional", f64),
                                ("x_median", f64), ("since", i64), ("ended", i64), ("state", s)]),
    }


class _Table:
    """Column buffers for one output file, flushed as row groups to a ``.part`` file."""

    def __init__(self, pa: Any, pq: Any, path: str, schema: Any, rows_per_group: int) -> None:
        self.pa, self.pq = pa, pq
        self.path = path
        # A fresh temporary name beside the output: an existing file (even a ``.part`` one) is
        # never written over until the finished table replaces ``path``.
        fd, self.part = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".part",
                                         dir=os.path.dirname(os.path.abspath(path)))
        os.close(fd)
        self.schema = schema
        self.names = schema.names
        self.rows_per_group = rows_per_group
        self.columns: list[list] = [[] for _ in self.names]
        self.appenders: list[Callable[[Any], None]] = [c.append for c in self.columns]
        self.buffered = 0
        self.rows = 0
        self.writer: Any = None

    def add(self, row: tuple) -> None:
        for append, value in zip(self.appenders, row):
            append(value)
        self.buffered += 1
        if self.buffered >= self.rows_per_group:
            self.flush()

    def flush(self) -> None:
        if self.writer is None:
            self.writer = self.pq.ParquetWriter(self.part, self.schema)
        if self.buffered:
            table = self.pa.Table.from_arrays(
                [self.pa.array(col, type=field.type) for col, field in zip(self.columns, self.schema)],
                schema=self.schema)
            self.writer.write_table(table)
            self.rows += self.buffered
            for col in self.columns:
                col.clear()
            self.buffered = 0

    def close(self) -> None:
        self.flush()  # opens the writer for an empty table, so the file still has its schema
        self.writer.close()
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(self.part, 0o666 & ~mask)  # as a file created in place would be
        os.replace(self.part, self.path)

    def abort(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # already failing: the .part file is removed either way
                pass
        try:
            os.unlink(self.part)
        except FileNotFoundError:
            pass


def export_file(path: str | os.PathLike, *, category: str = "linear", trades_out: str | os.PathLike | None = None,
                book_out: str | os.PathLike | None = None, densities_out: str | os.PathLike | None = None,
                every_ms: int = 100, window_ms: int = 60_000, bps: float = 50.0, density_x: float = 5.0,
                min_notional: float = 0.0, rows_per_group: int = ROW_GROUP_ROWS, force: bool = False,
                stderr: TextIO | None = None) -> dict[str, int]:
    """Replay ``path`` through the pipeline and write the requested tables as Parquet files.

    Args:
        path: a bybitmon recording, NDJSON capture or tardis raw file (``.gz``/``.zst`` too).
        category: the category the frames come from (frames do not carry it).
        trades_out, book_out, densities_out: output files; a table is written only when its
            path is given. Each file appears complete or not at all (written to ``.part``, then renamed).
        every_ms: book sampling interval on the pipeline clock, ms.
        window_ms, bps, density_x, min_notional: the Monitor's options, as ``replay`` takes them.
        rows_per_group: rows per Parquet row group (and the most rows held in memory per table).
        force: replace existing output files (without it an existing file is refused).
        stderr: where the input's bad lines are reported, as ``replay`` reports them: the first
            20 with their line numbers, then one line counting the rest; and the count of bad
            frames by reason (None: not reported).

    Returns:
        Rows written per requested table: ``{"trades": n, "book": n, "densities": n}``.

    Raises:
        UsageError: pyarrow is missing, no output was asked for, an option is out of range, or an
            output is the input, an existing file (without ``force``), a directory or in a
            missing directory -- all checked before the input is read.
        RecordingError: the input cannot be read.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("Parquet export needs pyarrow: pip install 'bybitmon[export]'") from None
    outputs = {name: os.fspath(out) for name, out in
               (("trades", trades_out), ("book", book_out), ("densities", densities_out)) if out is not None}
    if not outputs:
        raise UsageError("nothing to export: give a trades, book or densities output file")
    check_outputs([(f"--{'to' if name == 'trades' else name}", out) for name, out in outputs.items()],
                  inputs=[os.fspath(path)], force=force, replace=True)
    check_input(os.fspath(path), "export reads a file to its end: save the stream to a file first")
    if category not in CATEGORIES:
        raise UsageError(f"bad category {category!r}: one of {', '.join(CATEGORIES)}")
    for name, value in (("every_ms", every_ms), ("window_ms", window_ms), ("rows_per_group", rows_per_group)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise UsageError(f"bad {name} {value!r}: it must be a positive whole number")
    if not bps > 0:
        raise UsageError(f"bad bps {bps!r}: it must be positive")
    if not density_x > 0:
        raise UsageError(f"bad density_x {density_x!r}: it must be positive")

    schemas = _schemas(pa)
    tables = {name: _Table(pa, pq, out, schemas[name], rows_per_group) for name, out in outputs.items()}
    monitor = Monitor(category, window_ms, bps, density_x, min_notional)
    try:
        reader = _run(os.fspath(path), tables, monitor, every_ms)
        if stderr is not None:
            _report(reader, monitor, stderr)
        for table in tables.values():
            table.close()
    except BaseException:
        for table in tables.values():
            table.abort()
        raise
    return {name: table.rows for name, table in tables.items()}


def _report(reader: FrameReader, monitor: Monitor, stderr: TextIO) -> None:
    """The input's bad lines and bad frames, in ``replay``'s words."""
    for line in reader.report.warnings(20):
        print(f"warning: {printable(line, 1000)}", file=stderr)
    if monitor.bad_frames:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(monitor.bad_reasons.items()))
        print(f"warning: {monitor.bad_frames} bad frames skipped ({printable(reasons, 2000)})", file=stderr)


def _run(path: str, tables: dict[str, _Table], monitor: Monitor, every_ms: int) -> FrameReader:
    trades = tables.get("trades")
    book = tables.get("book")
    dens = tables.get("densities")
    need_monitor = book is not None or dens is not None
    feed = monitor.feed
    seen: dict[str, set[str]] = {}              # symbol -> trade ids remembered
    expiry: list[tuple[int, str, str]] = []     # (fill ms, symbol, id), oldest first
    trades_clock = None
    ended_keys: dict[tuple, int] = {}           # (symbol, side, price, since) -> ended ms
    every = Every(every_ms)                     # the replay --json rule, so the rows are its lines

    def sample() -> None:
        if len(ended_keys) > 4096:
            # A density leaves the listing keep_ended_ms (30 s) after it ended; keys far older
            # than that cannot come back.
            old = monitor.now_ms - _FORGET_ENDED_MS
            for key in [k for k, ended in ended_keys.items() if ended < old]:
                del ended_keys[key]
        monitor.advance()
        for sym in monitor.symbols:
            snap = monitor.snapshot(sym)
            if book is not None:
                book.add((snap.ts, sym, *[getattr(getattr(snap, part), name) for part, name in _BOOK_SOURCES]))
            if dens is not None:
                for d in snap.densities:
                    if d.state in ENDED_STATES:
                        key = (sym, d.side, d.price, d.since)
                        if key not in ended_keys:
                            ended_keys[key] = d.ended
                            dens.add((sym, str(d.side), d.price, d.size, d.notional, d.x_median,
                                      d.since, d.ended, str(d.state)))

    reader = FrameReader(path)
    for frame in reader:
        raw = frame.raw
        if need_monitor:
            feed(frame.recv_ns, raw)
            if every.due(monitor.now_ms):
                sample()
        if trades is not None and "publicTrade." in raw:
            ev = parse_frame(raw, frame.recv_ns)
            if type(ev) is not TradeBatch:
                continue
            sym = ev.symbol
            ids = seen.get(sym)
            if ids is None:
                ids = seen[sym] = set()
            if trades_clock is None or ev.ts_ms > trades_clock:
                trades_clock = ev.ts_ms
                forget = trades_clock - DEDUPE_MS
                while expiry and expiry[0][0] <= forget:
                    _, s, tid = heapq.heappop(expiry)
                    seen[s].discard(tid)
            for t in ev.trades:
                tid = t.trade_id
                if tid in ids:
                    continue
                ids.add(tid)
                heapq.heappush(expiry, (t.ts_ms, sym, tid))
                trades.add((t.ts_ms, sym, "Buy" if t.is_buy else "Sell", t.price, t.size, tid, ev.recv_ns))
    if need_monitor:
        monitor.finish()
        sample()
    return reader
