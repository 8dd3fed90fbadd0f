"""Hostile input at the core's edge: the clock, memory bounds, numbers, windows, the facade.

Each test feeds what a hostile server or file could send through ``Monitor.feed`` and
``parse_frame`` and checks the numbers against a brute-force computation.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import orjson
import pytest

from bybitmon.core.activity import MAX_DURATION_MS, TradeActivity, TradeWindow, parse_window
from bybitmon.core.events import BadFrame, Trade, TradeBatch
from bybitmon.core.monitor import MAX_JUMP_MS, MAX_LEAD_MS, Monitor
from bybitmon.core.protocol import MAX_PRICE, MAX_SIZE, TS_MAX_MS, BadReason, parse_frame
from bybitmon.errors import UsageError

from frames import book, trades

T0 = 1_767_225_600_000  # 2026-01-01, ms
Y2100 = 4_102_444_800_000


def ticker(ts: int, symbol: str = "BTCUSDT") -> bytes:
    return orjson.dumps({"topic": f"tickers.{symbol}", "type": "snapshot", "ts": ts, "data": {}})


# -- the clock ------------------------------------------------------------------------------


def test_a_frame_from_the_year_2100_cannot_freeze_the_windows():
    """Live (receive times known): a ts more than MAX_LEAD_MS ahead of its receive time is taken
    at the receive time and counted, so the trades that follow still count."""
    m = Monitor("linear", window_ms=60_000)
    recv = lambda ms: ms * 1_000_000  # noqa: E731
    m.feed(recv(T0), trades("BTCUSDT", [(T0, "Buy", 100.0, 1, "a")]))
    m.feed(recv(T0 + 10), trades("BTCUSDT", [(Y2100, "Buy", 100.0, 1, "w")], ts=Y2100))
    for i in range(1, 6):
        m.feed(recv(T0 + i * 1000), trades("BTCUSDT", [(T0 + i * 1000, "Sell", 100.0, 2, f"t{i}")]))
    snap = m.snapshot("BTCUSDT")
    assert snap.ts == T0 + 5000
    assert snap.trades.count == 6          # a and t1..t5; the year-2100 trade is not due yet
    assert snap.trades.sell_volume == 10.0
    assert snap.health.clock_jumps == 1


def test_wild_ts_on_other_topics_is_bounded_too():
    m = Monitor("linear", window_ms=10_000)
    m.feed(T0 * 1_000_000, trades("BTCUSDT", [(T0, "Buy", 100.0, 1, "a")]))
    m.feed((T0 + 7) * 1_000_000, ticker(Y2100))
    assert m.now_ms == T0 + 7 and m.clock_jumps == 1
    m.feed((T0 + MAX_LEAD_MS - 1) * 1_000_000, ticker(T0 + 2 * MAX_LEAD_MS - 1))  # a lead within the bound
    assert m.now_ms == T0 + 2 * MAX_LEAD_MS - 1 and m.clock_jumps == 1
    m.feed((T0 + 2 * MAX_LEAD_MS) * 1_000_000, trades("BTCUSDT", [(T0 + 2 * MAX_LEAD_MS, "Buy", 100.0, 3, "b")]))
    assert m.snapshot("BTCUSDT").trades.count == 1 and m.snapshot("BTCUSDT").trades.buy_volume == 3.0


def test_without_receive_times_a_lone_jump_is_ignored_and_a_confirmed_one_taken():
    """Captures carry no receive time: one wild frame does not move the clock; two in a row (a
    real gap in the capture) do."""
    m = Monitor("linear", window_ms=10_000)
    m.feed(0, trades("BTCUSDT", [(T0, "Buy", 100.0, 1, "a")]))
    m.feed(0, ticker(Y2100))
    m.feed(0, trades("BTCUSDT", [(T0 + 1000, "Buy", 100.0, 1, "b")]))
    snap = m.snapshot("BTCUSDT")
    assert (snap.ts, snap.trades.count, snap.health.clock_jumps) == (T0 + 1000, 2, 1)
    later = T0 + MAX_JUMP_MS + 5000
    m.feed(0, ticker(later))
    assert m.now_ms == T0 + 1000
    m.feed(0, trades("BTCUSDT", [(later + 1, "Sell", 100.0, 4, "c")]))
    snap = m.snapshot("BTCUSDT")
    assert (snap.ts, snap.trades.count, snap.trades.sell_volume) == (later + 1, 1, 4.0)


def test_acks_and_pongs_with_a_future_ts_change_nothing():
    m = Monitor("linear", window_ms=1_000)
    m.feed(T0 * 1_000_000, trades("BTCUSDT", [(T0, "Buy", 100.0, 1, "a")]))
    for raw in ('{"op":"pong","ts":%d}' % Y2100, '{"success":true,"op":"subscribe","ts":%d}' % Y2100,
                '{"ret_msg":"pong","ts":%d}' % Y2100, '{"x":1,"ts":%d}' % Y2100):
        m.feed(T0 * 1_000_000, raw)
    snap = m.snapshot("BTCUSDT")
    assert (snap.ts, snap.trades.count, snap.health.clock_jumps, snap.health.bad_frames) == (T0, 1, 0, 0)


@pytest.mark.parametrize("seed", range(8))
def test_trade_counts_under_wild_stamps_match_a_brute_force_clock(seed):
    """Random trade streams with wild frames mixed in: the window holds exactly the trades a
    brute force finds, with the clock computed from the documented rule."""
    rng = random.Random(seed)
    window = rng.choice([1_000, 5_000, 60_000])
    m = Monitor("linear", window_ms=window)
    now = None
    held: list[tuple[int, bool, Decimal]] = []
    t = T0
    for i in range(300):
        t += rng.randrange(0, 400)
        recv_ms = t + rng.randrange(0, 50)
        if rng.random() < 0.05:
            ts = rng.choice([Y2100, t + 10**9, TS_MAX_MS - 1, t + MAX_LEAD_MS + rng.randrange(1, 10**6)])
            raw = ticker(ts)
        else:
            ts = t
            items = [(t - rng.randrange(0, 3 * window), rng.choice(["Buy", "Sell"]), 100.0,
                      rng.choice(["0.001", "1", "2.5", "7"]), f"id{i}.{k}") for k in range(rng.randrange(1, 4))]
            raw = trades("BTCUSDT", items, ts=ts)
            held += [(T, side == "Buy", Decimal(v)) for T, side, _, v, _ in items]
        bounded = ts if ts <= recv_ms + MAX_LEAD_MS else recv_ms
        now = bounded if now is None else max(now, bounded)
        m.feed(recv_ms * 1_000_000, raw)
        if rng.random() < 0.2 or i == 299:
            live = [(b, v) for T, b, v in held if now - window < T <= now]
            snap = m.snapshot("BTCUSDT")
            assert snap.ts == now
            assert snap.trades.count == len(live)
            assert snap.trades.buy_volume == float(sum((v for b, v in live if b), Decimal(0)))
            assert snap.trades.sell_volume == float(sum((v for b, v in live if not b), Decimal(0)))


# -- memory bounds --------------------------------------------------------------------------


def test_trade_window_is_bounded_and_counts_what_it_drops():
    """At max_held the oldest retained trade goes first, then new trades are refused; both are
    counted, and the primary window stays exact while only retained trades were dropped."""
    w = TradeWindow(window_ms=1_000, retention_ms=10_000, max_held=50)
    rng = random.Random(3)
    accepted = []
    for i in range(400):
        T = T0 + i * 20
        tr = Trade(T, rng.random() < 0.5, 100.0, 1.0, "1", f"i{i}")
        w.add(tr, T)
        accepted.append(tr)
        assert len(w) <= 50
    now = T0 + 399 * 20
    in_window = [t for t in accepted if now - 1_000 < t.ts_ms <= now]
    s = w.stats(now)
    assert s.count == len(in_window) == 50
    assert s.buy_volume == sum(t.is_buy for t in in_window)
    # Retained trades are dropped first: the longer window lost them, and says so.
    assert w.stats(now, 10_000).count == 50 and w.overflow == 350


def test_trade_window_refuses_new_trades_when_only_the_window_itself_is_held():
    w = TradeWindow(window_ms=60_000, max_held=10)
    for i in range(25):
        w.add(Trade(T0, True, 1.0, 1.0, "1", f"x{i}"), T0)
    s = w.stats(T0)
    assert (s.count, w.overflow, len(w)) == (10, 15, 10)


def test_symbols_beyond_the_limit_are_bad_frames_not_state():
    m = Monitor("linear", max_symbols=3)
    for i in range(50):
        m.feed(0, trades(f"SYM{i}", [(T0 + i, "Buy", 1.0, 1, "a")]))
    assert m.symbols == ["SYM0", "SYM1", "SYM2"]
    assert m.bad_frames == 47 and m.bad_reasons == {BadReason.UNKNOWN_SYMBOL: 47}


def test_book_levels_are_bounded_nearest_the_mid_kept():
    from bybitmon.core.book import MAX_BOOK_LEVELS

    n = MAX_BOOK_LEVELS + 700
    bids = [(f"{10_000 - i * 0.5:.1f}", "1") for i in range(n)]
    m = Monitor("linear")
    m.feed(0, book("BTCUSDT", 1, bids, [("10000.5", "2")], snapshot=True, ts=T0))
    st = m.states["BTCUSDT"]
    assert len(st.book.bids) == MAX_BOOK_LEVELS
    assert st.book.bid_px[0] == 10_000 - (MAX_BOOK_LEVELS - 1) * 0.5   # the farthest kept
    assert m.snapshot("BTCUSDT").health.overflow == 700
    assert m.snapshot("BTCUSDT").book.best_bid == 10_000.0


def test_bad_reasons_stay_bounded_whatever_the_bad_values():
    """Ten thousand different bad values: a handful of reasons, a few samples each."""
    m = Monitor("linear")
    for i in range(10_000):
        m.feed(0, trades("BTCUSDT", [(T0, "Buy", 1.0, f"-{i}.5", "a")]))
        m.feed(0, b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"b":"%d"}}' % i)
    assert m.bad_frames == 20_000
    assert set(m.bad_reasons) == {BadReason.OUT_OF_RANGE, BadReason.MALFORMED_BOOK}
    assert all(len(v) <= 3 for v in m.bad_samples.values())
    assert sum(len(k) for k in m.bad_reasons) < 100


# -- numbers ---------------------------------------------------------------------------------

HOSTILE = [
    trades("BTCUSDT", [(T0, "Buy", "1e308", "1", "a")]),
    trades("BTCUSDT", [(T0, "Buy", "100", "1e308", "a")]),
    trades("BTCUSDT", [(T0, "Buy", "100", "nan", "a")]),
    trades("BTCUSDT", [(T0, "Buy", "inf", "1", "a")]),
    trades("BTCUSDT", [(T0, "Buy", "100", "-1", "a")]),
    trades("BTCUSDT", [(T0, "Buy", "0", "1", "a")]),
    trades("BTCUSDT", [(T0, "Buy", "-5", "1", "a")]),
    trades("BTCUSDT", [(10**15, "Buy", "100", "1", "a")], ts=T0),
    trades("BTCUSDT", [(-1, "Buy", "100", "1", "a")], ts=T0),
    trades("BTCUSDT", [(T0, "Buy", "100", "1", "a")], ts=10**16),
    trades("BTCUSDT", [(T0, "Buy", "1" * 500, "1", "a")]),
    trades("BTCUSDT", [(T0, "Buy", "100", "1", "a" * 1000)]),
    book("BTCUSDT", 1, [("1e308", "1")], [("1e309", "1")], snapshot=True, ts=T0),
    book("BTCUSDT", 1, [("100", "1e308"), ("99", "1e308")], [("101", "1")], snapshot=True, ts=T0),
    book("BTCUSDT", 1, [("100", "1")], [("101", "NaN")], snapshot=True, ts=T0),
    book("BTCUSDT", 1, [("0", "1")], [("101", "1")], snapshot=True, ts=T0),
    book("BTCUSDT", 1, [("100", "1")], [("101", "1")], snapshot=True, ts=-5),
    book("BTCUSDT", 1, [("100", "1")], [("101", "1")], snapshot=True, ts=32_503_680_000_000),
    book("BTCUSDT", -1, [("100", "1")], [("101", "1")], snapshot=True, ts=T0),
    book("BTCUSDT", 1, [("100", "1")], [("101", "1")], snapshot=True, ts=T0, cts=10**17),
    book("BTCUSDT", 1, [("100", "1")], [("101", "1")], snapshot=True, ts=T0, seq=-3),
    book("BTC\x1b[31mUSDT", 1, [("100", "1")], [("101", "1")], snapshot=True, ts=T0),
    trades("BTC\x1b]0;pwned\x07", [(T0, "Buy", "100", "1", "a")]),
    ticker(10**17),
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_out_of_range_numbers_make_a_counted_bad_frame(raw):
    """Through parse_frame and Monitor.feed: a bad frame, counted, nothing applied, no clock moved."""
    assert type(parse_frame(raw, 1)) is BadFrame
    m = Monitor("linear")
    m.feed(T0 * 1_000_000, trades("ETHUSDT", [(T0, "Buy", "10", "1", "z")]))
    m.feed(T0 * 1_000_000, raw)
    assert m.bad_frames == 1 and m.symbols == ["ETHUSDT"] and m.now_ms == T0
    m.snapshot("ETHUSDT").to_json()


def test_two_huge_trades_and_huge_levels_never_overflow_a_snapshot():
    """The old crash: two 1e308 trades (or levels in the band) raised OverflowError in the sums."""
    m = Monitor("linear", bps=1e6)
    m.feed(0, trades("BTCUSDT", [(T0, "Buy", "100", "1e308", "a"), (T0, "Buy", "100", "1e308", "b")]))
    m.feed(0, book("BTCUSDT", 1, [("100", "1e308"), ("99", "1e308")], [("101", "1")], snapshot=True, ts=T0))
    big = f"{MAX_SIZE:.0f}"
    m.feed(0, trades("BTCUSDT", [(T0, "Buy", f"{MAX_PRICE:.0f}", big, f"m{i}") for i in range(200)]))
    m.feed(0, book("BTCUSDT", 1, [(f"{MAX_PRICE - i:.0f}", big) for i in range(1, 200)], [(f"{MAX_PRICE:.0f}", big)],
                   snapshot=True, ts=T0))
    snap = m.snapshot("BTCUSDT")
    assert m.bad_frames == 2
    assert snap.trades.count == 200 and snap.trades.buy_volume == pytest.approx(200 * MAX_SIZE)
    assert snap.book.bid_notional == pytest.approx(float(sum(Decimal(f"{MAX_PRICE - i:.0f}") * Decimal(big)
                                                           for i in range(1, 200))))
    snap.to_json()


_NUMBERS = ["1", "0.5", "100", "1e12", "1e12000", "1e308", "1e-400", "0", "-0", "-1", "nan", "NaN", "inf",
            "-inf", "Infinity", "999999999999", "1000000000001", "1e15", "1e16", "0.00000001", "1_000",
            " 7 ", "0x10", "", "1.", ".5", "1e3", "+5", "١٢"]


@pytest.mark.parametrize("seed", range(4))
def test_number_checks_agree_with_a_decimal_brute_force(seed):
    """Random price/size strings (edges and random magnitudes) in trade and book frames: a frame
    is accepted exactly when every number is a finite decimal within the documented bounds."""
    rng = random.Random(seed)
    pool = _NUMBERS + [f"{rng.uniform(0, 1):.8f}e{rng.randrange(-12, 20)}" for _ in range(40)]

    def ok(s: str, lo_open: bool, hi: Decimal) -> bool:
        try:
            d = Decimal(s.replace("_", ""))
            f = float(s)
        except Exception:
            return False
        if not d.is_finite():
            return False
        return (f > 0 if lo_open else d >= 0) and d <= hi

    for _ in range(400):
        p, v = rng.choice(pool), rng.choice(pool)
        want = ok(p, True, Decimal("1e12")) and ok(v, False, Decimal("1e15"))
        ev = parse_frame(trades("BTCUSDT", [(T0, "Sell", p, v, "i")]), 0)
        assert (type(ev) is TradeBatch) == want, (p, v, ev)
        ev = parse_frame(book("BTCUSDT", 1, [(p, v)], [], snapshot=True, ts=T0), 0)
        assert (type(ev) is not BadFrame) == want, (p, v, ev)


# -- windows -------------------------------------------------------------------------------


@pytest.mark.parametrize("text,ms", [("60s", 60_000), ("60", 60_000), (60, 60_000), (1.5, 1_500), ("500ms", 500),
                                     ("5m", 300_000), ("1h", 3_600_000), ("1.5m", 90_000), (" 10 s ", 10_000)])
def test_one_duration_grammar_bare_numbers_are_seconds(text, ms):
    assert parse_window(text) == ms


@pytest.mark.parametrize("text", ["0", 0, "0s", "0ms", -5, "-5s", "0.0001s", "abc", "", "5 parsecs", "1e3s",
                                  "9" * 400 + "h", float("nan"), float("inf"), "٣s", "²s", True, None, "367d",
                                  f"{MAX_DURATION_MS + 1}ms"])
def test_bad_durations_are_one_line_usage_errors(text):
    with pytest.raises(UsageError) as err:
        parse_window(text, what="interval")
    assert "\n" not in str(err.value) and str(err.value).startswith("bad interval")


def test_the_fault_grammar_can_require_a_unit():
    assert parse_window("30s", what="fault interval", bare_seconds=False) == 30_000
    for text in ("0.5", 5):
        with pytest.raises(UsageError, match="give a unit"):
            parse_window(text, what="fault interval", bare_seconds=False)


def test_seed_getters_read_a_bare_number_as_seconds_and_reject_empty_windows():
    """get_tpm(sym, 60) is the 60 s window (it was 60 ms: 1000 instead of 600 trades/min)."""
    a = TradeActivity("60s", retention="5m")
    a.add("X", tuple(Trade(T0 - i * 100, True, 1.0, 1.0, "1", f"t{i}") for i in range(600)), T0)
    assert a.get_tpm("X", 60) == a.get_tpm("X", "60s") == 600.0
    for bad in (0, -60, "0s", "-1s"):
        with pytest.raises(UsageError):
            a.get_tpm("X", bad)


# -- the facade ----------------------------------------------------------------------------


def test_facade_windows_go_through_the_one_parser():
    from bybitmon.compat.facade import TradesAggregator

    agg = TradesAggregator(category="linear", url="ws://127.0.0.1:9")
    for bad in (0, -1, "0s", "soon"):
        with pytest.raises(UsageError):
            agg.get_tpm("BTCUSDT", bad)
    assert agg.get_tpm("BTCUSDT", 60) == 0.0  # not started: no data, no error


def test_slow_async_callbacks_are_bounded_and_cancelled_on_stop():
    """A callback slower than the stream: at most MAX_PENDING_CALLBACKS tasks, the rest dropped
    and counted; stop() leaves nothing pending."""
    from bybitmon.compat.facade import MAX_PENDING_CALLBACKS, BybitWebSocketClient

    started = []

    async def slow(ev):
        started.append(ev)
        await asyncio.sleep(3600)

    async def scenario():
        ws = BybitWebSocketClient(on_trade=slow, category="linear", url="ws://127.0.0.1:9")
        ev = parse_frame(trades("BTCUSDT", [(T0, "Buy", "1", "1", "a")]), 0)
        for _ in range(1000):
            ws._dispatch(ev)
        await asyncio.sleep(0)
        tasks = set(ws._tasks)
        assert len(tasks) == MAX_PENDING_CALLBACKS and ws.dropped_callbacks == 1000 - MAX_PENDING_CALLBACKS
        await ws.stop()
        assert all(t.cancelled() for t in tasks) and not ws._tasks
        return len(started)

    assert asyncio.run(scenario()) == MAX_PENDING_CALLBACKS


# -- reading is pure -----------------------------------------------------------------------


def test_snapshot_of_an_unknown_symbol_creates_nothing():
    m = Monitor("linear")
    m.feed(0, trades("BTCUSDT", [(T0, "Buy", "10", "1", "a")]))
    snap = m.snapshot("NOPE")
    assert m.symbols == ["BTCUSDT"] and snap.health.frames == 0 and not snap.book.ready
    assert snap.to_json() == m.snapshot("NOPE").to_json()


def test_reading_changes_nothing_and_advance_changes_no_number():
    """On a simulated market with densities ending all the time: a snapshot taken without
    advance() equals the one after it (ending densities past their grace shown with their
    fate, windows read off the heaps), and reading leaves every density's fields as they were."""
    from bybitmon.core.densities import Density
    from bybitmon.sim import MarketSimulator

    def astuple(d: Density) -> tuple:
        return tuple(getattr(d, name) for name in Density.__slots__)

    a, b = Monitor("linear", window_ms=10_000, density_x=3.0), Monitor("linear", window_ms=10_000, density_x=3.0)
    sim = MarketSimulator(["BTCUSDT", "ETHUSDT", "SOLUSDT"], seed=5, plant_every_s=3.0)
    compared = projected = 0
    for i, (ts, raw) in enumerate(sim.frames(60_000)):
        a.feed(ts * 1_000_000, raw)
        b.feed(ts * 1_000_000, raw)
        if i % 53 == 0:
            for s in a.symbols:
                dens = a.states[s].densities
                before = [astuple(d) for side in dens.active.values() for d in side.values()]
                due = sum(d.ended_ms + dens.grace_ms <= a.now_ms for side in dens.ending.values() for d in side.values())
                first = a.snapshot(s).to_json()
                assert [astuple(d) for side in dens.active.values() for d in side.values()] == before
                assert a.snapshot(s).to_json() == first
                b.advance()
                assert b.snapshot(s).to_json() == first
                compared += 1
                projected += due
    assert compared > 100 and projected > 0


def test_feed_until_stops_at_the_frame_that_reaches_the_clock():
    """feed_until feeds pairs until the clock reaches the bound (that frame included) or the
    input ends, and leaves the Monitor exactly as feeding the same frames one by one does."""
    from bybitmon.sim import MarketSimulator

    pairs = [(ts * 1_000_000, raw) for ts, raw in MarketSimulator(["BTCUSDT", "ETHUSDT"], seed=3).frames(20_000)]
    a, b = Monitor("linear"), Monitor("linear")
    it = iter(pairs)
    bound = pairs[0][0] // 1_000_000 + 5_000
    n = a.feed_until(it, bound)
    expected = next(i for i, (recv, _) in enumerate(pairs) if recv // 1_000_000 >= bound) + 1
    assert n == expected and a.frames == n and a.now_ms >= bound
    for recv, raw in pairs[:n]:
        b.feed(recv, raw)
        assert b.now_ms is not None
    assert b.now_ms == a.now_ms and b.now_ms >= bound
    assert b.now_ms is not None and max(r // 1_000_000 for r, _ in pairs[: n - 1]) < bound  # not one frame later
    rest = a.feed_until(it, 2**62)  # a bound never reached: to the end
    assert rest == len(pairs) - n and a.feed_until(it, 2**62) == 0
    for recv, raw in pairs[n:]:
        b.feed(recv, raw)
    for s in ("BTCUSDT", "ETHUSDT"):
        assert a.snapshot(s).to_json() == b.snapshot(s).to_json()
