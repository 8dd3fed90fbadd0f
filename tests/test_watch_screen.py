"""What `watch` draws for each mode (bybitmon.app.screen.WatchScreen), rendered to strings:
fits the terminal, holds still across refreshes, follows the interactive state."""

from __future__ import annotations

import io

import pytest
from rich.console import Console, Group

from bybitmon import ui
from bybitmon.app.board import Board
from bybitmon.app.screen import WatchScreen
from bybitmon.app.watch import SORT_KEYS
from bybitmon.core.monitor import Monitor
from bybitmon.core.screener import SCREEN_SORTS, ScreenFilter, screen_densities
from bybitmon.sim.market import MarketSimulator
from bybitmon.ui.screen import ScreenState

SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"] + [f"S{i:02d}USDT" for i in range(25)]
FEW = 12  # the tests that refresh many times follow fewer symbols


class Clock:
    """A clock that is manually advanced."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(mode: str = "table", symbols: list[str] = SYMS, monitor: Monitor | None = None,
         **kw) -> tuple[WatchScreen, ScreenState, Clock, Monitor]:
    m = monitor or Monitor("linear")
    state = ScreenState(SORT_KEYS, "tps", tuple(SCREEN_SORTS), mode=mode,
                        ladder_symbol="BTCUSDT" if mode == "ladder" else None)
    clock = Clock()
    scr = WatchScreen(Board.of(m, symbols), state, window_ms=60_000, bps=50.0, interactive=True,
                      clock=clock, **kw)
    return scr, state, clock, m


def render(scr: WatchScreen, width: int, height: int) -> list[str]:
    """The whole screen as watch composes it: a one-line header, the body, the footer."""
    c = Console(width=width, height=height, file=io.StringIO(), color_system=None)
    head = ui.header(source="ws://x", states=[("linear#1", "connected", 0)], frames_per_s=0.0, symbols=len(SYMS))
    foot = scr.footer(width)
    body_h = height - len(head.wrap(c, width)) - len(foot.wrap(c, width))
    c.print(Group(head, scr.body(width=width, height=body_h, statuses={}, sparks={}), foot))
    return c.file.getvalue().splitlines()


def frames(seconds: int, symbols: list[str] = SYMS):
    return MarketSimulator(symbols, seed=4, trade_rate=6.0, plant_every_s=5.0).frames(seconds * 1000)


@pytest.fixture(scope="module")
def fed() -> Monitor:
    """30 symbols after 30 simulated seconds (drawing reads it; only snapshots' ticks change it)."""
    m = Monitor("linear")
    for ts, raw in frames(30):
        m.feed(ts * 1_000_000, raw)
    return m


@pytest.mark.parametrize("width,height", [(80, 24), (200, 50)])
@pytest.mark.parametrize("mode", ["table", "densities", "ladder"])
def test_every_mode_fits_the_terminal_with_its_footer(fed, mode, width, height):
    scr, state, clock, m = make(mode, monitor=fed, density_filter=ScreenFilter(min_lifetime_ms=0))
    lines = render(scr, width, height)
    assert len(lines) <= height and max(len(line) for line in lines) <= width
    assert "q/Ctrl-C quit" in "\n".join(lines[-3:])
    text = "\n".join(lines)
    if mode == "ladder":
        assert "── mid ──" in text
        mid = next(i for i, line in enumerate(lines) if "── mid ──" in line)
        asks = [line for line in lines[:mid] if line.startswith("│") and "█" in line and "BTCUSDT" not in line]
        bids = [line for line in lines[mid + 1:] if line.startswith("│") and "█" in line]
        assert len(asks) == len(bids) >= 4
    elif mode == "densities":
        assert "dist%" in text and "densities:" in text
    elif height < 30:
        assert "rows 1-" in text and "of 30" in text  # 30 symbols do not all fit: the view says so
    else:
        assert sum(line.startswith("│") for line in lines) == 30 and "rows 1-" not in text


def test_table_columns_hold_still_across_a_minute_of_refreshes():
    scr, state, clock, m = make(symbols=SYMS[:FEW])
    headers = []
    positions = []
    next_draw = None
    for ts, raw in frames(90, SYMS[:FEW]):
        m.feed(ts * 1_000_000, raw)
        next_draw = next_draw or ts + 1000
        if ts >= next_draw:
            next_draw += 1000
            clock.t += 1.0
            lines = render(scr, 132, 45)
            head = next(line for line in lines if line.startswith("┃symbol"))
            headers.append(head)
            positions.append([i for i, ch in enumerate(head) if ch == "┃"])
    # A border never moves left: columns only widen, and only when a wider value shows up.
    for a, b in zip(positions, positions[1:]):
        assert len(a) != len(b) or all(x <= y for x, y in zip(a, b))
    # After the first half minute the layout does not change at all.
    assert len(set(headers[30:])) == 1, set(headers[30:])


def test_rows_hold_their_order_until_the_resort_interval():
    scr, state, clock, m = make(symbols=SYMS[:FEW])
    it = iter(frames(70, SYMS[:FEW]))
    for ts, raw in it:
        m.feed(ts * 1_000_000, raw)
        if ts >= 1_767_225_600_000 + 60_000:
            break
    first = [line.split("│")[1].strip() for line in render(scr, 132, 45) if line.startswith("│")]
    changed_at = None
    for ts, raw in it:
        m.feed(ts * 1_000_000, raw)
        if ts % 250 == 0:
            clock.t += 0.25
            if clock.t > 4:
                break
            now = [line.split("│")[1].strip() for line in render(scr, 132, 45) if line.startswith("│")]
            if now != first and changed_at is None:
                changed_at = clock.t
    assert changed_at is None or changed_at >= 3.0  # never re-sorted within 3 s of the first draw


def test_density_screen_rows_are_the_screeners_and_enter_marks_the_density_on_the_ladder(fed):
    flt = ScreenFilter(min_lifetime_ms=0)
    scr, state, clock, m = make("densities", monitor=fed, density_filter=flt)
    rows = screen_densities(m, flt=flt)
    lines = render(scr, 200, 50)
    drawn = [[c.strip() for c in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    assert drawn and [(d[0], d[1]) for d in drawn] == [(r.symbol, r.side) for r in rows[:len(drawn)]]
    live = next(i for i, r in enumerate(rows) if r.state == "active")
    for _ in range(live):
        state.handle("down")
    state.handle("enter")
    assert state.mode == "ladder" and state.ladder_symbol == rows[live].symbol
    text = "\n".join(render(scr, 200, 50))
    assert f"{rows[live].symbol} ladder" in text
    marked = [line for line in text.splitlines() if "▶" in line]
    dp = m.price_decimals(rows[live].symbol)
    assert len(marked) == 1 and ui.fmt_price(rows[live].price, dp) in marked[0]


def test_help_overlay_replaces_the_body_and_pause_freezes_it():
    scr, state, clock, m = make(symbols=SYMS[:FEW])
    it = iter(frames(30, SYMS[:FEW]))
    for ts, raw in it:
        m.feed(ts * 1_000_000, raw)
        if ts >= 1_767_225_600_000 + 20_000:
            break
    state.handle("?")
    text = "\n".join(render(scr, 100, 40))
    assert "imbalance" in text and "B/S" in text and "lat ms" in text and "┃symbol" not in text
    state.handle("esc")
    state.handle("p")
    before = [line for line in render(scr, 100, 40) if line.startswith("│")]
    for ts, raw in it:
        m.feed(ts * 1_000_000, raw)
    clock.t += 10
    paused = render(scr, 100, 40)
    assert [line for line in paused if line.startswith("│")] == before and "PAUSED" in "\n".join(paused)
    state.handle("p")
    assert [line for line in render(scr, 100, 40) if line.startswith("│")] != before


def test_a_firing_alert_is_named_above_the_table(fed):
    scr, state, clock, m = make(monitor=fed)
    c = Console(width=120, height=40, file=io.StringIO(), color_system=None)
    c.print(scr.body(width=120, height=30, statuses={}, sparks={}, firing={"ETHUSDT": {"tps>0", "spread_bps>1"}}))
    lines = c.file.getvalue().splitlines()
    assert lines[0] == "alerts firing: ETHUSDT spread_bps>1  ·  ETHUSDT tps>0"
    assert lines[1].startswith("┏")
