"""Keys on `bybitmon watch --all` as a person presses them: in tmux against `bybitmon serve
--simulate` (which answers the instrument list over REST too), keys sent with send-keys, the
screen read with capture-pane; at 80x24 and 200x50, one category and two."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from test_screen import need_tmux  # noqa: F401
from test_screen_keys import KeyScreen

SYMS = [f"K{i:02d}USDT" for i in range(12)]


@pytest.fixture(scope="module")
def server():
    p = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", "--simulate", "--port", "0",
                          "--symbols", ",".join(SYMS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.search(r"(ws://127\.0\.0\.1:\d+)", p.stdout.readline())
    assert m, "serve printed no URL"
    yield m.group(1)
    p.terminate()
    p.wait(10)


def labels(t: str) -> list[str]:
    """The first cell of every table row on screen."""
    return [line.strip("│").split("│")[0].strip() for line in t.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("width,height,category", [(80, 24, "linear"), (200, 50, "linear,spot"),
                                                   (80, 24, "linear,spot")])
def test_all_answers_every_key(server, tmp_path, width, height, category):
    tags = ["lin", "spot"] if "," in category else [None]
    every = sorted(f"{s}/{t}" if t else s for s in SYMS for t in tags)
    before, after = tmp_path / "before", tmp_path / "after"
    scr = KeyScreen(f"stty -g > {before}; env -u BYBITMON_URL {sys.executable} -m bybitmon watch --all "
                    f"--url {server} --category {category} --min-lifetime 0; echo EXITED $?; stty -g > {after}",
                    width=width, height=height)
    try:
        def table(t: str) -> bool:
            rows = labels(t)
            return "connected" in t and len(rows) >= 5 and set(rows) <= set(every) and "sort: heat" in t

        txt = scr.wait_for(table, "the --all table sorted by heat")
        assert "q/Ctrl-C quit" in txt and f"{len(every)} symbols" in txt
        assert max(len(line) for line in txt.splitlines()) <= width
        page = len(labels(txt))
        assert page == len(every) or f"of {len(every)}" in txt  # rows that do not fit say so
        # s: heat -> tps -> tpm -> symbol; S goes back.
        scr.keys("s")
        scr.wait_for(lambda t: "sort: tps" in t, "sort: tps after s")
        scr.keys("s", "s")
        txt = scr.wait_for(lambda t: "sort: symbol" in t and labels(t) == every[:page], "rows by name")
        scr.keys("S")
        scr.wait_for(lambda t: "sort: tpm" in t, "sort: tpm after S")
        scr.keys("s")
        scr.wait_for(lambda t: "sort: symbol" in t and labels(t) == every[:page], "rows by name again")
        # The selection: the first row; j / Down move it, End reaches the last row (scrolling).
        scr.wait_for(lambda t: scr.selected_symbol() == every[0], "the first row selected")
        scr.keys("j")
        scr.wait_for(lambda t: scr.selected_symbol() == every[1], "the second row after j")
        scr.keys("Down")
        scr.wait_for(lambda t: scr.selected_symbol() == every[2], "the third row after Down")
        scr.keys("End")
        scr.wait_for(lambda t: scr.selected_symbol() == every[-1] and every[-1] in labels(t), "the last row after End")
        scr.keys("Home")
        scr.wait_for(lambda t: scr.selected_symbol() == every[0] and labels(t)[0] == every[0], "the first after Home")
        # / filters rows by substring (the category tag too), Enter keeps, Esc clears.
        scr.keys("/", "K05")
        scr.wait_for(lambda t: "filter: K05" in t, "the filter being typed")
        scr.keys("Enter")
        want = [e for e in every if "K05" in e]
        scr.wait_for(lambda t: labels(t) == want, f"only {want}")
        scr.keys("Escape")
        scr.wait_for(lambda t: labels(t) == every[:page], "the filter cleared")
        # Enter: the selected row's ladder (asks, mid, bids); Esc back to the table.
        scr.keys("j", "Enter")
        txt = scr.wait_for(lambda t: f"{every[1]} ladder" in t and "── mid ──" in t and t.count("█") > 4,
                           f"the {every[1]} ladder")
        assert max(len(line) for line in txt.splitlines()) <= width
        scr.keys("Escape")
        scr.wait_for(lambda t: labels(t) == every[:page] and "── mid ──" not in t, "the table after the ladder")
        # d: the density screen over every followed symbol of every category, and back.
        scr.keys("d")
        txt = scr.wait_for(lambda t: "dist%" in t and "densities:" in t and labels(t), "density rows")
        dens = labels(txt)
        assert dens and all(r in every for r in dens), dens
        if len(tags) == 2:
            scr.wait_for(lambda t: {r.split("/")[1] for r in labels(t)} == {"lin", "spot"},
                         "densities of both categories")
        scr.keys("d")
        scr.wait_for(lambda t: labels(t) == every[:page] and "dist%" not in t, "the table after d")
        # q: exit 0, the terminal's settings as they were.
        scr.quit_restores_terminal(before, after)
    finally:
        scr.close()
