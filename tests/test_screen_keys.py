"""Keys on the live screen as a person presses them: `bybitmon watch` in tmux against
`bybitmon serve --simulate`, keys sent with send-keys, the screen read with capture-pane."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from test_screen import T, Screen, cell, header_cols, need_tmux, row, start_server  # noqa: F401

WATCH = f"{sys.executable} -m bybitmon watch"


class KeyScreen(Screen):
    def styled(self) -> str:
        """The screen with its escape codes (to see the highlighted row)."""
        return subprocess.run(["tmux", "capture-pane", "-t", self.name, "-p", "-e"],
                              capture_output=True, text=True).stdout

    def selected_symbol(self) -> str | None:
        for line in self.styled().splitlines():
            if line.startswith("│") and re.search(r"\x1b\[[0-9;]*7m", line):
                return re.sub(r"\x1b\[[0-9;]*m", "", line).strip("│").split("│")[0].strip()
        return None

    def quit_restores_terminal(self, before, after) -> None:
        """``q`` ends the program with status 0, no traceback, and the terminal settings saved
        in ``after`` (``stty -g`` once it exited) equal those in ``before``."""
        self.keys("q")
        txt = self.wait_for(lambda t: "EXITED" in t, "exit on q")
        assert "EXITED 0" in txt and "Traceback" not in txt
        end = time.monotonic() + T
        while not (after.exists() and after.read_text()) and time.monotonic() < end:
            time.sleep(0.1)
        assert before.read_text() and after.read_text() == before.read_text()


@pytest.fixture(scope="module")
def server():
    srv, url = start_server()
    yield url
    srv.terminate()
    srv.wait(10)


def both_rows(t: str) -> bool:
    return row(t, "BTCUSDT") is not None and row(t, "ETHUSDT") is not None and "connected" in t


def order(t: str) -> list[str]:
    return [line.strip("│").split("│")[0].strip() for line in t.splitlines() if line.startswith("│")]


def test_keys_sort_select_filter_pin_pause_help_and_quit_restores_the_terminal(server, tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    scr = KeyScreen(f"stty -g > {before}; {WATCH} BTCUSDT ETHUSDT --url {server}; echo EXITED $?; "
                    f"stty -g > {after}", width=150, height=40)
    try:
        txt = scr.wait_for(both_rows, "both symbols")
        assert "q/Ctrl-C quit" in txt and "s/S sort: tps" in txt and "? help" in txt
        # s / S: next and previous sort column, said in the footer; "symbol" sorts by name.
        scr.keys("s")
        scr.wait_for(lambda t: "sort: tpm" in t, "sort: tpm after s")
        scr.keys("s")
        txt = scr.wait_for(lambda t: "sort: symbol" in t and both_rows(t), "sort: symbol after s s")
        assert order(txt) == ["BTCUSDT", "ETHUSDT"]
        scr.keys("S")
        scr.wait_for(lambda t: "sort: tpm" in t, "sort: tpm after S")
        scr.keys("s")
        scr.wait_for(lambda t: "sort: symbol" in t, "sort: symbol again")
        # Selection: the first row, then j / down / k / up move it.
        scr.wait_for(lambda t: scr.selected_symbol() == "BTCUSDT", "BTCUSDT selected")
        scr.keys("j")
        scr.wait_for(lambda t: scr.selected_symbol() == "ETHUSDT", "ETHUSDT selected after j")
        scr.keys("k")
        scr.wait_for(lambda t: scr.selected_symbol() == "BTCUSDT", "BTCUSDT selected after k")
        scr.keys("Down")
        scr.wait_for(lambda t: scr.selected_symbol() == "ETHUSDT", "ETHUSDT selected after Down")
        scr.keys("Up")
        scr.wait_for(lambda t: scr.selected_symbol() == "BTCUSDT", "BTCUSDT selected after Up")
        scr.keys("End")
        scr.wait_for(lambda t: scr.selected_symbol() == "ETHUSDT", "ETHUSDT selected after End")
        scr.keys("Home")
        scr.wait_for(lambda t: scr.selected_symbol() == "BTCUSDT", "BTCUSDT selected after Home")
        scr.keys("PgDn")
        scr.wait_for(lambda t: scr.selected_symbol() == "ETHUSDT", "ETHUSDT selected after PgDn")
        scr.keys("PgUp")
        scr.wait_for(lambda t: scr.selected_symbol() == "BTCUSDT", "BTCUSDT selected after PgUp")
        # f pins the selected symbol on top, whatever the sort; f again unpins.
        scr.keys("j", "f")
        txt = scr.wait_for(lambda t: order(t) == ["ETHUSDT", "BTCUSDT"], "ETHUSDT pinned on top")
        scr.keys("f")
        scr.wait_for(lambda t: order(t) == ["BTCUSDT", "ETHUSDT"], "unpinned: back to name order")
        # / filters by substring: typed letters (q too) go to the filter, Enter keeps it.
        scr.keys("/", "e", "t")
        scr.wait_for(lambda t: "filter: et" in t, "the filter being typed")
        scr.keys("Enter")
        txt = scr.wait_for(lambda t: order(t) == ["ETHUSDT"] and "1 filtered out" in t, "only ETHUSDT")
        scr.keys("Escape")
        scr.wait_for(lambda t: order(t) == ["BTCUSDT", "ETHUSDT"], "the filter cleared by Esc")
        # p pauses the display: the rows hold still while data keeps flowing.
        scr.keys("p")
        frozen = scr.wait_for(lambda t: "PAUSED" in t, "PAUSED in the footer")
        time.sleep(2.0)
        still = scr.text()
        assert row(still, "BTCUSDT") == row(frozen, "BTCUSDT") and row(still, "ETHUSDT") == row(frozen, "ETHUSDT")
        scr.keys("p")
        scr.wait_for(lambda t: "PAUSED" not in t and both_rows(t), "resumed")
        # ? opens the help (it explains imb, B/S, lat), Esc closes it.
        scr.keys("?")
        txt = scr.wait_for(lambda t: "imbalance" in t and "B/S" in t and "lat ms" in t, "the help overlay")
        assert row(txt, "BTCUSDT") is None
        scr.keys("Escape")
        scr.wait_for(both_rows, "the table after the help")
        # q quits with status 0 and the terminal's settings are what they were.
        scr.quit_restores_terminal(before, after)
    finally:
        scr.close()


def test_density_screen_enter_opens_the_ladder_at_the_density_and_esc_returns(server):
    scr = KeyScreen(f"{WATCH} BTCUSDT ETHUSDT --url {server} --min-lifetime 0", width=150, height=40)
    try:
        scr.wait_for(both_rows, "both symbols")
        scr.keys("d")
        # A whole frame of the density screen: the rows and, below them, its key line (a
        # capture can land while the terminal is still being written, rows drawn, footer not).
        txt = scr.wait_for(lambda t: "dist%" in t and "notional" in t and "ETA" in t
                           and (row(t, " BTCUSDT") or row(t, " ETHUSDT")) and "d table" in t, "density rows")
        assert "s/S sort: distance" in txt and "d table" in txt
        scr.keys("s")
        scr.wait_for(lambda t: "sort: notional" in t, "density sort: notional")
        scr.keys("S")
        scr.wait_for(lambda t: "sort: distance" in t, "density sort: distance")
        scr.keys("p")  # hold the rows still so the selection is read off a fixed screen
        txt = scr.wait_for(lambda t: "PAUSED" in t, "paused")
        sel = re.sub(r"\x1b\[[0-9;]*m", "", next(line for line in scr.styled().splitlines()
                                                  if line.startswith("│") and re.search(r"\x1b\[[0-9;]*7m", line)))
        cells = [c.strip() for c in sel.strip("│").split("│")]
        symbol, side, price = cells[0], cells[1], cells[2]
        scr.keys("p", "Enter")
        txt = scr.wait_for(lambda t: f"{symbol} ladder" in t and "── mid ──" in t, f"the {symbol} ladder")
        if "▶" in txt:  # the density still rests: it is marked on its row at its price
            marked = next(line for line in txt.splitlines() if "▶" in line)
            assert price in marked
        assert side in ("bid", "ask")
        scr.keys("Escape")
        scr.wait_for(lambda t: "dist%" in t and "── mid ──" not in t, "back on the density screen")
        scr.keys("d")
        scr.wait_for(both_rows, "back on the table")
        scr.keys("q")
        assert "EXITED 0" in scr.wait_for(lambda t: "EXITED" in t, "exit on q")
    finally:
        scr.close()


def test_enter_on_the_table_opens_the_selected_ladder_and_esc_returns(server):
    scr = KeyScreen(f"{WATCH} BTCUSDT ETHUSDT --url {server} --sort symbol", width=120, height=40)
    try:
        scr.wait_for(both_rows, "both symbols")
        scr.keys("j", "Enter")
        scr.wait_for(lambda t: "ETHUSDT ladder" in t and "── mid ──" in t, "the ETHUSDT ladder")
        scr.keys("Escape")
        scr.wait_for(lambda t: both_rows(t) and "── mid ──" not in t, "the table again")
        scr.keys("q")
        assert "EXITED 0" in scr.wait_for(lambda t: "EXITED" in t, "exit on q")
    finally:
        scr.close()


@pytest.mark.parametrize("width,height", [(80, 24), (200, 50)])
def test_ladder_shows_asks_mid_and_as_many_bids_at_any_size(server, width, height):
    scr = KeyScreen(f"{WATCH} BTCUSDT --ladder --url {server}", width=width, height=height)
    try:
        txt = scr.wait_for(lambda t: "── mid ──" in t and t.count("█") > 4 and "q/Ctrl-C quit" in t, "the ladder")
        lines = txt.splitlines()
        assert max(len(line) for line in lines) <= width
        mid = next(i for i, line in enumerate(lines) if "── mid ──" in line)
        price_re = re.compile(r"│\s*(?:[\d.]+ █+)?\s*│\s*(\d{5}\.?\d*)\s*│")
        asks = [float(m.group(1)) for line in lines[:mid] if (m := price_re.search(line))]
        bids = [float(m.group(1)) for line in lines[mid + 1:] if (m := price_re.search(line))]
        assert len(asks) == len(bids) >= 4, (asks, bids)
        assert asks == sorted(asks, reverse=True) and bids == sorted(bids, reverse=True) and asks[-1] > bids[0]
        if height >= 50:
            assert len(bids) >= 12
        assert any("q/Ctrl-C quit" in line for line in lines[mid:])  # the footer is on screen
        scr.keys("Escape")  # --ladder starts on the ladder; Esc goes to the table
        scr.wait_for(lambda t: row(t, "BTCUSDT") is not None and "── mid ──" not in t, "the table")
    finally:
        scr.close()


def test_without_a_terminal_on_stdin_keys_are_not_read(server):
    scr = KeyScreen(f"{WATCH} BTCUSDT --url {server} --duration 6s < /dev/null", width=120, height=30)
    try:
        txt = scr.wait_for(lambda t: row(t, "BTCUSDT") is not None and "Ctrl-C quit" in t, "the table")
        assert "q/Ctrl-C" not in txt and "? help" not in txt
        scr.keys("q")
        time.sleep(1.0)
        assert "EXITED" not in scr.text()  # q is not a key here; the run ends at --duration
        assert "EXITED 0" in scr.wait_for(lambda t: "EXITED" in t, "the end of --duration")
    finally:
        scr.close()


def test_watch_json_writes_a_densities_line_per_interval(server):
    """`watch --json`: snapshot lines as before, plus one densities line per interval that
    honours the screen's filters."""
    import orjson

    p = subprocess.run([*sys.executable.split(), "-m", "bybitmon", "watch", "BTCUSDT", "ETHUSDT", "--url", server,
                        "--json", "--duration", "5s", "--max-distance", "0.5", "--min-lifetime", "0"],
                       capture_output=True, text=True, timeout=60 * T)
    assert p.returncode == 0, p.stderr
    lines = [orjson.loads(line) for line in p.stdout.splitlines()]
    dens = [line for line in lines if line["type"] == "densities"]
    snaps = [line for line in lines if line["type"] == "snapshot"]
    assert len(dens) >= 3 and {s["symbol"] for s in snaps} == {"BTCUSDT", "ETHUSDT"}
    assert {line["type"] for line in lines} == {"snapshot", "densities"}
    rows = [r for d in dens for r in d["rows"]]
    assert rows, "no density in 5 s of the simulated market"
    for d in dens:
        assert d["v"] == 1 and d["category"] == "linear" and d["filter"]["max_distance_pct"] == 0.5
        live = [r for r in d["rows"] if r["state"] in ("active", "ending")]
        assert [r["distance_pct"] for r in live] == sorted(r["distance_pct"] for r in live)
        for r in d["rows"]:
            assert r["distance_pct"] <= 0.5
            assert r["notional"] == pytest.approx(r["price"] * r["size"], rel=1e-12)
            assert r["distance_pct"] == pytest.approx(abs(r["price"] - r["last_price"]) / r["last_price"] * 100, rel=1e-12)
