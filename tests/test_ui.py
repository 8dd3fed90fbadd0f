from __future__ import annotations

import io

from rich.console import Console

from bybitmon import ui
from bybitmon.core.monitor import Monitor
from bybitmon.sim.market import MarketSimulator


def snaps(n: int = 3) -> tuple[Monitor, list[dict]]:
    syms = ["BTCUSDT", "ETHUSDT", "SOLUSDT"][:n]
    m = Monitor("linear")
    for ts, raw in MarketSimulator(syms, seed=3).frames(20_000):
        m.feed(ts * 1_000_000, raw)
    return m, [m.snapshot(s) for s in syms]


def render(renderable, width: int) -> str:
    c = Console(width=width, file=io.StringIO(), color_system=None)
    c.print(renderable)
    return c.file.getvalue()


def test_table_fits_the_terminal_and_drops_columns_by_priority():
    m, ss = snaps()
    for width in (80, 100, 132, 200):
        text = render(ui.activity_table(ss, width=width), width)
        assert max(len(line) for line in text.splitlines()) <= width
        assert "symbol" in text and "TPS" in text and "health" in text  # never dropped
    narrow = render(ui.activity_table(ss, width=80), 80)
    wide = render(ui.activity_table(ss, width=200), 200)
    assert "mid" not in narrow.splitlines()[1] and "mid" in wide.splitlines()[1]
    assert len(narrow.splitlines()) == len(wide.splitlines()) == 3 + 4


def test_row_cells_show_the_snapshot_numbers():
    m, ss = snaps(1)
    cells = ui.row_cells(ss[0], dp=m.price_decimals("BTCUSDT"))
    assert cells["last"] == f"{ss[0]['trades']['last_price']:.1f}"
    spread = ss[0]["book"]["spread_bps"]
    assert 0 < spread < 1 and str(cells["spread"]) == f"{spread:.3f}"  # fixed: 3 decimals below 1 bps
    assert str(cells["health"]) == "ok"


def test_not_ready_book_shows_dashes_and_status():
    m, ss = snaps(1)
    m.invalidate("BTCUSDT")
    cells = ui.row_cells(m.snapshot("BTCUSDT"), status="reconnecting 2")
    assert cells["mid"] == "-" and cells["spread"] == "-" and str(cells["imb"]) == "-"
    assert str(cells["health"]) == "reconnecting 2"


def test_rows_beyond_the_screen_are_counted_not_drawn():
    m, ss = snaps()
    text = render(ui.activity_table(ss, width=120, max_rows=2), 120)
    assert "SOLUSDT" not in text and "1 more symbols" in text


def test_sparkline_and_numbers():
    assert ui.sparkline([1, 2, 3, 4, 5, 6, 7, 8], 16) == "▁▂▃▄▅▆▇█"
    assert len(ui.sparkline(list(range(180)), 16)) == 16
    assert ui.fmt_num(None) == "-" and ui.fmt_num(0.0154, 3) == "0.0154" and ui.fmt_num(1_234_567.0) == "1.23M"
    assert ui.fmt_price(65114.3, 2) == "65114.30"


def test_ladder_fits_the_terminal_and_never_cuts_a_price():
    m = Monitor("linear")
    sim = MarketSimulator(["BTCUSDT"], seed=5)
    for ts, raw in sim.frames(30_000):
        m.feed(ts * 1_000_000, raw)
    snap = m.snapshot("BTCUSDT")
    dp = m.price_decimals("BTCUSDT")
    levels = m.ladder_levels("BTCUSDT", 12)
    shown = [ui.fmt_price(p, dp, 7) for p, _ in levels["asks"][:12] + levels["bids"][:12]]
    assert len(shown) == 24
    bars = {}
    for width in (60, 80, 100, 150, 220):
        text = render(ui.ladder("BTCUSDT", snap, levels, width=width, dp=dp), width)
        assert max(len(line) for line in text.splitlines()) <= width, width
        body = [line for line in text.splitlines() if line.startswith("│")]
        cells = [[c.strip() for c in line.strip("│").split("│")] for line in body]
        prices = [c[1] for c in cells if c[1] != ui.MID_RULE]
        assert prices == [ui.fmt_price(p, dp, 7) for p, _ in reversed(levels["asks"][:12])] + \
            [ui.fmt_price(p, dp, 7) for p, _ in levels["bids"][:12]], width
        bars[width] = max(line.count("█") for line in body)
    # wider terminals get longer bars, up to a cap
    assert bars[60] < bars[100] <= bars[150] and bars[220] <= 40


# What each --sort key orders by, read off a snapshot (as JSON): largest first; -1 for a book
# that is not ready, 0 heat before any.
SNAPSHOT_SORT_VALUES = {
    "tps": lambda s: s["trades"]["tps"],
    "tpm": lambda s: s["trades"]["tpm"],
    "spread": lambda s: s["book"]["spread_bps"] if s["book"]["spread_bps"] is not None else -1.0,
    "imbalance": lambda s: abs(s["book"]["imbalance"]) if s["book"]["imbalance"] is not None else -1.0,
    "vdelta": lambda s: abs(s["trades"]["volume_delta"]),
    "volume": lambda s: s["trades"]["buy_volume"] + s["trades"]["sell_volume"],
    "heat": lambda s: s["trades"]["heat"] if s["trades"]["heat"] is not None else 0.0,
}


def test_row_order_matches_the_snapshot_values_for_every_sort_key():
    """watch orders rows from values read off the pipeline (cheap) and snapshots only the rows
    it draws; the order must be the one the snapshots' own numbers give."""
    from bybitmon.app.board import SORT_KEYS, Board

    def order_symbols(monitor, symbols, key):  # the screen's row order, as watch builds it
        return Board.of(monitor, symbols).order(key)

    syms = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
    m = Monitor("linear")
    for ts, raw in MarketSimulator(syms[:4], seed=8).frames(30_000):
        m.feed(ts * 1_000_000, raw)
    m.invalidate("SOLUSDT")      # a book that is not ready sorts last on book keys
    full = {s: m.snapshot(s) for s in syms}   # DOGEUSDT: never seen, zeros and dashes
    assert set(SORT_KEYS) == set(SNAPSHOT_SORT_VALUES) | {"symbol"}
    for key, get in SNAPSHOT_SORT_VALUES.items():
        want = sorted(syms, key=lambda s: (-get(full[s]), s))
        assert order_symbols(m, syms, key) == want, key
        assert order_symbols(Monitor("linear"), syms, key) == sorted(syms)  # nothing seen yet
    assert order_symbols(m, syms, "symbol") == sorted(syms)
    assert order_symbols(m, syms, "spread")[-2:] == ["DOGEUSDT", "SOLUSDT"]
    drawn = [full[s] for s in order_symbols(m, syms, "tps")[:2]]
    text = render(ui.activity_table(drawn, width=120, max_rows=2, n_symbols=len(syms)), 120)
    assert "3 more symbols" in text


def test_fit_columns_keeps_columns_by_priority_while_they_fit():
    """ui.fmt.fit_columns, shared by the symbol table and the density screen: widths from the
    header, the cells, the minimum and the held widths; columns by priority while they fit."""
    from rich.text import Text

    from bybitmon.ui.fmt import fit_columns

    cols = [("a", "aa", 0, 0), ("b", "b", 2, 0), ("c", "cccc", 1, 0), ("d", "d", 3, 0), ("e", "e", 4, 0)]
    rows = [{"a": Text("x" * 5), "b": Text("y" * 9), "c": Text("z"), "d": Text("w" * 3), "e": Text("v"),
             "other": Text("q" * 50)}]
    widths = {"a": 5, "b": 9, "c": 4, "d": 3, "e": 2}
    by_prio = ["a", "c", "b", "d", "e"]
    for width in range(1, 50):
        held: dict[str, int] = {}
        keep, ws = fit_columns(cols, rows, width, min_widths={"e": 2}, held=held)
        keys = [k for k, _ in keep]
        assert held == widths
        assert keys == [k for k in "abcde" if k in keys]                 # display order
        assert set(keys) == set(by_prio[:len(keys)])                      # a prefix by priority
        assert ws == [widths[k] for k in keys]
        used = 1 + sum(w + 3 for w in ws)
        assert used <= width or keys == ["a"]                             # fits, or only priority 0
        if len(keys) < 5:
            assert used + widths[by_prio[len(keys)]] + 3 > width            # the next one would not fit
    keep, _ = fit_columns(cols, rows, 10, promote=("e",))
    assert [k for k, _ in keep] == ["a", "e"]
    held = {"b": 20}
    _, ws = fit_columns(cols, rows, 200, held=held)
    assert ws[1] == 20 and held["b"] == 20                                # a held width never narrows
