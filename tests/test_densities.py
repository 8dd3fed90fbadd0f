from __future__ import annotations

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from bybitmon.core.densities import ENDED_STATES
from bybitmon.core.snapshot import DensityState, Side
from bybitmon.core.monitor import Monitor

from frames import book, trades

# 10 bid levels of size 1 and 10 ask levels of size 1 around 100; median 1, threshold 5 (x=5).
BIDS = [(f"{99 - i * 0.5:.1f}", "1") for i in range(10)]
ASKS = [(f"{101 + i * 0.5:.1f}", "1") for i in range(10)]


def setup(with_big_bid: str = "20") -> Monitor:
    m = Monitor("linear", density_x=5.0)
    bids = [("99.0", with_big_bid)] + BIDS[1:]
    m.feed(0, book("X", 1, bids, ASKS, snapshot=True, ts=1000))
    return m


def active(m: Monitor) -> list[dict]:
    return [d for d in m.snapshot("X").densities if d.state == "active"]


def states(m: Monitor) -> list[tuple[float, str]]:
    return [(d.price, d.state) for d in m.snapshot("X").densities]


def test_large_level_is_a_density_with_its_multiple_of_median():
    m = setup("20")
    (d,) = active(m)
    assert d.side == "bid" and d.price == 99.0 and d.size == 20.0
    assert d.x_median == 20.0 and d.notional == 99.0 * 20 and d.since == 1000


def test_level_below_threshold_is_not_a_density():
    assert active(setup("4.9")) == []


def test_min_notional_filters_small_densities():
    m = Monitor("linear", density_x=5.0, density_min_notional=10_000)
    m.feed(0, book("X", 1, [("99.0", "20")] + BIDS[1:], ASKS, snapshot=True, ts=1000))
    assert m.snapshot("X").densities == ()


def test_density_eaten_by_trades_at_its_price():
    m = setup("20")
    m.feed(0, trades("X", [(1100, "Sell", "99.0", "12", "t1"), (1100, "Sell", "99.0", "8", "t2")], ts=1100))
    m.feed(0, book("X", 2, [("99.0", "0")], [], ts=1120))
    m.feed(0, book("X", 3, [("98.0", "1.1")], [], ts=2000))  # clock passes the grace period
    assert states(m) == [(99.0, "eaten")]


def test_density_pulled_without_trades():
    m = setup("20")
    m.feed(0, trades("X", [(1100, "Buy", "101.0", "1", "t1")], ts=1100))  # other side, other price
    m.feed(0, book("X", 2, [("99.0", "0")], [], ts=1120))
    m.feed(0, book("X", 3, [("98.0", "1.1")], [], ts=2000))
    assert states(m) == [(99.0, "pulled")]


def test_trades_arriving_after_the_book_frame_within_grace_still_count():
    m = setup("20")
    m.feed(0, book("X", 2, [("99.0", "0")], [], ts=1120))
    assert states(m) == [(99.0, "ending")]
    m.feed(0, trades("X", [(1119, "Sell", "99.0", "20", "t1")], ts=1200))
    m.feed(0, book("X", 3, [("98.0", "1.1")], [], ts=2000))
    assert states(m) == [(99.0, "eaten")]


def test_partly_eaten_then_pulled_is_pulled():
    """The fate looks at the last decrease: trades since the density's last size."""
    m = setup("20")
    m.feed(0, trades("X", [(1100, "Sell", "99.0", "8", "t1")], ts=1100))
    m.feed(0, book("X", 2, [("99.0", "12")], [], ts=1120))   # still >= 5: stays, tally restarts
    assert active(m)[0].size == 12.0
    m.feed(0, book("X", 3, [("99.0", "0")], [], ts=1140))
    m.feed(0, book("X", 4, [("98.0", "1.1")], [], ts=2000))
    assert states(m) == [(99.0, "pulled")]


def test_half_the_decrease_traded_is_eaten_just_below_is_pulled():
    for traded, fate in (("10", "eaten"), ("9.99", "pulled")):
        m = setup("20")
        m.feed(0, trades("X", [(1100, "Sell", "99.0", traded, "t1")], ts=1100))
        m.feed(0, book("X", 2, [("99.0", "0")], [], ts=1120))
        m.feed(0, book("X", 3, [("98.0", "1.1")], [], ts=2000))
        assert states(m) == [(99.0, fate)], traded


def test_buy_trades_do_not_eat_a_bid():
    m = setup("20")
    m.feed(0, trades("X", [(1100, "Buy", "99.0", "20", "t1")], ts=1100))
    m.feed(0, book("X", 2, [("99.0", "0")], [], ts=1120))
    m.feed(0, book("X", 3, [("98.0", "1.1")], [], ts=2000))
    assert states(m) == [(99.0, "pulled")]


def test_ended_density_stays_listed_for_30_seconds():
    m = setup("20")
    m.feed(0, book("X", 2, [("99.0", "0")], [], ts=1120))
    m.feed(0, book("X", 3, [("98.0", "1.1")], [], ts=31_120))
    assert states(m) == [(99.0, "pulled")]
    m.feed(0, book("X", 4, [("98.0", "1.2")], [], ts=31_121))
    assert states(m) == []


def test_gap_drops_tracking_until_the_next_snapshot():
    m = setup("20")
    m.feed(0, book("X", 5, [("99.0", "0")], [], ts=1120))  # u jumps: book out of sync
    assert m.snapshot("X").book.ready is False
    assert m.snapshot("X").densities == ()


def test_density_that_appears_by_delta_is_found_at_the_next_scan():
    m = setup("1")
    assert active(m) == []
    m.feed(0, book("X", 2, [], [("102.0", "30")], ts=1050))   # before the 100 ms scan interval
    m.feed(0, book("X", 3, [], [("102.5", "1.1")], ts=1100))
    (d,) = active(m)
    assert d.side == "ask" and d.price == 102.0 and d.since == 1100


def test_fates_match_the_simulators_ground_truth():
    """On a seeded simulated market, planted large orders are found and their fate (eaten by
    trades or pulled) is classified right at least 95 % of the time."""
    from bybitmon.sim.market import MarketSimulator

    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    sim = MarketSimulator(symbols, seed=11, plant_every_s=10.0)
    m = Monitor("linear")
    seen: dict[tuple, dict] = {}
    next_look = 0
    for ts, raw in sim.frames(15 * 60_000):
        m.feed(ts * 1_000_000, raw)
        if ts >= next_look:
            next_look = ts + 500
            for s in symbols:
                for d in m.snapshot(s).densities:
                    if d.state in ENDED_STATES:
                        seen[(s, d.side, d.price, d.since)] = d
    m.finish()
    for s in symbols:
        for d in m.snapshot(s).densities:
            if d.state in ENDED_STATES:
                seen[(s, d.side, d.price, d.since)] = d
    planted = [p for p in sim.planted if p.ended_ms is not None]
    assert len(planted) >= 60 and {p.fate for p in planted} == {"eaten", "pulled"}
    right = 0
    for p in planted:
        side = "bid" if p.side == "Buy" else "ask"
        matches = [d for (s, sd, price, since), d in seen.items()
                   if s == p.symbol and sd == side and price == float(p.price)
                   and p.placed_ms <= d.ended <= p.ended_ms + 1000 and since <= p.ended_ms]
        # the density that ended last at that price is the one whose end the planted order caused
        if matches and max(matches, key=lambda d: d.ended).state == p.fate:
            right += 1
    assert right / len(planted) >= 0.95, f"{right}/{len(planted)} fates right"


def _check_after_scan(m: Monitor, symbol: str) -> int:
    """Brute force: right after a scan, the active densities of each side are exactly the levels
    with size >= the threshold (and the notional floor), found by looking at every level."""
    st = m.states[symbol]
    tr, book = st.densities, st.book
    for side, levels in (("bid", book.bids), ("ask", book.asks)):
        thr = tr.thresholds[side]
        want = {p for p, s in levels.items() if s >= thr and p * s >= tr.min_notional}
        assert set(tr.active[side]) == want, (symbol, side, sorted(set(tr.active[side]) ^ want))
        for p, d in tr.active[side].items():
            assert d.size == levels[p]
    return len(tr.active["bid"]) + len(tr.active["ask"])


@pytest.mark.parametrize("source", ["simulator", "cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson",
                                    "sim_linear_BTCUSDT_ETHUSDT.ndjson"])
def test_incremental_scans_find_what_a_full_scan_finds(source):
    """The scan looks only at prices set to large sizes since the last scan; after every scan
    its densities must equal a scan of every level, on a simulated market, on real frames and on
    a recording of `serve --simulate`."""
    from bybitmon.sim.market import MarketSimulator

    from paths import fixture_lines

    if source == "simulator":
        runs = [((ts * 1_000_000, raw) for ts, raw in MarketSimulator(["BTCUSDT", "ETHUSDT"], seed=4).frames(120_000))]
    else:
        runs = [((0, raw) for raw in fixture_lines(source))]
    for frames in runs:
        m = Monitor("linear", density_x=3.0)
        scans = found = 0
        last_scan = {}
        for recv_ns, raw in frames:
            m.feed(recv_ns, raw)
            for s, st in m.states.items():
                if st.book.ready and st.densities.next_scan_ms != last_scan.get(s):
                    last_scan[s] = st.densities.next_scan_ms
                    scans += 1
                    found += _check_after_scan(m, s)
        assert scans > 50 and found > 0


def test_listing_of_ended_densities_matches_a_full_sort():
    """The snapshot lists the most recent ended densities off the back of an ordered list; a
    full filter-and-sort of everything held must give the same list, and nothing older than
    the keep period is held."""
    from bybitmon.sim.market import MarketSimulator

    m = Monitor("linear", density_x=3.0, density_list_max=5)
    checks = 0
    for ts, raw in MarketSimulator(["BTCUSDT", "ETHUSDT"], seed=9).frames(240_000):
        m.feed(ts * 1_000_000, raw)
        if ts % 997 == 0:
            for st in m.states.values():
                tr = st.densities
                tr.tick(m.now_ms)
                keep_from = m.now_ms - tr.keep_ended_ms
                held = tr.ended
                assert held == sorted(held, key=lambda d: (d.ended_ms, d.side, d.price))
                assert all(d.ended_ms >= keep_from for d in held)
                want = [d.view() for d in sorted((d for d in held if d.ended_ms >= keep_from),
                                                 key=lambda d: (-d.ended_ms, d.side, d.price))[:5]]
                got = [d for d in tr.listing(m.now_ms) if d.state in ENDED_STATES]
                assert got == want
                checks += len(held) > 5
    assert checks > 20


def _edge_setup(depth: int) -> Monitor:
    """Five bid levels, the farthest (97.0) a density, on an orderbook.<depth> topic."""
    m = Monitor("linear", density_x=5.0)
    bids = [("99.0", "1"), ("98.5", "1"), ("98.0", "1"), ("97.5", "1"), ("97.0", "20")]
    m.feed(0, book("X", 1, bids, ASKS[:5], snapshot=True, ts=1000, depth=depth))
    assert [(d.price, d.state) for d in active(m)] == [(97.0, "active")]
    return m


def test_density_pushed_out_of_the_topic_depth_is_not_called_pulled():
    """orderbook.N carries N levels a side: when a new level enters nearer the mid, the farthest
    is deleted from the stream although it still rests in the market."""
    m = _edge_setup(depth=5)
    m.feed(0, book("X", 2, [("99.5", "1"), ("97.0", "0")], [], ts=1100, depth=5))
    m.feed(0, book("X", 3, [("99.4", "1"), ("97.5", "0")], [], ts=2000, depth=5))
    assert states(m) == [(97.0, "out_of_depth")]


def test_density_cancelled_at_the_edge_of_a_full_depth_is_pulled():
    """Cancelled at the far edge: the next deeper level enters the window, so it was inside."""
    m = _edge_setup(depth=5)
    m.feed(0, book("X", 2, [("97.0", "0"), ("96.5", "1")], [], ts=1100, depth=5))
    m.feed(0, book("X", 3, [("98.9", "1.1")], [], ts=2000, depth=5))
    assert states(m) == [(97.0, "pulled")]


def test_density_removed_from_a_book_thinner_than_the_depth_is_pulled():
    m = _edge_setup(depth=50)
    m.feed(0, book("X", 2, [("99.5", "1"), ("97.0", "0")], [], ts=1100, depth=50))
    m.feed(0, book("X", 3, [("98.9", "1.1")], [], ts=2000, depth=50))
    assert states(m) == [(97.0, "pulled")]


def _full_merge_listing(tr, due, now_ms):
    """The ended part of a listing the long way (as rows() did before it merged only the back):
    the whole ended list with the due densities merged in, cut at the keep period and at the
    n-th most recent end time (ties widened), then newest first."""
    from bisect import bisect_left
    from heapq import merge

    order = lambda d: (d.ended_ms, d.side, d.price)  # noqa: E731
    merged = list(merge(tr.ended, sorted(due, key=order), key=order))
    n = tr.list_max
    start = max(bisect_left(merged, now_ms - tr.keep_ended_ms, key=lambda d: d.ended_ms), len(merged) - n)
    if start < len(merged):
        start = bisect_left(merged, merged[start].ended_ms, key=lambda d: d.ended_ms)
    return sorted(merged[start:], key=lambda d: (-d.ended_ms, d.side, d.price))[:n]


_ended_spec = st.tuples(st.integers(0, 40), st.sampled_from([Side.BID, Side.ASK]), st.integers(95, 105))


@settings(max_examples=300, deadline=None)
@given(ended=st.lists(_ended_spec, max_size=40), due=st.lists(_ended_spec, max_size=6),
       n=st.integers(0, 8), keep=st.integers(0, 30), now=st.integers(0, 60))
def test_recent_ended_merges_only_the_back_yet_lists_what_a_full_merge_lists(ended, due, n, keep, now):
    """rows() merges the due ending densities into the back of the ended list only; the result
    (the very objects, in order, with the fates of the due ones) must be the full merge's,
    including ties of end time, side and price across the two lists."""
    from bybitmon.core.densities import Density, DensityTracker

    def dens(spec, state):
        ms, side, price = spec
        return Density(side, float(price), 1.0, float(price), 1.0, 0, 1.0, traded=float(ms % 3), decrease=2.0,
                       state=state, ended_ms=ms)

    tr = DensityTracker(x=5.0, list_max=n, keep_ended_ms=keep)
    tr.ended = sorted((dens(s, DensityState.PULLED) for s in ended), key=lambda d: (d.ended_ms, d.side, d.price))
    due_d = [dens(s, DensityState.ENDING) for s in due]
    want = _full_merge_listing(tr, list(due_d), now)
    got, fates = tr._recent_ended(list(due_d), now, n)
    assert [id(d) for d in got] == [id(d) for d in want]
    assert {i: f for i, f in fates.items() if i in {id(d) for d in got}} == {
        id(d): d.fate() for d in got if d in due_d}


def test_json_rows_write_what_rows_say_and_serialize_an_ended_density_once():
    """--json writes json_rows(): at every check it must serialize to the bytes of rows() as
    dicts, and an ended density's object is made once and then reused (the same Fragment)."""
    import orjson

    from bybitmon.core.densities import density_json
    from bybitmon.sim.market import MarketSimulator

    m = Monitor("linear", density_x=3.0)
    seen: dict[int, object] = {}
    reused = checks = 0
    for i, (ts, raw) in enumerate(MarketSimulator(["BTCUSDT", "ETHUSDT"], seed=4).frames(120_000)):
        m.feed(ts * 1_000_000, raw)
        if i % 150 == 0:
            for st in m.states.values():
                tr = st.densities
                got = tr.json_rows(m.now_ms)
                assert orjson.dumps(got) == orjson.dumps([density_json(*r) for r in tr.rows(m.now_ms)])
                for obj in got:
                    if isinstance(obj, orjson.Fragment):
                        reused += seen.get(id(obj)) is obj
                        seen[id(obj)] = obj
                checks += 1
    assert checks > 100 and reused > 100


def test_a_scan_that_finds_nothing_settled_skips_what_changes_nothing():
    """Most 100 ms scans come after no delta touched a level near a threshold and skip the
    side loops (DensityTracker._settled). A tracker that never skips them must show the same
    densities at every snapshot of a long simulated market (thresholds moving, densities
    appearing, eaten and pulled)."""
    import orjson

    from bybitmon.core.densities import DensityTracker
    from bybitmon.sim.market import MarketSimulator

    settled = {"yes": 0, "no": 0}

    class Counting(DensityTracker):
        def _settled(self, book):
            r = DensityTracker._settled(self, book)
            settled["yes" if r else "no"] += 1
            return r

    class FullScans(DensityTracker):
        def _settled(self, book):
            return False

    def run(tracker_class) -> list[bytes]:
        m = Monitor("linear", density_x=3.0)
        for s in ("BTCUSDT", "ETHUSDT"):
            m.state(s).densities = tracker_class(3.0)
        out = []
        for i, (ts, raw) in enumerate(MarketSimulator(["BTCUSDT", "ETHUSDT"], seed=11).frames(90_000)):
            m.feed(ts * 1_000_000, raw)
            if i % 50 == 0:
                for st in m.states.values():
                    tr = st.densities
                    out.append(orjson.dumps([tr.rows(m.now_ms), sorted(tr.thresholds.items()),
                                             sorted(tr.medians.items())], option=orjson.OPT_NON_STR_KEYS))
        return out

    assert run(Counting) == run(FullScans)
    assert settled["yes"] > 100 and settled["no"] > 100


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from([Side.BID, Side.ASK]), st.sampled_from([1.0, 2.5, 3.0])),
                max_size=40))
def test_ended_densities_are_kept_in_end_order_as_insort_keeps_them(ends):
    """The ended list is in (ended_ms, side, price) order, each new one after its equals, as
    ``insort`` with that key puts it: densities decided after their grace often go a little
    before the newest, and ties (same ms, side and price) keep their order of arrival."""
    from bisect import insort

    from bybitmon.core.densities import Density, DensityTracker, _ended_order

    tracker = DensityTracker()
    want: list = []
    for i, (t, side, price) in enumerate(ends):
        d = Density(side, price, float(i + 1), price * (i + 1), 5.0, 0, float(i + 1), ended_ms=t)
        tracker._record_ended(d)
        insort(want, d, key=_ended_order)
    assert [id(d) for d in tracker.ended] == [id(d) for d in want]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=40), st.integers(-2, 33))
def test_ended_search_is_bisect_by_end_time(ends, t):
    """``_ended_from`` (a binary search on end times, typed when compiled) is bisect_left with
    the end time as key, ties and bounds included."""
    from bisect import bisect_left

    from bybitmon.core.densities import Density, _ended_from

    ended = [Density("bid", 1.0 + i, 1.0, 1.0, 5.0, 0, 1.0, ended_ms=e) for i, e in enumerate(sorted(ends))]
    assert _ended_from(ended, t) == bisect_left(ended, t, key=lambda d: d.ended_ms)
