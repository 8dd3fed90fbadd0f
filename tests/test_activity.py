from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bybitmon.core.activity import TradeActivity, TradeWindow, parse_window, size_units
from bybitmon.errors import UsageError
from bybitmon.core.events import Trade


def tr(t: int, buy: bool, size: str, tid: str, price: float = 100.0) -> Trade:
    return Trade(t, buy, price, float(size), size, tid)


@pytest.mark.parametrize("text,ms", [("10s", 10_000), ("60s", 60_000), ("5m", 300_000), ("1h", 3_600_000),
                                      ("500ms", 500), ("2", 2000), ("1.5s", 1500)])
def test_windows_parse(text, ms):
    assert parse_window(text) == ms


@pytest.mark.parametrize("text", ["", "abc", "0s", "-5s", "5 parsecs", "1d"])
def test_bad_windows_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_window(text)


@pytest.mark.parametrize("s,units", [("1", 10**12), ("0.001", 10**9), ("0.000000000001", 1), ("12.5", 125 * 10**11),
                                     ("1e-3", 10**9), ("5.", 5 * 10**12)])
def test_size_units_are_exact(s, units):
    assert size_units(s) == units


def test_window_bounds_exclude_start_and_include_now():
    w = TradeWindow(10_000)
    w.add(tr(1000, True, "1", "a"), 11_000)   # T == now - W: excluded
    w.add(tr(1001, True, "2", "b"), 11_000)   # just inside
    w.add(tr(11_000, False, "4", "c"), 11_000)  # T == now: included
    s = w.stats(11_000)
    assert s.count == 2 and s.buy_volume == 2.0 and s.sell_volume == 4.0
    assert s.tps == 0.2 and s.tpm == 12.0 and s.volume_delta == -2.0 and s.buy_sell_ratio == 0.5


def test_duplicate_trade_id_counts_once():
    w = TradeWindow(60_000)
    assert w.add(tr(1000, True, "1", "a"), 1000)
    assert not w.add(tr(1000, True, "1", "a"), 1000)
    assert w.stats(1000).count == 1


def test_empty_window_reports_zero_volume_delta():
    """Adding and removing 0.1 many times leaves exactly 0, not float residue."""
    w = TradeWindow(1000)
    for i in range(10):
        w.add(tr(i, True, "0.1", f"b{i}"), i)
        w.add(tr(i, False, "0.3", f"s{i}"), i)
    s = w.stats(5000)
    assert s.count == 0 and s.buy_volume == 0.0 and s.sell_volume == 0.0 and s.volume_delta == 0.0
    assert s.buy_sell_ratio is None


def test_sums_are_correctly_rounded():
    w = TradeWindow(60_000)
    for i in range(10):
        w.add(tr(i, True, "0.1", f"b{i}"), 10)
    assert w.stats(10).buy_volume == 1.0  # float addition would give 0.9999999999999999


def test_future_trade_counts_once_clock_reaches_it():
    w = TradeWindow(60_000)
    w.add(tr(5000, True, "1", "a"), 1000)
    assert w.stats(1000).count == 0
    assert w.stats(5000).count == 1


def test_out_of_order_trades_leave_the_window_by_fill_time():
    w = TradeWindow(10_000)
    w.add(tr(9000, True, "1", "late"), 9000)
    w.add(tr(2000, True, "1", "early"), 9000)
    assert w.stats(9000).count == 2
    assert w.stats(12_500).count == 1
    assert w.stats(19_000).count == 0


def test_memory_is_bounded_by_the_window():
    w = TradeWindow(1000)
    for i in range(100_000):
        w.add(tr(i, bool(i & 1), "1", str(i)), i)
    assert len(w) <= 1001 and len(w._ids) <= 1001


def test_longer_windows_within_retention_are_answered():
    a = TradeActivity("60s", retention="5m")
    a.add("X", tuple(tr(t * 1000, True, "1", str(t)) for t in range(0, 300)), 299_000)
    assert a.get_tpm("X", "60s") == 60.0
    assert a.get_tps("X", "5m") == pytest.approx(300 / 300)
    assert a.get_tpm("X", "10s") == 60.0
    with pytest.raises(UsageError):
        a.get_tpm("X", "10m")
    assert a.get_tpm("UNKNOWN") == 0.0 and a.get_buy_sell_ratio("UNKNOWN") is None


def test_size_units_remembers_a_bounded_number_of_strings():
    """Converted sizes are remembered for the second reading (heat), never more than the bound
    (a stream of ever new size strings cannot grow it), and a remembered answer is the exact one."""
    from decimal import Decimal

    from bybitmon.core import activity

    for i in range(3 * activity._UNITS_SEEN_MAX):
        text = f"{i}.{i % 1000:03d}"
        want = int(Decimal(text) * activity.UNITS_PER_BASE)
        assert size_units(text) == want and size_units(text) == want
        assert len(activity._UNITS_SEEN) <= activity._UNITS_SEEN_MAX
    with pytest.raises(ValueError):
        size_units("1e")
    assert "1e" not in activity._UNITS_SEEN


_steps = st.lists(st.tuples(st.integers(0, 400),                       # now advances by
                            st.lists(st.tuples(st.integers(-300, 300),  # fill time - now
                                               st.booleans(), st.integers(1, 9), st.integers(0, 30)),
                                     max_size=4)),
                  min_size=1, max_size=60)


@settings(max_examples=400, deadline=None)
@given(window=st.integers(1, 200), extra=st.sampled_from([0, 0, 1, 150]), steps=_steps)
def test_window_and_retention_match_a_brute_force_model(window, extra, steps):
    """TradeWindow against a list of held trades: a trade is held while its fill time is after
    now - retention, a duplicate while an earlier copy is held, and a window counts the held
    trades with now - window < T <= now. Fills before, inside and after the window, equal
    times, re-sent ids and a retention equal to the window (the default) or longer."""
    retention = window + extra
    w = TradeWindow(window, retention_ms=retention)
    held: list[tuple[int, bool, int, str]] = []   # (T, buy, units, id)
    now = 0
    for dt, batch in steps:
        now += dt
        held = [h for h in held if h[0] > now - retention]
        trades, want_fresh = [], []
        for off, buy, size, n in batch:
            tid = f"id{n}"
            t = tr(now + off, buy, str(size), tid)
            trades.append(t)
            if any(h[3] == tid for h in held):
                continue
            want_fresh.append(t)
            if t.ts_ms > now - retention:
                held.append((t.ts_ms, buy, size * 10**12, tid))
        assert w.add_many(trades, now) == want_fresh
        for at in (now, now + dt // 2):  # at the window's end, and later without moving it
            for span in {window, retention}:
                got = w.stats(at, span)
                inside = [h for h in held if at - span < h[0] <= at]
                assert got.count == len(inside)
                assert got.buy_volume == sum(h[2] for h in inside if h[1]) / 10**12
                assert got.sell_volume == sum(h[2] for h in inside if not h[1]) / 10**12
        assert len(w._ids) == len({h[3] for h in held}) == len(w)


def test_window_front_is_cut_off_and_late_trades_slot_in_over_a_long_run():
    """Thousands of trades through a short window: the in-order list's front is cut off again
    and again (a list of live entries only, not of all trades ever seen), and trades that come
    late take their place in order; the counts stay the brute-force ones throughout."""
    import random

    rnd = random.Random(5)
    w = TradeWindow(200)
    held: list[tuple[int, bool, int]] = []
    now = 0
    for i in range(5000):
        now += rnd.randint(0, 3)
        t = now - (rnd.randint(1, 150) if i % 7 == 0 else 0)  # every 7th comes late
        buy = rnd.random() < 0.5
        w.add_many([tr(t, buy, "1", f"x{i}")], now)
        held = [h for h in held if h[0] > now - 200] + ([(t, buy, i)] if t > now - 200 else [])
        st_ = w.stats(now)
        assert st_.count == len(held)
        assert st_.buy_volume == sum(1 for h in held if h[1])
        assert len(w._active) - w._active_head == len(held)
        assert len(w._active) <= 2 * len(held) + 64


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30_000), st.booleans(), st.sampled_from(["1", "0.5", "2.25"])),
                min_size=1, max_size=300),
       st.integers(0, 2000), st.integers(20_000, 40_000))
def test_a_frame_of_many_late_trades_fills_the_window_as_one_by_one(trades, lead, now):
    """A frame whose trades come in any order (a hostile one: 200,000 newest first) is sorted
    into the window at once when more than a few are late, instead of one insertion each; the
    window must hold and count exactly what the same trades added one at a time give, and what
    a brute-force count of the trades in (now - W, now] gives."""
    frame = [tr(t, buy, size, f"id{i}") for i, (t, buy, size) in enumerate(trades)]
    whole, single = TradeWindow(10_000), TradeWindow(10_000)
    head = [tr(now - lead, True, "1", "first")]  # a trade already held, later than most
    whole.add_many(head, now)
    single.add_many(head, now)
    whole.add_many(frame, now)
    for t in frame:
        single.add_many([t], now)
    assert whole._active[whole._active_head:] == single._active[single._active_head:]
    assert whole._active[whole._active_head:] == sorted(whole._active[whole._active_head:])
    held = [t for t in head + frame if now - 10_000 < t.ts_ms <= now]
    s = whole.stats(now)
    assert s == single.stats(now)
    assert s.count == len(held)
    assert s.buy_volume == sum(float(t.size_str) for t in held if t.is_buy)
    assert s.sell_volume == sum(float(t.size_str) for t in held if not t.is_buy)
