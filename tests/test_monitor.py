from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from bybitmon.core.monitor import Monitor
from bybitmon.core.protocol import parse_frame
from bybitmon.sim.market import MarketSimulator

from frames import book, trades
from paths import fixture_lines

CAPTURES = [
    ("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "linear"),
    ("cryptofeed_spot_BTCUSDT.ndjson", "spot"),
    ("nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson", "linear"),
    ("doc_examples.ndjson", "linear"),
    ("sim_linear_BTCUSDT_ETHUSDT.ndjson", "linear"),
    ("sim_spot_BTCUSDT.ndjson", "spot"),
    ("handbuilt_spot_ack_pong_ob1.ndjson", "spot"),
]


def both(lines, category="linear"):
    fast, slow = Monitor(category), Monitor(category)
    for i, raw in enumerate(lines):
        fast.feed(i, raw)
        slow.feed_event(parse_frame(raw, i))
        yield fast, slow


@pytest.mark.parametrize("name,category", CAPTURES)
def test_hot_path_equals_event_path_on_real_frames(name, category):
    """Monitor.feed (no event objects) and feed_event(parse_frame()) agree after every frame."""
    for fast, slow in both(fixture_lines(name), category):
        assert fast.symbols == slow.symbols
        for s in fast.symbols:
            assert fast.snapshot(s) == slow.snapshot(s)


def test_hot_path_equals_event_path_on_simulated_market():
    sim = MarketSimulator(["BTCUSDT", "ETHUSDT"], seed=7)
    frames = [raw for _, raw in sim.frames(60_000)]
    *_, (fast, slow) = both(frames)
    for s in fast.symbols:
        assert fast.snapshot(s) == slow.snapshot(s)


junk = st.sampled_from([
    b"{", b"[]", b'{"topic":"orderbook.50.X","type":"delta","ts":5,"data":{"b":[["1","x"]],"a":[],"u":2,"seq":1}}',
    b'{"topic":"publicTrade.X","ts":5,"data":[{"T":1}]}', b'{"op":"pong","ts":9}',
])
frame = st.one_of(
    junk,
    st.builds(lambda u, p, s, snap, ts: book("X", u, [(p, s)], [(p + 5, s)], snapshot=snap, ts=ts),
              st.integers(1, 6), st.integers(90, 100), st.sampled_from(["0", "1", "2.5"]), st.booleans(),
              st.integers(1000, 1100)),
    st.builds(lambda t, side, i: trades("X", [(t, side, "95", "1", f"id{i}")]),
              st.integers(900, 1100), st.sampled_from(["Buy", "Sell"]), st.integers(0, 5)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(frame, max_size=30))
def test_hot_path_equals_event_path_on_generated_streams(lines):
    for fast, slow in both(lines):
        assert fast.bad_frames == slow.bad_frames
        for s in fast.symbols:
            assert fast.snapshot(s) == slow.snapshot(s)
