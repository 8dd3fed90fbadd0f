"""The interactive screen's state machine (bybitmon.ui.screen): keys and times in, rows out."""

from __future__ import annotations

from dataclasses import dataclass

from bybitmon.ui.screen import HELP, ScreenState, footer_keys

SORTS = ("tps", "tpm", "symbol")
SYMS = [f"S{i:02d}USDT" for i in range(30)]


def state(**kw) -> ScreenState:
    return ScreenState(SORTS, "tps", ("distance", "notional"), resort_s=3.0, **kw)


def keys(st: ScreenState, *ks: str) -> None:
    for k in ks:
        st.handle(k)


def test_q_quits_and_ctrl_c_too():
    st = state()
    keys(st, "q")
    assert st.quit
    st = state()
    keys(st, "ctrl-c")
    assert st.quit


def test_s_and_shift_s_cycle_the_sort_both_ways():
    st = state()
    keys(st, "s")
    assert st.sort == "tpm"
    keys(st, "s", "s")
    assert st.sort == "tps"
    keys(st, "S")
    assert st.sort == "symbol"


def test_selection_moves_with_arrows_and_jk_and_follows_its_symbol():
    st = state()
    v = st.arrange(SYMS, 0.0, page=10)
    assert v.selected == 0 and st.selected == SYMS[0]
    keys(st, "down", "j", "j")
    v = st.arrange(SYMS, 0.1, page=10)
    assert st.selected == SYMS[3] and v.selected == 3
    keys(st, "k")
    assert st.selected == SYMS[2]
    # A re-sort that moves the selected symbol: the selection stays on the symbol, on its line.
    ranked = [s for s in SYMS if s != SYMS[2]]
    ranked.insert(15, SYMS[2])
    v = st.arrange(ranked, 10.0, page=10)
    assert st.selected == SYMS[2] and v.rows[v.selected] == SYMS[2] and v.selected == 15
    assert v.selected - v.start == 2
    # Near the end the view cannot scroll that far: the row is still shown, selected.
    v = st.arrange(list(reversed(SYMS)), 20.0, page=10)
    assert v.rows[v.selected] == SYMS[2] and v.start <= v.selected < v.stop == 30


def test_rows_hold_their_order_between_resorts():
    st = state()
    st.arrange(SYMS, 0.0, page=10)
    shuffled = SYMS[1:] + SYMS[:1]
    v = st.arrange(shuffled, 1.0, page=10)
    assert v.rows == SYMS  # within resort_s: unchanged
    v = st.arrange(shuffled, 3.0, page=10)
    assert v.rows == shuffled  # after it: re-sorted


def test_newcomers_are_slotted_in_and_leavers_dropped_without_a_resort():
    st = state()
    st.arrange(["A", "B", "C"], 0.0, page=10)
    v = st.arrange(["C", "X", "A"], 1.0, page=10)
    assert v.rows == ["A", "X", "C"]


def test_sort_change_resorts_at_once():
    st = state()
    st.arrange(SYMS, 0.0, page=10)
    keys(st, "s")
    v = st.arrange(list(reversed(SYMS)), 0.5, page=10)
    assert v.rows == list(reversed(SYMS))


def test_pgdn_pgup_home_end_scroll():
    st = state()
    st.arrange(SYMS, 0.0, page=10)
    keys(st, "pgdn")
    v = st.arrange(SYMS, 0.1, page=10)
    assert st.selected == SYMS[10] and v.start <= 10 < v.stop
    keys(st, "end")
    v = st.arrange(SYMS, 0.2, page=10)
    assert st.selected == SYMS[-1] and v.stop == 30 and v.start == 20
    keys(st, "pgup")
    v = st.arrange(SYMS, 0.3, page=10)
    assert st.selected == SYMS[19] and v.start <= 19 < v.stop
    keys(st, "home")
    v = st.arrange(SYMS, 0.4, page=10)
    assert st.selected == SYMS[0] and v.start == 0


def test_slash_filters_by_substring_and_esc_clears():
    st = state()
    st.arrange(SYMS, 0.0, page=10)
    keys(st, "/", "1", "q")  # q is typed while editing, not quit
    assert st.editing and st.filter == "1q" and not st.quit
    keys(st, "backspace", "enter")
    v = st.arrange(SYMS, 0.1, page=40)
    assert not st.editing and v.rows == [s for s in SYMS if "1" in s]
    assert "filter: 1" in footer_keys(st)
    keys(st, "esc")
    v = st.arrange(SYMS, 0.2, page=40)
    assert st.filter == "" and v.rows == SYMS


def test_f_pins_the_selected_symbol_at_the_top_and_unpins():
    st = state()
    st.arrange(SYMS, 0.0, page=10)
    keys(st, "j", "j", "j", "j", "j", "f")
    v = st.arrange(SYMS, 0.1, page=10)
    assert v.rows[0] == SYMS[5] and v.rows[1:] == SYMS[:5] + SYMS[6:]
    v = st.arrange(list(reversed(SYMS)), 10.0, page=10)
    assert v.rows[0] == SYMS[5]  # pinned stays on top through a re-sort
    keys(st, "f")
    v = st.arrange(SYMS, 20.0, page=10)
    assert v.rows == SYMS


def test_p_pauses_and_resumes():
    st = state()
    keys(st, "p")
    assert st.paused and footer_keys(st).startswith("PAUSED")
    keys(st, "p")
    assert not st.paused


def test_d_switches_table_and_density_screen():
    st = state()
    keys(st, "d")
    assert st.mode == "densities" and "s/S sort: distance" in footer_keys(st)
    keys(st, "s")
    assert st.density_sort == "notional" and st.sort == "tps"
    keys(st, "d")
    assert st.mode == "table"


def test_enter_opens_the_ladder_and_esc_returns():
    st = state()
    st.arrange(SYMS, 0.0, page=10)
    keys(st, "j", "enter")
    assert st.mode == "ladder" and st.ladder_symbol == SYMS[1] and st.ladder_price is None
    keys(st, "esc")
    assert st.mode == "table"


@dataclass
class Row:
    symbol: str
    side: str
    price: float

    @property
    def key(self):
        return self.symbol, self.side, self.price


def test_enter_on_a_density_opens_its_ladder_at_its_price():
    st = state()
    keys(st, "d")
    rows = [Row("BTCUSDT", "bid", 100.0), Row("ETHUSDT", "ask", 3.5), Row("BTCUSDT", "ask", 101.0)]
    v = st.arrange_densities(rows, 0.0, page=10)
    assert [r.key for r in v.rows] == [r.key for r in rows]
    keys(st, "down", "enter")
    assert st.mode == "ladder" and st.ladder_symbol == "ETHUSDT" and st.ladder_price == 3.5
    keys(st, "esc")
    assert st.mode == "densities"
    # The selection follows the density when the rows re-rank.
    v = st.arrange_densities(list(reversed(rows)), 10.0, page=10)
    assert v.rows[v.selected].key == ("ETHUSDT", "ask", 3.5)


def test_question_mark_toggles_help_and_help_names_the_columns():
    st = state()
    keys(st, "?")
    assert st.help
    keys(st, "j")
    assert st.help  # keys other than ?/Esc/q do not leak through the overlay
    keys(st, "esc")
    assert not st.help
    for word in ("imb", "B/S", "heat", "lat ms", "ETA", "60s↑"):
        assert word in HELP


def test_ladder_mode_from_the_command_line_goes_back_to_the_table():
    st = state(mode="ladder", ladder_symbol="BTCUSDT")
    keys(st, "esc")
    assert st.mode == "table"


def test_every_changing_key_is_counted_for_a_redraw():
    st = state()
    st.arrange(SYMS, 0.0, page=10)
    n = st.changes
    keys(st, "j")
    assert st.changes == n + 1
    keys(st, "x")  # no meaning
    assert st.changes == n + 1
