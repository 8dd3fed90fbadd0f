"""The density screen's rows against a brute-force computation on the simulator's planted orders.

The brute force shares no code with bybitmon: it keeps each book as a dict of Decimal sizes and
every trade as Decimals, straight from the frames' strings, and recomputes each column from
scratch at each checkpoint.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bybitmon.core.monitor import Monitor
from bybitmon.core.screener import SCREEN_SORTS, ScreenFilter, rows_json, screen_densities, sort_rows
from bybitmon.sim.market import MarketSimulator

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
WINDOW_MS = 60_000
DURATION_MS = 150_000
CHECK_EVERY_MS = 2_500


class Brute:
    """Books and trades from the raw frames, in Decimal."""

    def __init__(self) -> None:
        self.books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}
        self.trades: dict[str, list[tuple[int, bool, Decimal, Decimal]]] = {}  # (T, taker buy, price, size)
        self.now = 0

    def feed(self, raw: str) -> None:
        msg = json.loads(raw)
        self.now = max(self.now, msg["ts"])
        topic = msg["topic"]
        if topic.startswith("orderbook."):
            d = msg["data"]
            book = self.books.setdefault(d["s"], {"bid": {}, "ask": {}})
            if msg["type"] == "snapshot":
                book["bid"].clear()
                book["ask"].clear()
            for side, key in (("bid", "b"), ("ask", "a")):
                for p, s in d[key]:
                    if Decimal(s) == 0:
                        book[side].pop(Decimal(p), None)
                    else:
                        book[side][Decimal(p)] = Decimal(s)
        else:
            sym = topic.split(".", 1)[1]
            for t in msg["data"]:
                self.trades.setdefault(sym, []).append((t["T"], t["S"] == "Buy", Decimal(t["p"]), Decimal(t["v"])))

    def last_price(self, sym: str) -> Decimal:
        return self.trades[sym][-1][2]

    def flow_per_s(self, sym: str, side: str) -> Decimal:
        """Taker volume hitting ``side`` (sells hit bids, buys lift asks) over the window, per s."""
        hit_by_buy = side == "ask"
        vol = sum((v for t, buy, _, v in self.trades.get(sym, ()) if self.now - WINDOW_MS < t <= self.now
                   and buy == hit_by_buy), Decimal(0))
        return vol / (Decimal(WINDOW_MS) / 1000)

    def traded_at(self, sym: str, side: str, price: Decimal, from_ms: int) -> Decimal:
        hit_by_buy = side == "ask"
        return sum((v for t, buy, p, v in self.trades.get(sym, ()) if t >= from_ms and p == price
                    and buy == hit_by_buy), Decimal(0))

    def median(self, sym: str, side: str) -> Decimal:
        sizes = sorted(self.books[sym][side].values())
        n = len(sizes)
        return sizes[n // 2] if n % 2 else (sizes[n // 2 - 1] + sizes[n // 2]) / 2


def _side(planted_side: str) -> str:
    return "bid" if planted_side == "Buy" else "ask"


@pytest.fixture(scope="module")
def run():
    """Feed monitor and brute force side by side; screen rows and brute state at checkpoints."""
    sim = MarketSimulator(SYMBOLS, seed=7, trade_rate=8.0, plant_every_s=6.0)
    m = Monitor("linear", window_ms=WINDOW_MS)
    brute = Brute()
    checks = []
    next_check = sim.start_ms + CHECK_EVERY_MS
    for ts, raw in sim.frames(DURATION_MS):
        if ts > next_check:
            checks.append(check_point(m, brute, sim))
            next_check += CHECK_EVERY_MS
        m.feed(ts * 1_000_000, raw)
        brute.feed(raw)
    return checks, list(sim.planted)


def check_point(m: Monitor, brute: Brute, sim: MarketSimulator) -> dict:
    """Everything a checkpoint compares, computed now (the state moves on afterwards)."""
    rows = screen_densities(m, flt=ScreenFilter(ended_ms=10_000, ended_max=10**6))
    now = m.now_ms
    assert now == brute.now
    expected = {}
    for pl in sim.planted:
        if pl.placed_ms + 300 > now or (pl.ended_ms is not None and pl.ended_ms <= now):
            continue  # too young to be found yet, or gone
        side = _side(pl.side)
        price = Decimal(pl.price)
        size = brute.books[pl.symbol][side].get(price)
        last = brute.last_price(pl.symbol)
        flow = brute.flow_per_s(pl.symbol, side)
        expected[(pl.symbol, side, float(price))] = {
            "planted": pl, "size": size, "distance_pct": abs(price - last) / last * 100,
            "notional": price * size if size is not None else None, "flow": flow,
            "eta_s": (size / flow) if flow and size is not None else None,
            "eaten_pct": brute.traded_at(pl.symbol, side, price, pl.placed_ms) / Decimal(pl.size) * 100,
            "median": brute.median(pl.symbol, side),
            "ref_median": m.states[pl.symbol].densities.medians[side],
        }
    return {"now": now, "rows": rows, "expected": expected}


def test_every_resting_planted_order_is_a_row_with_brute_force_columns(run):
    run, _ = run
    checked = 0
    partly_eaten = 0
    for cp in run:
        by_key = {}
        for r in cp["rows"]:  # live rows first: an older ended density at the same price comes after
            by_key.setdefault(r.key[:3], r)
        for key, exp in cp["expected"].items():
            pl = exp["planted"]
            r = by_key.get(key)
            assert r is not None, f"planted {pl} missing from the screen at {cp['now']}"
            if r.state != "active":
                # Bites out of an eaten plant can take it below the threshold while it rests.
                assert pl.fate == "eaten" and r.state in ("ending", "eaten"), (pl, r)
                continue
            checked += 1
            assert r.size == pytest.approx(float(exp["size"]), rel=1e-12)
            assert r.notional == pytest.approx(float(exp["notional"]), rel=1e-9)
            assert r.distance_pct == pytest.approx(float(exp["distance_pct"]), rel=1e-9)
            assert r.eaten_pct == pytest.approx(float(exp["eaten_pct"]), rel=1e-9, abs=1e-9)
            assert r.flow_per_s == pytest.approx(float(exp["flow"]), rel=1e-9, abs=1e-12)
            if exp["eta_s"] is None:
                assert r.eta_s is None
            else:
                assert r.eta_s == pytest.approx(float(exp["eta_s"]), rel=1e-9)
            # Detected at the first scan after placement: scans run every 100 ms of book time.
            assert 0 <= (cp["now"] - pl.placed_ms) - r.lifetime_ms <= 200, (pl, r)
            # x median: over the tracker's reference median of that side (which follows the
            # book's median in steps, tests/test_densities.py); it stays near the book's median.
            assert r.x_median == pytest.approx(float(exp["size"]) / exp["ref_median"], rel=1e-12)
            assert 0.5 < exp["ref_median"] / float(exp["median"]) < 2.0
            partly_eaten += r.eaten_pct > 0
    assert checked >= 100, checked
    assert partly_eaten >= 3, partly_eaten  # the eaten-% column was exercised with non-zero values


def test_ended_planted_orders_show_their_fate(run):
    run, planted = run
    seen = {"eaten": 0, "pulled": 0}
    for cp in run:
        ended = [r for r in cp["rows"] if r.state in ("eaten", "pulled")]
        for r in ended:
            assert r.eta_s is None and r.lifetime_ms == r.ended_ms - r.since_ms
            assert cp["now"] - 10_000 <= r.ended_ms <= cp["now"]
    # At each checkpoint, every planted order that ended 1-9 s before is listed: as ended, with
    # its true fate where that could be seen (not pushed out of the depth window), or -- a pull
    # that left a smaller order still large enough to be a density -- as live at a smaller size.
    for cp in run:
        by_key: dict = {}
        for r in cp["rows"]:
            by_key.setdefault(r.key[:3], []).append(r)
        for pl in planted:
            if pl.ended_ms is None or not cp["now"] - 9_000 <= pl.ended_ms <= cp["now"] - 1_000:
                continue
            found = [r for r in by_key.get((pl.symbol, _side(pl.side), float(pl.price)), [])
                     if pl.placed_ms - 200 <= r.since_ms <= pl.ended_ms]
            assert found, (pl, cp["now"])
            fates = [r for r in found if r.state in seen]
            for r in fates:
                assert r.state == pl.fate, (pl, r)
                seen[r.state] += 1
            if not fates and not any(r.state in ("out_of_depth", "faded") for r in found):
                assert pl.fate == "pulled" and all(r.state in ("active", "ending") and r.size < float(pl.size) for r in found), (pl, found)
    assert seen["eaten"] >= 3 and seen["pulled"] >= 3, seen


def test_rows_are_sorted_by_distance_live_first(run):
    run, _ = run
    for cp in run:
        live = [r for r in cp["rows"] if r.state in ("active", "ending")]
        assert cp["rows"][:len(live)] == live
        d = [r.distance_pct for r in live]
        assert d == sorted(d)


def test_every_sort_key_orders_rows(run):
    run, _ = run
    rows = [r for r in run[-1]["rows"] if r.state == "active"]
    assert len(rows) >= 4
    assert [r.notional for r in sort_rows(rows, "notional")] == sorted((r.notional for r in rows), reverse=True)
    assert [r.lifetime_ms for r in sort_rows(rows, "lifetime")] == sorted((r.lifetime_ms for r in rows), reverse=True)
    assert [r.symbol for r in sort_rows(rows, "symbol")] == sorted(r.symbol for r in rows)
    assert set(SCREEN_SORTS) >= {"distance", "notional", "x_median", "lifetime", "eta", "eaten", "symbol"}


@pytest.fixture(scope="module")
def monitor():
    sim = MarketSimulator(SYMBOLS, seed=7, trade_rate=8.0, plant_every_s=6.0)
    m = Monitor("linear", window_ms=WINDOW_MS)
    brute = Brute()
    for ts, raw in sim.frames(90_000):
        m.feed(ts * 1_000_000, raw)
        brute.feed(raw)
    return m, brute


def test_filters_keep_exactly_the_rows_that_pass(monitor):
    m, _ = monitor
    every = screen_densities(m, flt=ScreenFilter(ended_ms=0))
    assert len(every) >= 4
    notionals = sorted(r.notional for r in every)
    floor = notionals[len(notionals) // 2]
    got = screen_densities(m, flt=ScreenFilter(min_notional=floor, ended_ms=0))
    assert got == [r for r in every if r.notional >= floor] and 0 < len(got) < len(every)
    dist = sorted(r.distance_pct for r in every)[len(every) // 2]
    got = screen_densities(m, flt=ScreenFilter(max_distance_pct=dist, ended_ms=0))
    assert got == [r for r in every if r.distance_pct <= dist] and 0 < len(got) < len(every)
    life = sorted(r.lifetime_ms for r in every)[len(every) // 2]
    got = screen_densities(m, flt=ScreenFilter(min_lifetime_ms=life, ended_ms=0))
    assert got == [r for r in every if r.lifetime_ms >= life] and 0 < len(got) < len(every)
    got = screen_densities(m, flt=ScreenFilter(symbol_substr="eth", ended_ms=0))
    assert got == [r for r in every if r.symbol == "ETHUSDT"]


def test_automatic_notional_floor_is_a_multiple_of_the_window_turnover(monitor):
    m, brute = monitor
    every = screen_densities(m, flt=ScreenFilter(ended_ms=0))
    factor = 0.05
    got = screen_densities(m, flt=ScreenFilter(auto_notional=factor, ended_ms=0))
    expected = []
    for r in every:
        vol = sum((v for t, _, _, v in brute.trades[r.symbol] if brute.now - WINDOW_MS < t <= brute.now), Decimal(0))
        floor = Decimal(str(factor)) * vol * brute.last_price(r.symbol)
        if r.notional >= float(floor):
            expected.append(r)
    assert got == expected
    assert 0 < len(got) < len(every), (len(got), len(every))


def test_json_line_carries_the_rows(monitor):
    m, _ = monitor
    flt = ScreenFilter(max_distance_pct=1.0)
    rows = screen_densities(m, flt=flt)
    line = json.loads(json.dumps(rows_json(rows, m.now_ms, "linear", flt)))
    assert line["type"] == "densities" and line["v"] == 1 and line["ts"] == m.now_ms
    assert line["filter"]["max_distance_pct"] == 1.0
    assert [(x["symbol"], x["side"], x["price"], x["since"]) for x in line["rows"]] == [r.key for r in rows]
    assert all(x["distance_pct"] <= 1.0 for x in line["rows"])


def test_empty_monitor_has_no_rows():
    assert screen_densities(Monitor("linear")) == []


# -- the same columns on recorded streams (real captures and the in-repo data) ----------------


class Replay(Brute):
    """:class:`Brute` for recorded streams: any topic, trades deduplicated by id, and for each
    level the history of its sizes (to know a density's peak)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.history: dict[tuple[str, str, Decimal], list[tuple[int, Decimal]]] = {}
        self.trade_frames: dict[str, list[tuple[int, list]]] = {}

    def feed(self, raw: bytes) -> None:
        msg = json.loads(raw)
        topic = msg.get("topic", "")
        if isinstance(msg.get("ts"), int):
            self.now = max(self.now, msg["ts"])
        if topic.startswith("orderbook."):
            d = msg["data"]
            book = self.books.setdefault(d["s"], {"bid": {}, "ask": {}})
            if msg["type"] == "snapshot" or d.get("u") == 1:
                for side in ("bid", "ask"):
                    for p in book[side]:
                        self.history.setdefault((d["s"], side, p), []).append((msg["ts"], Decimal(0)))
                    book[side].clear()
            for side, key in (("bid", "b"), ("ask", "a")):
                for p, s in d[key]:
                    p, s = Decimal(p), Decimal(s)
                    if s == 0:
                        book[side].pop(p, None)
                    else:
                        book[side][p] = s
                    self.history.setdefault((d["s"], side, p), []).append((msg["ts"], s))
        elif topic.startswith("publicTrade."):
            sym = topic.split(".", 1)[1]
            fresh = []
            for t in msg["data"]:
                if t["i"] in self.ids:
                    continue
                self.ids.add(t["i"])
                trade = (t["T"], t["S"] == "Buy", Decimal(t["p"]), Decimal(t["v"]))
                self.trades.setdefault(sym, []).append(trade)
                fresh.append(trade)
            self.trade_frames.setdefault(sym, []).append((msg["ts"], fresh))

    def last_or_mid(self, sym: str) -> Decimal:
        if self.trades.get(sym):
            return self.last_price(sym)
        book = self.books[sym]
        return (max(book["bid"]) + min(book["ask"])) / 2

    def traded_since(self, sym: str, side: str, price: Decimal, since_ms: int, strict: bool) -> Decimal:
        """Volume traded against ``price`` in trade frames after ``since_ms`` (``strict``) or
        from it on: the frame that created a density and a trade frame with the same ``ts``
        cannot be ordered from the timestamps alone."""
        hit_by_buy = side == "ask"
        return sum((v for ts, fresh in self.trade_frames.get(sym, ()) if (ts > since_ms if strict else ts >= since_ms)
                    for _, buy, p, v in fresh if p == price and buy == hit_by_buy), Decimal(0))

    def peak_since(self, sym: str, side: str, price: Decimal, since_ms: int, until_ms: int | None) -> Decimal:
        """The largest size of a level from ``since_ms`` on (its size then included), up to
        ``until_ms`` (when a density ended)."""
        hist = self.history[(sym, side, price)]
        at = [s for ts, s in hist if ts <= since_ms]
        later = [s for ts, s in hist if since_ms < ts and (until_ms is None or ts <= until_ms)]
        return max(([at[-1]] if at else []) + later)


def check_recorded(name: str, category: str = "linear", every: int = 150) -> int:
    from paths import fixture_lines

    lines = fixture_lines(name)
    m = Monitor(category, window_ms=WINDOW_MS)
    brute = Replay()
    checked = 0
    for i, raw in enumerate(lines, 1):
        m.feed(0, raw)
        brute.feed(raw)
        if i % every and i != len(lines):
            continue
        for r in screen_densities(m, flt=ScreenFilter(ended_ms=0)):
            st = m.states[r.symbol]
            assert st.book.ready
            price = Decimal(repr(r.price))
            last = brute.last_or_mid(r.symbol)
            flow = brute.flow_per_s(r.symbol, r.side)
            if r.state == "ending":
                # Gone below the threshold or from the book: it keeps its last size as a
                # density (the level may be back by now, at any size).
                size = Decimal(repr(r.size))
            else:
                size = brute.books[r.symbol][r.side][price]
                assert r.size == pytest.approx(float(size), rel=1e-12), (name, i, r)
            assert r.notional == pytest.approx(float(price * size), rel=1e-9)
            assert r.distance_pct == pytest.approx(float(abs(price - last) / last * 100), rel=1e-9, abs=1e-12)
            assert r.flow_per_s == pytest.approx(float(flow), rel=1e-9, abs=1e-12)
            assert (r.eta_s is None) == (flow == 0)
            if flow:
                assert r.eta_s == pytest.approx(float(size / flow), rel=1e-9)
            assert r.lifetime_ms == m.now_ms - r.since_ms and r.lifetime_ms >= 0
            peak = brute.peak_since(r.symbol, r.side, price, r.since_ms, r.ended_ms)
            assert r.peak_size == pytest.approx(float(peak), rel=1e-12), (name, i, r)
            lo = brute.traded_since(r.symbol, r.side, price, r.since_ms, strict=True)
            hi = brute.traded_since(r.symbol, r.side, price, r.since_ms, strict=False)
            assert float(lo) * (1 - 1e-9) <= r.traded <= float(hi) * (1 + 1e-9) + 1e-12, (name, i, r, lo, hi)
            assert r.eaten_pct == pytest.approx(r.traded / float(peak) * 100, rel=1e-9, abs=1e-12)
            checked += 1
    return checked


def test_columns_on_the_real_linear_capture_match_a_brute_force():
    assert check_recorded("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", every=50) >= 20


def test_columns_on_bybits_history_slice_match_a_brute_force():
    assert check_recorded("nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson", every=20) >= 20


def test_columns_on_the_served_simulator_capture_match_a_brute_force():
    assert check_recorded("sim_linear_BTCUSDT_ETHUSDT.ndjson", every=100) >= 20
