from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bybitmon.core.book import MAX_BOOK_LEVELS, Applied, OrderBook
from bybitmon.core.protocol import parse_frame

from frames import book
from paths import fixture_lines


def apply(b: OrderBook, raw: bytes) -> Applied:
    return b.apply(parse_frame(raw, 0))


def fresh() -> OrderBook:
    b = OrderBook("X")
    assert apply(b, book("X", 10, [("100", "1"), ("99.5", "2")], [("101", "3"), ("102", "4")], snapshot=True)) is Applied.SNAPSHOT
    return b


def test_delta_before_snapshot_is_dropped_and_counted():
    b = OrderBook("X")
    assert apply(b, book("X", 5, [("100", "1")])) is Applied.DROPPED
    assert b.counters.dropped == 1 and not b.ready and not b.bids


def test_new_snapshot_replaces_book():
    b = fresh()
    apply(b, book("X", 50, [("90", "1")], [("91", "1")], snapshot=True))
    assert b.bids == {90.0: 1.0} and b.asks == {91.0: 1.0}
    assert b.counters.resets == 1 and b.update_id == 50


def test_zero_size_deletes_and_other_sizes_overwrite():
    b = fresh()
    assert apply(b, book("X", 11, [("100", "0"), ("99.5", "7"), ("99", "1")], [("103", "1")])) is Applied.DELTA
    assert b.bids == {99.5: 7.0, 99.0: 1.0}
    assert b.bid_px == [99.0, 99.5] and b.ask_px == [101.0, 102.0, 103.0]


def test_delete_of_absent_level_is_a_no_op():
    b = fresh()
    assert apply(b, book("X", 11, [("50", "0")])) is Applied.DELTA
    assert len(b.bids) == 2


def test_equal_price_strings_meet_at_one_level():
    b = fresh()
    apply(b, book("X", 11, [("99.50", "0")]))
    assert b.bids == {100.0: 1.0}


def test_stale_delta_is_dropped_and_counted():
    b = fresh()
    assert apply(b, book("X", 10, [("100", "9")])) is Applied.STALE
    assert apply(b, book("X", 3, [("100", "9")])) is Applied.STALE
    assert b.bids[100.0] == 1.0 and b.counters.stale == 2 and b.ready


def test_gap_marks_book_not_ready_until_snapshot():
    b = fresh()
    assert apply(b, book("X", 12, [("100", "9")])) is Applied.GAP
    assert not b.ready and b.counters.gaps == 1
    assert apply(b, book("X", 13, [("100", "9")])) is Applied.DROPPED
    apply(b, book("X", 20, [("100", "2")], [("101", "2")], snapshot=True))
    assert b.ready and b.bids == {100.0: 2.0}


def test_u_equal_1_resets_book_like_a_snapshot():
    b = fresh()
    assert apply(b, book("X", 1, [("10", "1")], [("11", "1")])) is Applied.SNAPSHOT
    assert b.bids == {10.0: 1.0} and b.counters.resets == 1 and b.ready


def test_crossed_book_is_counted_and_not_ready():
    b = fresh()
    assert apply(b, book("X", 11, [("101.5", "1")])) is Applied.CROSSED
    assert not b.ready and b.counters.crossed == 1


def test_spread_mid_and_depth_are_exact_on_a_small_book():
    b = fresh()
    assert b.best_bid == 100.0 and b.best_ask == 101.0 and b.mid == 100.5
    assert b.spread_bps == pytest.approx(1 / 100.5 * 1e4, rel=1e-12)
    d = b.depth(100)  # band 100.5 * (1 -/+ 0.01) = [99.495, 101.505]
    assert d.bid_depth == 3.0 and d.ask_depth == 3.0
    assert d.bid_notional == pytest.approx(100 * 1 + 99.5 * 2) and d.ask_notional == pytest.approx(303)
    assert d.imbalance == 0.0


def test_depth_band_bound_is_inclusive():
    b = OrderBook("X")
    # mid = 100, 50 bps -> bid bound 99.5 and ask bound 100.5 exactly
    apply(b, book("X", 1, [("99.9", "1"), ("99.5", "2"), ("99.4", "4")], [("100.1", "1"), ("100.5", "2"), ("100.6", "8")], snapshot=True))
    d = b.depth(50)
    assert d.bid_depth == 3.0 and d.ask_depth == 3.0


def test_real_capture_books_hold_exactly_200_levels_and_never_cross():
    """Bybit sends levels leaving the window as explicit deletes: 200/200 after every frame."""
    books: dict[str, OrderBook] = {}
    oracle: dict[str, tuple[dict, dict]] = {}
    for line in fixture_lines("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson"):
        ev = parse_frame(line, 0)
        if not hasattr(ev, "update_id"):
            continue
        b = books.setdefault(ev.symbol, OrderBook(ev.symbol))
        assert b.apply(ev) in (Applied.SNAPSHOT, Applied.DELTA)
        assert len(b.bids) == 200 and len(b.asks) == 200
        assert b.best_bid < b.best_ask
        # plain dict rebuilt with Decimal keys alongside
        import orjson
        msg = orjson.loads(line)
        bids, asks = oracle.setdefault(ev.symbol, ({}, {}))
        if msg["type"] == "snapshot":
            bids.clear(); asks.clear()
        for side, levels in ((bids, msg["data"]["b"]), (asks, msg["data"]["a"])):
            for p, s in levels:
                if Decimal(s) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = Decimal(s)
        assert b.bids == {float(p): float(s) for p, s in bids.items()}
        assert b.asks == {float(p): float(s) for p, s in asks.items()}
    assert set(books) == {"BTCUSDT", "ETHUSDT"}


def test_crlf_history_file_builds_500_level_book():
    b = OrderBook("XRPUSDT")
    for line in fixture_lines("nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson"):
        assert b.apply(parse_frame(line.rstrip(b"\r"), 0)) in (Applied.SNAPSHOT, Applied.DELTA)
        assert len(b.bids) == 500 and len(b.asks) == 500


_BIG_PRICE = st.integers(1, 600).map(lambda i: i * 0.25)
_BIG_SIZE = st.one_of(st.just(0.0), st.sampled_from([0.5, 1.0, 7.0, 40.0]), st.floats(0.01, 100).map(lambda x: round(x, 2)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_BIG_PRICE, _BIG_SIZE), max_size=300),
       st.lists(st.tuples(_BIG_PRICE, _BIG_SIZE), min_size=257, max_size=900),
       st.sampled_from([0.0, 1.0, 20.0]))
def test_a_delta_of_many_changes_is_applied_as_one_by_one(snapshot, delta, touch_min):
    """A delta of more than 256 changes (a hostile frame can carry a million) is applied in one
    sort and merge, not level by level; the side must end as the same changes applied a few at a
    time would leave it: sizes, order, and which levels are noted for the density scan (repeats,
    deletions of absent prices and re-sets within the frame included). Runs on whichever core
    this process uses (both in CI)."""
    bulk, steps = BookSide_of(snapshot), BookSide_of(snapshot)
    for side in (bulk, steps):
        side.take(touch_min, False)  # notes from now on sizes >= touch_min
    bulk.update(delta)
    for i in range(0, len(delta), 8):
        steps.update(delta[i:i + 8])
    assert bulk.items() == steps.items() and [p for p, _ in bulk.items()] == sorted(p for p, _ in bulk.items())
    assert bulk.noted() == steps.noted()
    assert bulk.take(0.0, False) == steps.take(0.0, False)  # the noted levels themselves


def BookSide_of(pairs):
    """A book side of this process's core (the compiled one's C arrays, or the reference)."""
    side = OrderBook("X").bid
    side.load(pairs)
    return side


def test_a_snapshot_of_many_levels_in_any_order_loads_sorted():
    """A snapshot whose levels come in no order (hostile) is sorted once: the side holds each
    price once, its last non-zero size, in price order, trimmed to MAX_BOOK_LEVELS around the
    mid by the book."""
    import random

    rnd = random.Random(3)
    n = 200_000
    bids = [(f"{rnd.randrange(1, 10**6) / 100:.2f}", f"{rnd.randrange(1, 100)}") for _ in range(n)]
    asks = [(f"{10**4 + rnd.randrange(1, 10**6) / 100:.2f}", "1") for _ in range(n)]
    b = OrderBook("X")
    assert apply(b, book("X", 1, bids, asks, snapshot=True)) is Applied.SNAPSHOT
    want = {}
    for p, s in bids:
        want[float(p)] = float(s)
    kept = sorted(want)[-MAX_BOOK_LEVELS:]
    assert b.bid_px == kept and b.bids == {p: want[p] for p in kept}
    assert len(b.ask) == MAX_BOOK_LEVELS and b.ask_px == sorted(b.ask_px)
