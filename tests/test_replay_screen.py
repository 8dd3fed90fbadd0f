"""`bybitmon replay` on a terminal, as a person uses it: the quick start's simulated market in
tmux answers watch's keys (density screen, ladder, sort, quit), ends by itself showing the final
table, and Ctrl-C ends it with 130. Piped, it prints the final table as before."""

from __future__ import annotations

import re
import subprocess
import sys

from test_screen import T, Screen, need_tmux  # noqa: F401

REPLAY = f"{sys.executable} -m bybitmon replay --simulate"


def test_keys_switch_views_and_q_quits_with_status_0():
    s = Screen(f"{REPLAY} --duration 60s", width=80, height=24)
    try:
        txt = s.wait_for(lambda t: "BTCUSDT" in t and "d densities" in t, "the table with its key footer")
        # Simulated numbers say so, uncut, at 80 columns.
        assert txt.splitlines()[0].startswith("bybitmon SIMULATED DATA  linear, seed 1  "), txt
        assert re.search(r" \d+ frames/s  2 symbols  1x$", txt.splitlines()[0].rstrip()), txt
        s.keys("d")
        txt = s.wait_for(lambda t: "densities:" in t and "dist%" in t, "the density screen")
        assert re.search(r"│ (BTC|ETH)USDT +│ (bid|ask) ", txt), txt
        s.keys("Enter")
        txt = s.wait_for(lambda t: "ladder" in t and "── mid ──" in t, "the ladder of the selected density")
        assert len([l for l in txt.splitlines() if l.strip()]) <= 24
        s.keys("Escape")
        s.wait_for(lambda t: "densities:" in t, "back to the density screen")
        s.keys("d")
        s.wait_for(lambda t: "sort: tps" in t and "TPS" in t, "back to the table")
        s.keys("s")
        s.wait_for(lambda t: "sort: tpm" in t, "the next sort key")
        s.keys("q")
        s.wait_for(lambda t: "EXITED 0" in t, "exit status 0 after q")
    finally:
        s.close()


def test_the_end_of_the_input_leaves_the_final_table_and_ctrl_c_is_130():
    s = Screen(f"{REPLAY} --duration 3s", width=200, height=50)
    try:
        txt = s.wait_for(lambda t: "EXITED" in t, "the end of the replay")
        assert "EXITED 0" in txt
        assert re.search(r"│BTCUSDT +│ +\d", txt) and re.search(r"│ETHUSDT +│ +\d", txt), txt
    finally:
        s.close()
    s = Screen(f"{REPLAY} --duration 60s", width=80, height=24)
    try:
        s.wait_for(lambda t: "BTCUSDT" in t, "the table")
        s.keys("C-c")
        s.wait_for(lambda t: "EXITED 130" in t, "exit status 130 after Ctrl-C")
    finally:
        s.close()


def test_piped_output_is_the_final_table_without_keys():
    p = subprocess.run([sys.executable, "-m", "bybitmon", "replay", "--simulate", "--duration", "2s", "--speed", "20"],
                       capture_output=True, text=True, timeout=T, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "d densities" not in p.stdout
    assert p.stdout.count("BTCUSDT") == 1 and p.stdout.count("ETHUSDT") == 1
