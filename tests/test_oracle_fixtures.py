"""Monitor vs brute-force oracle on real Bybit frames and on captures of the simulator.

Bybit's documentation examples, its history slice, the simulator captures and the hand-built
frames are in tests/data; cryptofeed's live captures and the quoted frames are read in place from
BYBITMON_REAL_CAPTURES (never copied into the repo; skipped without it).  Every frame is fed
to both; after each frame the snapshot of that frame's symbol is compared, and at
the end every symbol.  Oracle-only tests pin facts counted independently in
SOURCES.md, so the oracle itself is checked even when the Monitor is absent.
"""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

from oracle import Oracle, compare
from paths import fixture_lines, recv_times_ns

REAL_FILES = [
    "cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson",
    "cryptofeed_spot_BTCUSDT.ndjson",
    "nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson",
    "doc_examples.ndjson",
    "readme_quoted_spot_ack_pong_ob1.ndjson",
    "issue_quoted_spot_error_ack.ndjson",
]
# bybitmon's own frames (tests/data): `serve --simulate` captures and hand-built shapes
SIM_FILES = ["sim_linear_BTCUSDT_ETHUSDT.ndjson", "sim_spot_BTCUSDT.ndjson"]
HANDBUILT_FILES = ["handbuilt_spot_ack_pong_ob1.ndjson", "handbuilt_spot_error_ack.ndjson"]
FILES = REAL_FILES + SIM_FILES + HANDBUILT_FILES


def category_of(name: str) -> str:
    return "spot" if "_spot_" in name else "linear"


@lru_cache(maxsize=None)
def load(name: str) -> tuple[tuple[bytes, ...], tuple[int, ...]]:
    """Frames (line terminators, including the nautilus file's CRLF, stripped) and recv_ns."""
    frames = tuple(fixture_lines(name))
    times = recv_times_ns(name)
    if times is not None:
        recv = tuple(times)
        assert len(recv) == len(frames), f"{name} recv_ts: {len(recv)} times for {len(frames)} frames"
    else:
        recv = (0,) * len(frames)
    return frames, recv


def topic_symbol(raw: bytes) -> str | None:
    """Symbol named by a frame's topic (any topic: tickers, kline, book, trades)."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    topic = obj.get("topic") if isinstance(obj, dict) else None
    return topic.split(".")[-1] if isinstance(topic, str) else None


def monitor_symbols(m) -> list[str]:
    syms = m.symbols
    assert isinstance(syms, list), f"Monitor.symbols must be a list, got {type(syms)}"
    return syms


def replay_and_compare(name: str, window_ms: int, bps: float) -> Oracle:
    from bybitmon.core.monitor import Monitor

    kw = dict(category=category_of(name), window_ms=window_ms, bps=bps,
              density_x=5.0, density_min_notional=0.0)
    m = Monitor(**kw)
    o = Oracle(**kw)
    frames, recv = load(name)
    for idx, (raw, recv_ns) in enumerate(zip(frames, recv)):
        # alternate str and bytes input: feed() accepts both
        m.feed(recv_ns, raw if idx % 2 else raw.decode("utf-8"))
        o.feed(raw)
        where = f"{name} frame#{idx + 1} W={window_ms} B={bps}"
        assert monitor_symbols(m) == o.symbols, f"[{where}] symbols"
        sym = topic_symbol(raw)
        if sym is not None and sym in o.symbols:
            compare(m.snapshot(sym), o.snapshot(sym), where=where)
    for sym in o.symbols:
        compare(m.snapshot(sym), o.snapshot(sym), where=f"{name} end W={window_ms} B={bps}")
    return o


# ---------------------------------------------------------------- Monitor vs oracle


@pytest.mark.parametrize("name", FILES)
def test_monitor_matches_oracle_on_fixture(name):
    """Every real frame, default window and bps: snapshots match the oracle."""
    replay_and_compare(name, 60_000, 50.0)


@pytest.mark.parametrize(
    "window_ms,bps",
    [(w, b) for w in (10_000, 60_000, 300_000) for b in (5.0, 50.0, 500.0) if (w, b) != (60_000, 50.0)],
)
@pytest.mark.parametrize("name", ["cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "sim_linear_BTCUSDT_ETHUSDT.ndjson"])
def test_monitor_matches_oracle_on_linear_capture_for_windows_and_bps(name, window_ms, bps):
    """The long linear captures under every other (window, bps) combination (default is above)."""
    replay_and_compare(name, window_ms, bps)


@pytest.mark.parametrize("window_ms,bps", [(10_000, 5.0), (300_000, 500.0)])
@pytest.mark.parametrize(
    "name",
    ["cryptofeed_spot_BTCUSDT.ndjson", "nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson",
     "doc_examples.ndjson", "sim_spot_BTCUSDT.ndjson"],
)
def test_monitor_matches_oracle_on_other_fixtures_for_windows_and_bps(name, window_ms, bps):
    """The other captures with a short window / narrow band and a long window / wide band."""
    replay_and_compare(name, window_ms, bps)


def test_near_bound_skips_are_rare_on_real_data():
    """The float-vs-Decimal bound tolerance of compare() is (almost) never needed on real frames."""
    snapshots = near = 0
    for name in REAL_FILES:
        for bps in (5.0, 50.0, 500.0):
            o = Oracle(category=category_of(name), bps=bps)
            for raw in load(name)[0]:
                sym = o.feed(raw)
                if sym is not None:
                    snapshots += 1
                    near += "_alternatives" in o.snapshot(sym)["book"]
    assert snapshots > 3000
    assert near <= snapshots // 1000, f"{near} of {snapshots} snapshots had a level near a bound"


# ---------------------------------------------------------------- oracle self-checks


def replay_oracle(name: str, **kw) -> tuple[Oracle, list[str]]:
    o = Oracle(category=category_of(name), **kw)
    frames, _ = load(name)
    problems = []
    for idx, raw in enumerate(frames):
        o.feed(raw)
        for sym, st in o.states.items():
            if st.had_snapshot:
                depth = 500 if "ob500" in name else 200
                if (len(st.bids), len(st.asks)) != (depth, depth):
                    problems.append(f"frame#{idx + 1} {sym}: {len(st.bids)}/{len(st.asks)} levels")
    return o, problems


def test_oracle_linear_capture_counts():
    """2 book snapshots, 833 applied deltas, 79 trades, no gaps, crossing, staleness or drops."""
    o, problems = replay_oracle("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson")
    assert o.symbols == ["BTCUSDT", "ETHUSDT"]
    states = o.states.values()
    assert sum(st.snapshots_applied for st in states) == 2
    assert sum(st.deltas_applied for st in states) == 833
    assert sum(len(st.trades) for st in states) == 79
    for st in states:
        assert (st.gaps, st.crossed, st.stale, st.dropped, st.resets) == (0, 0, 0, 0, 0)
        assert st.ready
    assert o.bad_frames == 0
    assert problems == []
    # frames per symbol = book frames + trade frames of that symbol
    assert sum(st.frames for st in states) == 2 + 833 + 28


def test_oracle_spot_capture_counts():
    """1 snapshot, 299 deltas, 11 trades; 200 levels a side after every frame."""
    o, problems = replay_oracle("cryptofeed_spot_BTCUSDT.ndjson")
    st = o.states["BTCUSDT"]
    assert (st.snapshots_applied, st.deltas_applied, len(st.trades)) == (1, 299, 11)
    assert (st.gaps, st.crossed, st.stale, st.dropped, st.resets) == (0, 0, 0, 0, 0)
    assert st.frames == 1 + 299 + 11
    assert problems == []


def test_oracle_nautilus_history_counts():
    """CRLF file, depth 500: 1 snapshot, 49 deltas, 500 levels a side after every frame."""
    o, problems = replay_oracle("nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson")
    st = o.states["XRPUSDT"]
    assert (st.snapshots_applied, st.deltas_applied) == (1, 49)
    assert (st.gaps, st.crossed, st.stale, st.dropped) == (0, 0, 0, 0)
    assert problems == []
    assert o.bad_frames == 0


@pytest.mark.parametrize("names", [
    ["cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "cryptofeed_spot_BTCUSDT.ndjson"],
    SIM_FILES,
])
def test_oracle_books_never_cross_and_tight_spread_on_captures(names):
    """Books are uncrossed after every frame, with the best prices one tick apart at the end."""
    for name in names:
        o = Oracle(category=category_of(name))
        for raw in load(name)[0]:
            sym = o.feed(raw)
            if sym and o.states[sym].bids and o.states[sym].asks:
                assert max(o.states[sym].bids) < min(o.states[sym].asks)
        for sym in o.symbols:
            book = o.snapshot(sym)["book"]
            assert book["ready"] and 0 < book["spread_bps"] < 1


def test_oracle_doc_examples():
    """Doc frames: the delta comes before any snapshot (dropped); the trade is outside the window."""
    o, _ = replay_oracle("doc_examples.ndjson")
    snap = o.snapshot("BTCUSDT")
    assert o.symbols == ["BTCUSDT"]
    assert snap["ts"] == 1687940967466  # the book delta's ts, larger than the trade frame's
    assert snap["health"] == {"frames": 2, "bad_frames": 0, "stale": 0, "gaps": 0,
                              "crossed": 0, "resets": 0, "dropped": 1, "clock_jumps": 0, "overflow": 0}
    assert snap["trades"]["count"] == 0
    assert snap["trades"]["last_price"] == 16578.5
    assert snap["book"]["ready"] is False and snap["book"]["update_id"] is None


@pytest.mark.parametrize("frames,error_ack,ts", [
    ("readme_quoted_spot_ack_pong_ob1.ndjson", "issue_quoted_spot_error_ack.ndjson", 1699764797519),
    ("handbuilt_spot_ack_pong_ob1.ndjson", "handbuilt_spot_error_ack.ndjson", 1700000000123),
])
def test_oracle_quoted_frames(frames, error_ack, ts):
    """Ack + pong + an orderbook.1 delta without snapshot; a lone error ack (quoted live frames,
    and hand-built ones of the same shapes)."""
    o, _ = replay_oracle(frames)
    assert o.symbols == ["BTCUSDT"]
    assert o.snapshot("BTCUSDT")["health"]["dropped"] == 1
    assert o.now == ts
    o, _ = replay_oracle(error_ack)
    assert o.symbols == [] and o.bad_frames == 0 and o.now is None


@pytest.mark.parametrize("name", ["cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "sim_linear_BTCUSDT_ETHUSDT.ndjson"])
def test_oracle_trade_window_on_linear_capture_by_hand_count(name):
    """Window counts agree with a direct count over the raw trade frames."""
    frames, _ = load(name)
    objs = [json.loads(f) for f in frames]
    now = max(x["ts"] for x in objs if isinstance(x.get("ts"), int))
    trades = [t for x in objs if x.get("topic") == "publicTrade.BTCUSDT" for t in x["data"]]
    for window_ms in (1_000, 10_000, 60_000):
        o = Oracle(window_ms=window_ms)
        for f in frames:
            o.feed(f)
        expected = len({t["i"] for t in trades if now - window_ms < t["T"] <= now})
        assert o.snapshot("BTCUSDT")["trades"]["count"] == expected
