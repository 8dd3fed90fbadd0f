"""The live screen over several categories (bybitmon.app.board.Board, as `watch --all` uses it):
labels, snapshots and ladders from the right Monitor, the density screen merged across
categories, `--top`, rows that come and go; and Monitor.forget, which drops a delisted
symbol's state."""

from __future__ import annotations

import gc
import io
import tracemalloc

import pytest
from rich.console import Console, Group

from bybitmon import ui
from bybitmon.app.board import SORT_KEYS, Board
from bybitmon.app.screen import WatchScreen
from bybitmon.core.monitor import Monitor
from bybitmon.core.screener import SCREEN_SORTS, ScreenFilter, screen_densities
from bybitmon.sim.market import MarketSimulator
from bybitmon.ui.screen import ScreenState

SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]


def fed(category: str, symbols: list[str] = SYMS, seconds: int = 30, seed: int = 4) -> Monitor:
    m = Monitor(category)
    sim = MarketSimulator(symbols, seed=seed, category=category, trade_rate=6.0, plant_every_s=4.0)
    for ts, raw in sim.frames(seconds * 1000):
        m.feed(ts * 1_000_000, raw)
    return m


@pytest.fixture(scope="module")
def two() -> tuple[Monitor, Monitor]:
    return fed("linear"), fed("spot", seed=5)


def board_of(lin: Monitor, spot: Monitor, symbols: list[str] = SYMS) -> Board:
    b = Board([lin, spot])
    b.follow("linear", symbols)
    b.follow("spot", symbols)
    return b


def draw(scr: WatchScreen, width: int = 200, height: int = 50) -> list[str]:
    c = Console(width=width, height=height, file=io.StringIO(), color_system=None)
    c.print(Group(scr.body(width=width, height=height - 2, statuses={}), scr.footer(width)))
    return c.file.getvalue().splitlines()


def screen(board: Board, mode: str = "table", **kw) -> tuple[WatchScreen, ScreenState]:
    state = ScreenState(SORT_KEYS, "symbol", tuple(SCREEN_SORTS), mode=mode)
    return WatchScreen(board, state, window_ms=60_000, bps=50.0, interactive=kw.pop("interactive", True),
                       clock=lambda: 0.0, **kw), state


# -- Monitor.forget -------------------------------------------------------------------------------


def test_forget_drops_every_state_of_the_symbol_and_keeps_the_others():
    m = fed("linear", ["BTCUSDT", "ETHUSDT"], seconds=10)
    eth_before = m.snapshot("ETHUSDT")
    m.needs_resync.add("BTCUSDT")
    m.forget("BTCUSDT")
    assert "BTCUSDT" not in m.states and "BTCUSDT" not in m.needs_resync
    assert m.symbols == ["ETHUSDT"]
    assert m.snapshot("ETHUSDT") == eth_before
    empty = m.snapshot("BTCUSDT")  # a pure read of an unknown symbol: empty, and no state made
    assert empty.trades.count == 0 and not empty.book.ready and empty.health.frames == 0
    assert "BTCUSDT" not in m.states
    m.forget("NOSUCHUSDT")  # unknown: ignored


def test_forget_frees_the_symbols_memory():
    sim = MarketSimulator(["BTCUSDT", "ETHUSDT"], seed=4, trade_rate=20.0, plant_every_s=4.0)
    stream = list(sim.frames(30_000))
    tracemalloc.start()
    try:
        gc.collect()
        empty = tracemalloc.get_traced_memory()[0]
        m = Monitor("linear")
        for ts, raw in stream:
            m.feed(ts * 1_000_000, raw)
        gc.collect()
        both = tracemalloc.get_traced_memory()[0]
        m.forget("ETHUSDT")
        gc.collect()
        one = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    held = both - empty  # two symbols alike: books of 50 levels, 30 s of trades, densities
    assert held > 50_000
    assert both - one > 0.3 * held, (empty, both, one)


def test_a_frame_after_forget_starts_the_symbol_afresh():
    m = fed("linear", ["BTCUSDT"], seconds=5)
    frames = m.states["BTCUSDT"].frames
    assert frames > 100
    m.forget("BTCUSDT")
    sim = MarketSimulator(["BTCUSDT"], seed=4, start_ms=1_767_225_700_000)
    ts, raw = next(iter(sim.frames(1000)))
    m.feed(ts * 1_000_000, raw)
    assert m.states["BTCUSDT"].frames == 1


# -- Board --------------------------------------------------------------------------------------


def test_one_category_labels_are_the_symbols_and_order_follows_the_snapshots(two):
    from test_ui import SNAPSHOT_SORT_VALUES

    lin, _ = two
    b = Board.of(lin, SYMS)
    assert b.labels == sorted(SYMS) and not b.labelled
    snaps = {s: lin.snapshot(s) for s in SYMS}
    for key in SORT_KEYS:
        get = SNAPSHOT_SORT_VALUES.get(key)
        want = sorted(SYMS) if get is None else sorted(SYMS, key=lambda s: (-get(snaps[s]), s))
        assert b.order(key) == want, key
    assert b.snapshot("ETHUSDT") == lin.snapshot("ETHUSDT")


def test_several_categories_label_rows_and_read_each_from_its_monitor(two):
    lin, spot = two
    b = board_of(lin, spot)
    assert b.labelled and len(b) == 12
    assert b.labels == [f"{s}/{t}" for s in sorted(SYMS) for t in ("lin", "spot")]
    snap = b.snapshot("ETHUSDT/spot")
    assert snap.symbol == "ETHUSDT/spot" and snap.category == "spot"
    assert snap.book.mid == spot.snapshot("ETHUSDT").book.mid != lin.snapshot("ETHUSDT").book.mid
    assert b.ladder_levels("SOLUSDT/lin", 5) == lin.ladder_levels("SOLUSDT", 5)
    assert b.price_decimals("SOLUSDT/spot") == spot.price_decimals("SOLUSDT")
    assert b.latency("SOLUSDT/lin") == lin.latency("SOLUSDT")
    assert b.tps("BTCUSDT/spot") == spot.trade_stats("BTCUSDT").tps
    assert b.where("GONEUSDT/spot") == (spot, "GONEUSDT")  # a label no longer followed still resolves


@pytest.mark.parametrize("sort", ["distance", "notional", "eta"])
def test_density_rows_merge_every_category_in_screen_order(two, sort):
    lin, spot = two
    flt = ScreenFilter(min_lifetime_ms=0, ended_max=7)
    rows = board_of(lin, spot).densities(flt, sort)
    # Independently: each Monitor's own rows, relabelled.
    want_live, want_ended = set(), []
    for m, tag in ((lin, "lin"), (spot, "spot")):
        for r in screen_densities(m, flt=flt, sort=sort):
            r = r._replace(symbol=f"{r.symbol}/{tag}")
            if r.state in ("active", "ending"):
                want_live.add(r)
            else:
                want_ended.append(r)
    live = [r for r in rows if r.state in ("active", "ending")]
    ended = rows[len(live):]
    assert rows[:len(live)] == live  # live rows first
    assert set(live) == want_live and len(live) == len(want_live)
    assert {r.symbol.split("/")[1] for r in live} == {"lin", "spot"}
    keys = [SCREEN_SORTS[sort](r) for r in live]
    assert keys == sorted(keys)
    assert len(ended) == min(7, len(want_ended))
    newest = sorted(want_ended, key=lambda r: -r.ended_ms)[:len(ended)]
    assert [r.ended_ms for r in ended] == [r.ended_ms for r in newest]


def test_following_fewer_symbols_drops_their_rows_and_sparks(two):
    lin, spot = two
    b = board_of(lin, spot)
    scr, state = screen(b)
    scr.sample()
    assert set(scr.sparks) == set(b.labels)
    b.follow("spot", ["BTCUSDT"])
    scr.sample()
    assert set(scr.sparks) == {f"{s}/lin" for s in SYMS} | {"BTCUSDT/spot"}
    rows = [line.strip("│").split("│")[0].strip() for line in draw(scr) if line.startswith("│")]
    assert sorted(rows) == sorted(b.labels) and "ETHUSDT/spot" not in rows


# -- the screen over several categories ----------------------------------------------------------


def test_table_density_screen_and_ladder_over_two_categories(two):
    lin, spot = two
    b = board_of(lin, spot)
    scr, state = screen(b, density_filter=ScreenFilter(min_lifetime_ms=0))
    rows = [line.strip("│").split("│")[0].strip() for line in draw(scr) if line.startswith("│")]
    assert rows == b.labels  # sorted by symbol, then category
    state.handle("d")
    lines = draw(scr)
    drawn = [[c.strip() for c in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    want = b.densities(ScreenFilter(min_lifetime_ms=0))
    assert drawn and [(d[0], d[1]) for d in drawn] == [(r.symbol, r.side) for r in want[:len(drawn)]]
    # Select the first spot density, Enter: that symbol's spot ladder, marked at its price.
    idx = next(i for i, r in enumerate(want) if r.symbol.endswith("/spot") and r.state == "active")
    for _ in range(idx):
        state.handle("down")
    state.handle("enter")
    assert state.mode == "ladder" and state.ladder_symbol == want[idx].symbol
    text = "\n".join(draw(scr))
    assert f"{want[idx].symbol} ladder" in text and "── mid ──" in text
    sym = want[idx].symbol.split("/")[0]
    marked = [line for line in text.splitlines() if "▶" in line]
    assert len(marked) == 1 and ui.fmt_price(want[idx].price, spot.price_decimals(sym)) in marked[0]
    best_ask = spot.ladder_levels(sym, 1)["asks"][0][0]
    assert ui.fmt_price(best_ask, spot.price_decimals(sym), 7) in text
    state.handle("esc")
    assert state.mode == "densities"


@pytest.mark.parametrize("interactive", [False, True])
def test_top_limits_the_rows_drawn_not_the_rows_followed(two, interactive):
    lin, spot = two
    b = board_of(lin, spot)
    scr, state = screen(b, top=5, interactive=interactive)
    lines = draw(scr)
    rows = [line.strip("│").split("│")[0].strip() for line in lines if line.startswith("│")]
    assert rows == b.labels[:5]
    text = "\n".join(lines)
    if interactive:
        assert "rows 1-5 of 12" in text
        state.handle("pgdn")
        rows = [line.strip("│").split("│")[0].strip() for line in draw(scr) if line.startswith("│")]
        assert len(rows) == 5 and b.labels[5] in rows  # the others scroll into view
    else:
        assert "… 7 more symbols" in text and "top 5" in text


def test_another_density_sort_reorders_the_last_pass_as_a_new_pass_would(two):
    """s on the density screen re-sorts the rows of the last screener pass (within its second)
    instead of walking every density again: the same rows a new pass gives in that order."""
    lin, spot = two
    flt = ScreenFilter(min_lifetime_ms=0)
    b = board_of(lin, spot)
    scr, state = screen(b, "densities", density_filter=flt)
    draw(scr)
    for sort in list(SCREEN_SORTS)[1:]:
        state.handle("s")
        assert state.density_sort == sort
        drawn = [[c.strip() for c in line.strip("│").split("│")] for line in draw(scr) if line.startswith("│")]
        want = b.densities(flt, sort)
        assert drawn and [(d[0], d[1], d[2]) for d in drawn] == \
            [(r.symbol, r.side, ui.fmt_price(r.price, b.price_decimals(r.symbol))) for r in want[:len(drawn)]], sort


def test_frame_rate_holds_between_readings_closer_than_its_interval():
    from bybitmon.app.screen import FrameRate

    t = [0.0]
    rate = FrameRate(clock=lambda: t[0], min_s=0.5)
    assert rate.update(0) == 0.0
    t[0] = 1.0
    assert rate.update(1000) == 1000.0
    t[0] = 1.01  # a key redraw 10 ms later: the rate shown stays
    assert rate.update(1000) == 1000.0
    t[0] = 1.5
    assert rate.update(1750) == 1500.0
