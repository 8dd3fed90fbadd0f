from __future__ import annotations

import gzip
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from bybitmon.core.densities import ENDED_STATES
from bybitmon.errors import RecordingError, UsageError
from bybitmon.app.export import BOOK_COLUMNS, DENSITY_COLUMNS, TRADE_COLUMNS, export_file
from bybitmon.transport.recording import RecordingWriter

from frames import book, trades
from paths import fixture_lines, fixture_path

REAL = "cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson"  # optional: BYBITMON_REAL_CAPTURES
SIM = "sim_linear_BTCUSDT_ETHUSDT.ndjson"  # `serve --simulate` capture in tests/data
BOOK_ONLY = "nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson"


def export_all(src: Path | str, out: Path, **kwargs) -> tuple[dict[str, int], dict[str, list[dict]]]:
    paths = {name: out / f"{name}.parquet" for name in ("trades", "book", "densities")}
    counts = export_file(src, trades_out=paths["trades"], book_out=paths["book"],
                         densities_out=paths["densities"], **kwargs)
    return counts, {name: pq.read_table(p).to_pylist() for name, p in paths.items()}


@pytest.fixture(scope="module", params=[REAL, SIM])
def capture(request) -> str:
    """The two-symbol linear capture the tests run on: Bybit's live frames, or bybitmon's simulator."""
    return request.param


def unique_trades(name: str) -> int:
    """Trades in the capture, a repeated (symbol, id) once; the live capture's 79 is counted in its SOURCES.md."""
    n = len(raw_trades(fixture_lines(name)))
    assert name != REAL or n == 79
    return n


@pytest.fixture(scope="module")
def real_export(tmp_path_factory, capture) -> tuple[dict[str, int], dict[str, list[dict]]]:
    return export_all(fixture_path(capture), tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def replay_100ms(capture) -> list[dict]:
    return replay_json(fixture_path(capture), "100ms")


def raw_trades(lines) -> list[dict]:
    """Every trade of the raw frames, in arrival order, a repeated (symbol, id) kept once."""
    out, seen = [], set()
    for raw in lines:
        msg = orjson.loads(raw)
        if str(msg.get("topic", "")).startswith("publicTrade."):
            for t in msg["data"]:
                if (t["s"], t["i"]) not in seen:
                    seen.add((t["s"], t["i"]))
                    out.append(t)
    return out


def replay_json(src: Path | str, interval: str) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "bybitmon", "replay", str(src), "--json", "--interval", interval],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return [orjson.loads(line) for line in proc.stdout.splitlines()]


def book_row(snap: dict) -> dict:
    b, t = snap["book"], snap["trades"]
    return {"ts": snap["ts"], "symbol": snap["symbol"], "ready": b["ready"],
            **{k: b[k] for k in BOOK_COLUMNS[3:12]}, **{k: t[k] for k in BOOK_COLUMNS[12:]}}


# -- trades ------------------------------------------------------------------------------------

def test_trade_count_equals_unique_trade_ids_in_file(real_export, capture):
    counts, tables = real_export
    ids = {(t["s"], t["i"]) for t in raw_trades(fixture_lines(capture))}
    assert counts["trades"] == len(tables["trades"]) == len(ids) == unique_trades(capture)
    assert {(r["symbol"], r["id"]) for r in tables["trades"]} == ids


def test_trade_sizes_by_side_equal_decimal_sums(real_export, capture):
    _, tables = real_export
    exact = {("BTCUSDT", "Buy"): Decimal(0), ("BTCUSDT", "Sell"): Decimal(0),
             ("ETHUSDT", "Buy"): Decimal(0), ("ETHUSDT", "Sell"): Decimal(0)}
    for t in raw_trades(fixture_lines(capture)):
        exact[(t["s"], t["S"])] += Decimal(t["v"])
    for (sym, side), total in exact.items():
        got = sum(r["size"] for r in tables["trades"] if r["symbol"] == sym and r["side"] == side)
        assert got == pytest.approx(float(total), rel=1e-9)
    assert all(v > 0 for v in exact.values())


def test_trade_rows_are_the_raw_trades_in_arrival_order(real_export, capture):
    _, tables = real_export
    expected = [{"ts": t["T"], "symbol": t["s"], "side": t["S"], "price": float(t["p"]), "size": float(t["v"]),
                 "id": t["i"], "recv_ns": 0} for t in raw_trades(fixture_lines(capture))]
    assert tables["trades"] == expected


def test_trade_seen_twice_is_written_once(tmp_path, capture):
    """A trade frame delivered again (e.g. after a reconnect) adds no rows."""
    lines = fixture_lines(capture)
    trade_frames = [raw for raw in lines if b'"publicTrade.' in raw]
    src = tmp_path / "dup.ndjson"
    src.write_bytes(b"\n".join(lines + trade_frames[:5] + lines[-20:]) + b"\n")
    counts, tables = export_all(src, tmp_path)
    (tmp_path / "original").mkdir()
    _, original = export_all(fixture_path(capture), tmp_path / "original")
    assert counts["trades"] == unique_trades(capture)
    assert tables["trades"] == original["trades"]


def test_trades_keep_the_recording_receive_time(tmp_path, capture):
    src = tmp_path / "rec.bybitmon"
    lines = fixture_lines(capture)
    with RecordingWriter(str(src), header={"category": "linear"}) as w:
        for i, raw in enumerate(lines):
            w.write(1_000_000_000 + i, "c1", raw.decode())
    counts, tables = export_all(src, tmp_path)
    assert counts["trades"] == unique_trades(capture)
    arrival = {}
    for i, raw in enumerate(lines):
        msg = orjson.loads(raw)
        if str(msg.get("topic", "")).startswith("publicTrade."):
            for t in msg["data"]:
                arrival.setdefault(t["i"], 1_000_000_000 + i)
    assert [r["recv_ns"] for r in tables["trades"]] == [arrival[r["id"]] for r in tables["trades"]]


# -- book -------------------------------------------------------------------------------------

def test_book_rows_equal_replay_json_snapshots(real_export, replay_100ms):
    """Row for row -- same times, same numbers, nulls null -- what `replay --json --interval 100ms` prints."""
    counts, tables = real_export
    assert counts["book"] == len(tables["book"]) == len(replay_100ms) > 2
    assert tables["book"] == [book_row(s) for s in replay_100ms]


def test_book_rows_equal_replay_json_snapshots_at_another_interval(tmp_path, capture):
    counts, tables = export_all(fixture_path(capture), tmp_path, every_ms=1000)
    snaps = replay_json(fixture_path(capture), "1s")
    assert counts["book"] == len(tables["book"]) == len(snaps) > 2
    assert tables["book"] == [book_row(s) for s in snaps]


def test_book_rows_are_taken_at_frames_landing_exactly_on_a_boundary(tmp_path):
    """A frame whose clock is exactly on a boundary samples; the end of input adds a final row."""
    lines = [
        book("BTCUSDT", 1, [(100.0, 1.0)], [(101.0, 1.0)], snapshot=True, ts=1000),
        book("BTCUSDT", 2, [(100.0, 2.0)], ts=1100),
        trades("BTCUSDT", [(1150, "Buy", 101.0, 0.5, "t1")], ts=1199),
        book("BTCUSDT", 3, [(100.5, 1.0)], ts=1200),
        trades("BTCUSDT", [(1250, "Sell", 100.5, 0.25, "t2")], ts=1300),
    ]
    src = tmp_path / "boundary.ndjson"
    src.write_bytes(b"\n".join(lines) + b"\n")
    counts, tables = export_all(src, tmp_path)
    assert [r["ts"] for r in tables["book"]] == [1100, 1200, 1300, 1300]
    assert [r["best_bid"] for r in tables["book"]] == [100.0, 100.5, 100.5, 100.5]
    assert [r["buy_sell_ratio"] for r in tables["book"]] == [None, None, 2.0, 2.0]
    assert tables["book"] == [book_row(s) for s in replay_json(src, "100ms")]


def test_book_last_row_per_symbol_equals_final_replay_snapshot(real_export, replay_100ms):
    _, tables = real_export
    final = {s["symbol"]: s for s in replay_100ms}
    last = {r["symbol"]: r for r in tables["book"]}
    assert set(last) == set(final) == {"BTCUSDT", "ETHUSDT"}
    for sym, row in last.items():
        snap = final[sym]
        assert row["ts"] == snap["ts"]
        assert row["mid"] == pytest.approx(snap["book"]["mid"], rel=1e-12)
        assert row["imbalance"] == pytest.approx(snap["book"]["imbalance"], rel=1e-12)
        assert row["tpm"] == snap["trades"]["tpm"]
        assert row["volume_delta"] == pytest.approx(snap["trades"]["volume_delta"], rel=1e-12)


def test_book_rows_follow_the_sampling_interval(real_export):
    """One row per symbol per 100 ms boundary crossed (then a final one): never two in one interval."""
    _, tables = real_export
    rows = tables["book"]
    times = [r["ts"] for r in rows[:-2]]
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT"] * (len(rows) // 2)
    buckets = [t // 100 for t in times[::2]]
    assert buckets == sorted(set(buckets))
    assert times == [t for t in times[::2] for _ in range(2)]
    assert all(r["ready"] is True for r in rows)


def test_book_not_ready_numbers_stay_null(tmp_path, capture):
    """Deltas before any snapshot leave the book not ready: every book number is null, not 0."""
    lines = [raw for raw in fixture_lines(capture) if b'"type":"snapshot"' not in raw or b"orderbook" not in raw]
    src = tmp_path / "nosnap.ndjson"
    src.write_bytes(b"\n".join(lines) + b"\n")
    _, tables = export_all(src, tmp_path)
    assert tables["book"]
    for row in tables["book"]:
        assert row["ready"] is False
        assert all(row[k] is None for k in BOOK_COLUMNS[3:12])
        assert row["tpm"] is not None


# -- densities ------------------------------------------------------------------------------------

def test_densities_are_the_ended_ones_replay_shows_once_each(real_export, replay_100ms):
    counts, tables = real_export
    expected: dict[tuple, dict] = {}
    for s in replay_100ms:
        for d in s["densities"]:
            if d["state"] in ENDED_STATES:
                expected.setdefault((s["symbol"], d["side"], d["price"], d["since"]), {"symbol": s["symbol"], **d})
    rows = tables["densities"]
    assert counts["densities"] == len(rows) == len(expected) > 0
    assert {(r["symbol"], r["side"], r["price"], r["since"]): r for r in rows} == {
        k: {c: v[c] for c in DENSITY_COLUMNS} for k, v in expected.items()}
    assert {r["state"] for r in rows} <= set(ENDED_STATES)
    assert all(r["ended"] >= r["since"] for r in rows)


# -- files ---------------------------------------------------------------------------------------

def test_tables_have_the_documented_columns(real_export, tmp_path, capture):
    export_all(fixture_path(capture), tmp_path)
    assert pq.read_schema(tmp_path / "trades.parquet").names == list(TRADE_COLUMNS)
    assert pq.read_schema(tmp_path / "book.parquet").names == list(BOOK_COLUMNS)
    assert pq.read_schema(tmp_path / "densities.parquet").names == list(DENSITY_COLUMNS)
    schema = pq.read_schema(tmp_path / "trades.parquet")
    assert [str(schema.field(c).type) for c in TRADE_COLUMNS] == [
        "int64", "string", "string", "double", "double", "string", "int64"]


def test_file_without_trades_gives_an_empty_trades_table_with_its_schema(tmp_path):
    counts, tables = export_all(fixture_path(BOOK_ONLY), tmp_path)
    assert counts["trades"] == 0 and tables["trades"] == []
    assert pq.read_schema(tmp_path / "trades.parquet").names == list(TRADE_COLUMNS)
    assert counts["book"] > 0


def test_only_requested_tables_are_written(tmp_path, capture):
    counts = export_file(fixture_path(capture), trades_out=tmp_path / "t.parquet")
    assert counts == {"trades": unique_trades(capture)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_large_input_is_written_in_row_groups(tmp_path, capture):
    """Rows are flushed every rows_per_group rows instead of being held until the end."""
    counts = export_file(fixture_path(capture), trades_out=tmp_path / "t.parquet", book_out=tmp_path / "b.parquet",
                         rows_per_group=10)
    for name, table in (("t.parquet", "trades"), ("b.parquet", "book")):
        meta = pq.ParquetFile(tmp_path / name).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert sum(sizes) == counts[table]
        assert max(sizes) <= 10 and meta.num_row_groups == -(-counts[table] // 10)


def test_compressed_input_exports_the_same_tables(tmp_path, real_export, capture):
    src = tmp_path / "capture.ndjson.gz"
    src.write_bytes(gzip.compress(fixture_path(capture).read_bytes()))
    (tmp_path / "out").mkdir()
    _, tables = export_all(src, tmp_path / "out")
    assert tables == real_export[1]


def test_missing_pyarrow_is_a_usage_error(tmp_path, monkeypatch, capture):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(UsageError) as info:
        export_file(fixture_path(capture), trades_out=tmp_path / "t.parquet")
    assert str(info.value) == "Parquet export needs pyarrow: pip install 'bybitmon[export]'"
    assert list(tmp_path.iterdir()) == []


def test_missing_input_leaves_no_output_file(tmp_path):
    with pytest.raises(RecordingError, match="no such file"):
        export_file(tmp_path / "nope.ndjson", trades_out=tmp_path / "t.parquet", book_out=tmp_path / "b.parquet")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs,message", [
    ({}, "nothing to export"),
    ({"trades_out": "x.parquet", "book_out": "x.parquet"}, "must be different files"),
    ({"trades_out": "x.parquet", "every_ms": 0}, "bad every_ms 0"),
    ({"trades_out": "x.parquet", "window_ms": -5}, "bad window_ms -5"),
    ({"trades_out": "x.parquet", "bps": 0.0}, "bad bps"),
    ({"trades_out": "x.parquet", "category": "futures"}, "bad category 'futures'"),
])
def test_bad_arguments_are_usage_errors(tmp_path, monkeypatch, kwargs, message, capture):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=message):
        export_file(fixture_path(capture), **kwargs)
    assert list(tmp_path.iterdir()) == []


# -- bad input is reported as replay reports it (issue 14) ------------------------------------

def _bm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bybitmon", *args], capture_output=True, timeout=120)


def test_export_reports_bad_lines_as_replay_does(tmp_path):
    """A recording with 30 unreadable lines: export names the first 20 with their line numbers and
    counts the rest, in the same lines replay prints, and still writes the good frames."""
    lines = [b'{"format":"bybitmon-recording","version":1}\n']
    bad = []
    good = [x if isinstance(x, bytes) else x.encode() for x in fixture_lines(SIM)[:400]]
    for i, raw in enumerate(good):
        lines.append(b"%d c %s\n" % (1_000 + i, raw))
        if i % 10 == 5 and len(bad) < 30:
            lines.append(b"junk\n")
            bad.append(len(lines))
    src = tmp_path / "rec.ndjson"
    src.write_bytes(b"".join(lines))
    p = _bm("export", str(src), "--to", str(tmp_path / "t.parquet"), "--book", str(tmp_path / "b.parquet"))
    assert p.returncode == 0, p.stderr
    warnings = [x for x in p.stderr.decode().splitlines() if x.startswith("warning:")]
    assert warnings[:20] == [f"warning: {src}:{n}: unreadable bybitmon line; skipped" for n in bad[:20]]
    assert warnings[20:] == [f"warning: 10 more unreadable lines skipped in {src}"]
    r = _bm("replay", str(src), "--json")
    assert r.returncode == 0, r.stderr
    assert [x for x in r.stderr.decode().splitlines() if x.startswith("warning:")] == warnings
    assert pq.read_table(tmp_path / "t.parquet").num_rows > 0


def test_export_reports_bad_frames_by_reason(tmp_path):
    good = [x if isinstance(x, bytes) else x.encode() for x in fixture_lines(SIM)[:200]]
    src = tmp_path / "cap.ndjson"
    src.write_bytes(b"\n".join(good[:100] + [b"{not json", b"[1,2]"] * 3 + good[100:]) + b"\n")
    p = _bm("export", str(src), "--book", str(tmp_path / "b.parquet"))
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode()
    r = _bm("replay", str(src), "--json")
    expected = [x for x in r.stderr.decode().splitlines() if x.startswith("warning:")]
    assert len(expected) == 1 and expected[0].startswith("warning: 6 bad frames skipped (")
    assert [x for x in err.splitlines() if x.startswith("warning:")] == expected
    assert "Traceback" not in err


def test_export_of_a_clean_file_prints_no_warning(tmp_path):
    p = _bm("export", str(fixture_path(SIM)), "--to", str(tmp_path / "t.parquet"))
    assert p.returncode == 0 and b"warning" not in p.stderr, p.stderr
