"""Behaviour tests for bybitmon.sim.market.

Every book and trade property is checked against an independent brute-force client written
here: a plain ``{Decimal price: Decimal size}`` book per side, rebuilt from the emitted frame
text (a snapshot replaces the book; in a delta ``"0"`` deletes a level, anything else sets it).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bybitmon.errors import UsageError
from bybitmon.sim.market import MarketSimulator, PlantedOrder

SYMBOLS = ("BTCUSDT", "ETHUSDT")
START_MS = 1_767_225_600_000
FIVE_MIN_MS = 300_000
LINEAR_BOOK_KEYS = ["topic", "type", "ts", "data", "cts"]
BOOK_DATA_KEYS = ["s", "b", "a", "u", "seq"]
TRADE_FRAME_KEYS = ["topic", "type", "ts", "data"]
LINEAR_TRADE_KEYS = ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]
TICK_DIRECTIONS = {"PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick"}
ZERO = Decimal(0)
TICK = {"BTCUSDT": Decimal("0.1"), "ETHUSDT": Decimal("0.01")}


@dataclass
class TradeSeen:
    symbol: str
    ts: int
    T: int
    taker: str
    price: Decimal
    size: Decimal
    trade_id: str


@dataclass
class Replay:
    """What a correct client sees, plus every rule violation found on the way."""

    depth: int
    bids: dict[str, dict[Decimal, Decimal]] = field(default_factory=dict)
    asks: dict[str, dict[Decimal, Decimal]] = field(default_factory=dict)
    # Exact strings of the live levels, to compare byte-for-byte with true_book().
    bid_text: dict[str, dict[str, str]] = field(default_factory=dict)
    ask_text: dict[str, dict[str, str]] = field(default_factory=dict)
    book_frames: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    trades: list[TradeSeen] = field(default_factory=list)
    first_type: dict[str, str] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Trade -> next book frame: was the traded level republished, and with the size left over?
    traded_levels_republished: int = 0
    traded_levels_missing: int = 0
    traded_levels_exact: int = 0
    # Per symbol, since the last book frame: (book side, price) -> (size before, consumed).
    _consumed: dict[str, dict[tuple[str, Decimal], list[Decimal]]] = field(
        default_factory=lambda: defaultdict(dict))

    def level_size(self, symbol: str, side: str, price: Decimal) -> Decimal | None:
        book = (self.bids if side == "b" else self.asks)[symbol]
        return book.get(price)


def replay(frames: list[tuple[int, str]], depth: int = 50) -> Replay:
    """Rebuild every book from ``frames`` with Decimal and check the stream's rules."""
    rp = Replay(depth)
    last_ts = None
    last_seq = None
    for ts, text in frames:
        msg = json.loads(text)
        if last_ts is not None and ts < last_ts:
            rp.problems["ts"].append(f"ts went back {last_ts} -> {ts}")
        last_ts = ts
        if msg["ts"] != ts:
            rp.problems["ts"].append(f"tuple ts {ts} != frame ts {msg['ts']}")
        topic = msg["topic"]
        if topic.startswith("orderbook."):
            seq = msg["data"]["seq"]
            _apply_book(rp, msg)
        else:
            seq = msg["data"][0]["seq"]
            _apply_trades(rp, msg)
        if last_seq is not None and seq < last_seq:
            rp.problems["seq"].append(f"seq went back {last_seq} -> {seq}")
        last_seq = seq
    return rp


def _apply_book(rp: Replay, msg: dict) -> None:
    data = msg["data"]
    sym = data["s"]
    probs = rp.problems
    if list(msg) != LINEAR_BOOK_KEYS:
        probs["keys"].append(f"book keys {list(msg)}")
    if list(data) != BOOK_DATA_KEYS:
        probs["keys"].append(f"book data keys {list(data)}")
    if msg["topic"] != f"orderbook.{rp.depth}.{sym}":
        probs["topic"].append(msg["topic"])
    if not msg["ts"] - 3 <= msg["cts"] <= msg["ts"]:
        probs["cts"].append(f"cts {msg['cts']} vs ts {msg['ts']}")
    rp.first_type.setdefault(sym, msg["type"])
    frames = rp.book_frames[sym]
    if frames and data["u"] != frames[-1]["u"] + 1:
        probs["u"].append(f"{sym}: u {frames[-1]['u']} -> {data['u']}")
    frames.append({"ts": msg["ts"], "u": data["u"], "type": msg["type"], "b": data["b"], "a": data["a"]})

    # Did the levels traded since the last book frame come back in this one?
    consumed = rp._consumed.pop(sym, {})
    changed = {("b", Decimal(p)): Decimal(s) for p, s in data["b"]}
    changed.update({("a", Decimal(p)): Decimal(s) for p, s in data["a"]})
    for key, (before, used) in consumed.items():
        if key in changed:
            rp.traded_levels_republished += 1
            if changed[key] == before - used:
                rp.traded_levels_exact += 1
        else:
            rp.traded_levels_missing += 1

    if msg["type"] == "snapshot":
        rp.bids[sym], rp.asks[sym] = {}, {}
        rp.bid_text[sym], rp.ask_text[sym] = {}, {}
    elif msg["type"] != "delta":
        probs["type"].append(msg["type"])
    for side_key, book, text, descending in (("b", rp.bids[sym], rp.bid_text[sym], True),
                                             ("a", rp.asks[sym], rp.ask_text[sym], False)):
        prices = [Decimal(p) for p, _ in data[side_key]]
        if prices != sorted(prices, reverse=descending) or len(set(prices)) != len(prices):
            probs["order"].append(f"{sym} {side_key} not sorted: {data[side_key][:5]}")
        for p, s in data[side_key]:
            price = Decimal(p)
            if s == "0":
                if msg["type"] == "snapshot":
                    probs["size"].append(f"{sym} snapshot with a zero level {p}")
                book.pop(price, None)
                text.pop(p, None)
                continue
            size = Decimal(s)
            if size <= ZERO:
                probs["size"].append(f"{sym} live level {p} with size {s!r}")
            book[price] = size
            text[p] = s
    bids, asks = rp.bids[sym], rp.asks[sym]
    if len(bids) != rp.depth or len(asks) != rp.depth:
        probs["depth"].append(f"{sym} u={data['u']}: {len(bids)} bids, {len(asks)} asks")
    if bids and asks and max(bids) >= min(asks):
        probs["crossed"].append(f"{sym} u={data['u']}: bid {max(bids)} >= ask {min(asks)}")


def _apply_trades(rp: Replay, msg: dict) -> None:
    probs = rp.problems
    if list(msg) != TRADE_FRAME_KEYS or msg["type"] != "snapshot":
        probs["keys"].append(f"trade frame keys {list(msg)} type {msg.get('type')}")
    for tr in msg["data"]:
        if list(tr) != LINEAR_TRADE_KEYS:
            probs["keys"].append(f"trade keys {list(tr)}")
        sym = tr["s"]
        if msg["topic"] != f"publicTrade.{sym}":
            probs["topic"].append(msg["topic"])
        if tr["T"] > msg["ts"]:
            probs["trade_time"].append(f"T {tr['T']} after ts {msg['ts']}")
        if tr["L"] not in TICK_DIRECTIONS or tr["BT"] is not False or tr["RPI"] is not False:
            probs["trade_fields"].append(str(tr))
        if tr["S"] not in ("Buy", "Sell") or not isinstance(tr["seq"], int):
            probs["trade_fields"].append(str(tr))
        price, size = Decimal(tr["p"]), Decimal(tr["v"])
        if size <= ZERO:
            probs["trade_fields"].append(f"non-positive size {tr['v']!r}")
        rp.trades.append(TradeSeen(sym, msg["ts"], tr["T"], tr["S"], price, size, tr["i"]))
        # A buy lifts an ask, a sell hits a bid, of the book as published before this frame.
        side = "a" if tr["S"] == "Buy" else "b"
        resting = rp.level_size(sym, side, price)
        if resting is None:
            probs["trade_vs_book"].append(f"{sym} {tr['S']} at {tr['p']}: no such level on side {side}")
            continue
        entry = rp._consumed[sym].setdefault((side, price), [resting, ZERO])
        entry[1] += size
        if entry[1] > resting:
            probs["trade_vs_book"].append(f"{sym} {tr['S']} at {tr['p']}: {entry[1]} traded > {resting} resting")


def run(duration_ms: int, symbols=SYMBOLS, seed: int = 1, step_ms: int = 20, **kwargs):
    sim = MarketSimulator(symbols, seed, **kwargs)
    return sim, list(sim.frames(duration_ms, step_ms))


@pytest.fixture(scope="module")
def five_minutes():
    """Two symbols for five simulated minutes, replayed once."""
    sim, frames = run(FIVE_MIN_MS, seed=7)
    return sim, frames, replay(frames)


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames():
    """Same arguments and calls give byte-identical frames."""
    assert run(20_000, seed=3)[1] == run(20_000, seed=3)[1]


def test_different_seed_gives_different_frames():
    """Another seed gives another market."""
    a, b = run(5_000, seed=3)[1], run(5_000, seed=4)[1]
    assert a != b
    assert a[0][1] != b[0][1]


@settings(max_examples=15, deadline=None)
@given(steps=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=30))
def test_frames_do_not_depend_on_how_time_is_cut(steps):
    """advance() in arbitrary chunks yields exactly frames() in 20 ms steps."""
    duration = 8_000
    _, expected = run(duration, seed=11)
    sim = MarketSimulator(SYMBOLS, 11)
    got: list[tuple[int, str]] = []
    t = START_MS
    i = 0
    while t < START_MS + duration:
        t = min(t + steps[i % len(steps)], START_MS + duration)
        got.extend(sim.advance(t))
        i += 1
    assert got == expected


def test_reading_the_book_does_not_change_the_frames():
    """snapshot_frame() and true_book() draw no randomness."""
    _, expected = run(10_000, seed=5)
    sim = MarketSimulator(SYMBOLS, 5)
    got = []
    for t in range(START_MS, START_MS + 10_001, 250):
        got.extend(sim.advance(t))
        for s in SYMBOLS:
            sim.snapshot_frame(s)
            sim.true_book(s)
    assert got == expected


# ---------------------------------------------------------------- book stream rules


def test_first_advance_emits_one_snapshot_per_symbol_at_start():
    """The first call emits a snapshot per symbol at start_ms, before anything else."""
    sim = MarketSimulator(SYMBOLS, 2)
    assert sim.advance(START_MS - 1) == []
    frames = sim.advance(START_MS)
    assert [json.loads(f)["topic"] for _, f in frames] == [f"orderbook.50.{s}" for s in SYMBOLS]
    assert all(ts == START_MS and json.loads(f)["type"] == "snapshot" for ts, f in frames)
    assert sim.now_ms == START_MS


def test_first_book_frame_of_each_symbol_is_a_snapshot_then_deltas(five_minutes):
    _, _, rp = five_minutes
    for sym in SYMBOLS:
        types = [f["type"] for f in rp.book_frames[sym]]
        assert types[0] == "snapshot"
        assert set(types[1:]) == {"delta"}


def test_update_id_rises_by_one_per_book_frame(five_minutes):
    _, _, rp = five_minutes
    assert rp.problems["u"] == []
    assert all(len(rp.book_frames[s]) > 5_000 for s in SYMBOLS)


def test_seq_never_decreases_across_topics(five_minutes):
    assert five_minutes[2].problems["seq"] == []


def test_ts_never_decreases_and_cts_is_slightly_earlier(five_minutes):
    _, _, rp = five_minutes
    assert rp.problems["ts"] == []
    assert rp.problems["cts"] == []


def test_each_side_holds_exactly_depth_levels_after_every_frame(five_minutes):
    assert five_minutes[2].problems["depth"] == []


def test_book_is_never_crossed(five_minutes):
    assert five_minutes[2].problems["crossed"] == []


def test_levels_are_sorted_bids_descending_asks_ascending(five_minutes):
    assert five_minutes[2].problems["order"] == []


def test_live_sizes_are_positive_and_deletes_are_exactly_zero(five_minutes):
    _, frames, rp = five_minutes
    assert rp.problems["size"] == []
    sizes = Counter(s for _, f in frames if '"orderbook.' in f[:30]
                    for side in ("b", "a") for _, s in json.loads(f)["data"][side])
    assert sizes["0"] > 0
    assert not any(Decimal(s) == ZERO for s in sizes if s != "0")


def test_deltas_carry_only_changed_levels(five_minutes):
    """A delta never repeats a level at the size the client already holds."""
    _, frames, _ = five_minutes
    books: dict[str, tuple[dict, dict]] = {}
    repeats = 0
    for _, text in frames:
        msg = json.loads(text)
        if not msg["topic"].startswith("orderbook."):
            continue
        sym = msg["data"]["s"]
        if msg["type"] == "snapshot":
            books[sym] = ({}, {})
        bids, asks = books[sym]
        assert msg["data"]["b"] or msg["data"]["a"], "empty delta"
        for book, side in ((bids, "b"), (asks, "a")):
            for p, s in msg["data"][side]:
                if msg["type"] == "delta" and book.get(Decimal(p), ZERO) == Decimal(s):
                    repeats += 1
                if s == "0":
                    book.pop(Decimal(p), None)
                else:
                    book[Decimal(p)] = Decimal(s)
    assert repeats == 0


def test_numbers_use_fixed_decimals_per_symbol(five_minutes):
    """BTCUSDT prices like "65114.20" and sizes like "0.002"; ETHUSDT "1922.50" / "1.30"."""
    _, frames, _ = five_minutes
    want = {"BTCUSDT": (2, 3), "ETHUSDT": (2, 2)}
    for _, text in frames[:3000]:
        msg = json.loads(text)
        if msg["topic"].startswith("orderbook."):
            sym = msg["data"]["s"]
            pairs = msg["data"]["b"] + msg["data"]["a"]
        else:
            sym = msg["data"][0]["s"]
            pairs = [[t["p"], t["v"]] for t in msg["data"]]
        pdec, sdec = want[sym]
        for p, s in pairs:
            assert len(p.split(".")[1]) == pdec, p
            assert s == "0" or len(s.split(".")[1]) == sdec, s


def test_rebuilt_book_equals_true_book(five_minutes):
    sim, _, rp = five_minutes
    for sym in SYMBOLS:
        bids, asks = sim.true_book(sym)
        assert bids == rp.bid_text[sym]
        assert asks == rp.ask_text[sym]
        assert list(bids) == sorted(bids, key=Decimal, reverse=True)
        assert list(asks) == sorted(asks, key=Decimal)


def test_snapshot_frame_is_the_current_book_with_the_last_u(five_minutes):
    sim, _, rp = five_minutes
    for sym in SYMBOLS:
        msg = json.loads(sim.snapshot_frame(sym))
        assert list(msg) == LINEAR_BOOK_KEYS and list(msg["data"]) == BOOK_DATA_KEYS
        assert msg["type"] == "snapshot" and msg["topic"] == f"orderbook.50.{sym}"
        assert msg["ts"] == sim.now_ms
        assert msg["data"]["u"] == rp.book_frames[sym][-1]["u"]
        assert {p: s for p, s in msg["data"]["b"]} == rp.bid_text[sym]
        assert {p: s for p, s in msg["data"]["a"]} == rp.ask_text[sym]


def test_client_starting_from_mid_stream_snapshot_stays_in_sync():
    """A subscriber seeded by snapshot_frame() then fed the later deltas holds the true book."""
    sim = MarketSimulator(SYMBOLS, 9)
    sim.advance(START_MS + 12_345)
    snap = sim.snapshot_frame("ETHUSDT")
    later = [f for f in sim.advance(START_MS + 30_000) if json.loads(f[1])["topic"].endswith(".ETHUSDT")]
    msg = json.loads(snap)
    rp = replay([(msg["ts"], snap), *later])
    # The snapshot is sent now but shows the book of the last push, so its cts may be older.
    first_trade_or_book = json.loads(later[0][1])["data"]
    first_seq = (first_trade_or_book[0] if isinstance(first_trade_or_book, list) else first_trade_or_book)["seq"]
    assert msg["data"]["seq"] <= first_seq
    assert msg["cts"] <= msg["ts"]
    assert len(rp.problems.pop("cts", [])) <= 1
    assert not any(rp.problems.values()), dict(rp.problems)
    deltas = rp.book_frames["ETHUSDT"]
    assert deltas[1]["u"] == deltas[0]["u"] + 1
    bids, asks = sim.true_book("ETHUSDT")
    assert (bids, asks) == (rp.bid_text["ETHUSDT"], rp.ask_text["ETHUSDT"])


def test_true_book_excludes_trades_not_yet_pushed():
    """Between pushes true_book() is the published book, even after trades consumed liquidity."""
    sim = MarketSimulator(["BTCUSDT"], 4, book_interval_ms=1_000, trade_rate=50.0)
    frames = sim.advance(START_MS + 5_500)
    rp = replay(frames)
    assert any('"publicTrade.' in f[:30] for ts, f in frames if ts > START_MS + 5_000)
    assert sim.true_book("BTCUSDT") == (rp.bid_text["BTCUSDT"], rp.ask_text["BTCUSDT"])


# ---------------------------------------------------------------- trades


def test_trades_hit_levels_that_were_on_the_book(five_minutes):
    """A buy trades at an ask, a sell at a bid, of the book published before it, within its size."""
    _, _, rp = five_minutes
    assert len(rp.trades) > 1_000
    assert rp.problems["trade_vs_book"] == []


def test_traded_size_is_removed_from_the_next_book_push(five_minutes):
    """The next delta republishes each traded level, nearly always at size-before minus traded."""
    _, _, rp = five_minutes
    total = rp.traded_levels_republished + rp.traded_levels_missing
    assert total > 1_000
    assert rp.traded_levels_missing <= total * 0.01
    assert rp.traded_levels_exact >= total * 0.8


def test_trade_frames_have_linear_fields_in_order(five_minutes):
    _, _, rp = five_minutes
    assert rp.problems["keys"] == []
    assert rp.problems["topic"] == []
    assert rp.problems["trade_fields"] == []
    assert rp.problems["trade_time"] == []
    assert {t.taker for t in rp.trades} == {"Buy", "Sell"}


def test_trade_ids_are_unique_uuids(five_minutes):
    _, _, rp = five_minutes
    ids = [t.trade_id for t in rp.trades]
    assert len(set(ids)) == len(ids)
    for i in ids[:500]:
        parts = i.split("-")
        assert [len(p) for p in parts] == [8, 4, 4, 4, 12]
        int("".join(parts), 16)


def test_one_trade_frame_can_carry_several_trades(five_minutes):
    _, frames, _ = five_minutes
    sizes = [len(json.loads(f)["data"]) for _, f in frames if '"publicTrade.' in f[:30]]
    assert max(sizes) > 1


def test_no_trading_without_taker_flow_or_plants():
    _, frames = run(60_000, trade_rate=0.0, plant_every_s=0)
    assert not any('"publicTrade.' in f[:30] for _, f in frames)


def test_without_taker_flow_only_eaten_plants_trade():
    sim, frames = run(120_000, trade_rate=0.0)
    rp = replay(frames)
    assert not any(rp.problems.values()), dict(rp.problems)
    eaten = {(p.symbol, Decimal(p.price)) for p in sim.planted if p.fate == "eaten" and p.ended_ms}
    assert eaten
    # Eating walks the price to the plant (whole levels in front), then trades at its price.
    assert {(t.symbol, t.price) for t in rp.trades} >= eaten


# ---------------------------------------------------------------- planted orders


def _trades_at(rp: Replay, plant: PlantedOrder) -> list[TradeSeen]:
    """Trades hitting the plant's price from the other side while it rested."""
    hitting = "Sell" if plant.side == "Buy" else "Buy"
    price = Decimal(plant.price)
    end = plant.ended_ms if plant.ended_ms is not None else 2**63
    return [t for t in rp.trades if t.symbol == plant.symbol and t.taker == hitting
            and t.price == price and plant.placed_ms <= t.T <= end]


def test_planted_orders_have_both_fates(five_minutes):
    sim, _, _ = five_minutes
    assert len(sim.planted) >= 8
    assert {p.fate for p in sim.planted} == {"eaten", "pulled"}
    assert {p.symbol for p in sim.planted} == set(SYMBOLS)
    assert {p.side for p in sim.planted} == {"Buy", "Sell"}
    assert all(isinstance(p, PlantedOrder) for p in sim.planted)
    with pytest.raises(AttributeError):
        sim.planted[0].size = "1"  # type: ignore[misc]


def test_at_most_one_resting_plant_per_symbol_and_side(five_minutes):
    sim, _, _ = five_minutes
    by_side = defaultdict(list)
    for p in sim.planted:
        by_side[p.symbol, p.side].append(p)
    for plants in by_side.values():
        for a, b in zip(plants, plants[1:]):
            assert a.ended_ms is not None and a.ended_ms <= b.placed_ms


def test_planted_order_is_published_at_placed_ms_and_is_large(five_minutes):
    """The book frame at placed_ms shows the plant's size, 8-25x the median level, near the touch."""
    sim, _, rp = five_minutes
    for plant in sim.planted:
        side = "b" if plant.side == "Buy" else "a"
        frames = rp.book_frames[plant.symbol]
        k = next(i for i, f in enumerate(frames) if f["ts"] == plant.placed_ms)
        assert [plant.price, plant.size] in frames[k][side]
        # Median of the book as published just before the plant appeared.
        before: dict[Decimal, Decimal] = {}
        for f in frames[: k]:
            if f["type"] == "snapshot":
                before = {}
            for book_side in ("b", "a"):
                for p, s in f[book_side]:
                    key = (book_side, Decimal(p))
                    if s == "0":
                        before.pop(key, None)
                    else:
                        before[key] = Decimal(s)
        sizes = sorted(before.values())
        median = sizes[len(sizes) // 2]
        assert Decimal(plant.size) >= 6 * median
        touch_side = [Decimal(p) for (s, p) in before if s == side]
        touch = max(touch_side) if side == "b" else min(touch_side)
        behind = (touch - Decimal(plant.price)) if side == "b" else (Decimal(plant.price) - touch)
        # 2-8 ticks behind the touch the simulator saw (trades may have moved it a little since).
        assert 2 <= behind / TICK[plant.symbol] <= 20, (plant, touch)


def test_pulled_order_never_trades_at_its_price(five_minutes):
    sim, _, rp = five_minutes
    pulled = [p for p in sim.planted if p.fate == "pulled" and p.ended_ms is not None]
    assert pulled
    for plant in pulled:
        assert _trades_at(rp, plant) == [], plant


def test_pulled_order_disappears_without_trades_at_ended_ms(five_minutes):
    """At ended_ms the book frame deletes the level or shrinks it to an ordinary size."""
    sim, _, rp = five_minutes
    for plant in (p for p in sim.planted if p.fate == "pulled" and p.ended_ms is not None):
        side = "b" if plant.side == "Buy" else "a"
        frame = next(f for f in rp.book_frames[plant.symbol] if f["ts"] == plant.ended_ms)
        new = dict(frame[side])[plant.price]
        assert Decimal(new) < Decimal(plant.size)


def test_eaten_order_trades_its_whole_size_at_its_price(five_minutes):
    sim, _, rp = five_minutes
    eaten = [p for p in sim.planted if p.fate == "eaten" and p.ended_ms is not None]
    assert eaten
    for plant in eaten:
        hits = _trades_at(rp, plant)
        assert sum(t.size for t in hits) >= Decimal(plant.size), plant
        assert len(hits) >= 1
        assert plant.placed_ms < min(t.T for t in hits) <= max(t.T for t in hits) <= plant.ended_ms
        side = "b" if plant.side == "Buy" else "a"
        frame = next(f for f in rp.book_frames[plant.symbol] if f["ts"] == plant.ended_ms)
        assert [plant.price, "0"] in frame[side]


def test_no_plants_when_disabled():
    sim, _ = run(120_000, plant_every_s=0)
    assert sim.planted == []


# ---------------------------------------------------------------- other shapes and arguments


def test_topics_name_depth_and_symbol():
    sim = MarketSimulator(["BTCUSDT"], depth=200, book_interval_ms=100)
    assert sim.topics("BTCUSDT") == ["orderbook.200.BTCUSDT", "publicTrade.BTCUSDT"]
    with pytest.raises(KeyError):
        sim.topics("NOPE")


def test_depth_200_keeps_200_levels_per_side():
    _, frames = run(30_000, symbols=["ETHUSDT"], depth=200, book_interval_ms=100)
    rp = replay(frames, depth=200)
    assert not any(rp.problems.values()), dict(rp.problems)


def test_unknown_symbol_gets_a_consistent_power_of_ten_tick():
    sim, frames = run(60_000, symbols=["FOOUSDT", "BARUSDT"], seed=21)
    rp = replay(frames)
    assert not any(rp.problems.values()), dict(rp.problems)
    for sym in ("FOOUSDT", "BARUSDT"):
        snap = json.loads(frames[0 if sym == "FOOUSDT" else 1][1])["data"]
        prices = [Decimal(p) for p, _ in snap["b"] + snap["a"]]
        decimals = {len(p.split(".")[1]) if "." in p else 0 for p, _ in snap["b"] + snap["a"]}
        assert len(decimals) == 1
        tick = Decimal(1).scaleb(-decimals.pop())
        assert Decimal("0.1") / 10_000 / 10 <= tick and tick <= prices[0] / 1_000
        assert all((p / tick) % 1 == 0 for p in prices)


def test_depth_1_pushes_snapshots_only():
    """orderbook.1 is snapshot-only on Bybit, with ts before type."""
    _, frames = run(5_000, symbols=["BTCUSDT"], depth=1, book_interval_ms=10)
    books = [json.loads(f) for _, f in frames if '"orderbook.' in f[:30]]
    assert len(books) > 50
    us = [m["data"]["u"] for m in books]
    assert us == list(range(us[0], us[0] + len(us)))
    for m in books:
        assert list(m) == ["topic", "ts", "type", "data", "cts"]
        assert m["type"] == "snapshot"
        assert len(m["data"]["b"]) == len(m["data"]["a"]) == 1
        assert Decimal(m["data"]["b"][0][0]) < Decimal(m["data"]["a"][0][0])


def test_spot_frames_use_spot_layout():
    _, frames = run(20_000, symbols=["BTCUSDT"], category="spot")
    books = [json.loads(f) for _, f in frames if '"orderbook.' in f[:30]]
    trades = [json.loads(f) for _, f in frames if '"publicTrade.' in f[:30]]
    assert trades
    assert all(list(m) == ["topic", "ts", "type", "data", "cts"] for m in books)
    assert all(list(m) == ["topic", "ts", "type", "data"] for m in trades)
    for m in trades:
        for t in m["data"]:
            assert list(t) == ["i", "T", "p", "v", "S", "seq", "s", "BT", "RPI"]
            assert t["i"].isdigit()


@pytest.mark.parametrize("kwargs", [
    {"symbols": []},
    {"symbols": ["BTCUSDT", "BTCUSDT"]},
    {"symbols": ["BTCUSDT"], "depth": 0},
    {"symbols": ["BTCUSDT"], "book_interval_ms": 0},
    {"symbols": ["BTCUSDT"], "trade_rate": -1.0},
    {"symbols": ["BTCUSDT"], "category": "option"},
])
def test_bad_arguments_raise_usage_error(kwargs):
    with pytest.raises(UsageError):
        MarketSimulator(**kwargs)
