"""The trader's screen as a person sees it: `bybitmon watch` in tmux against `bybitmon serve
--simulate`, read with capture-pane."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from paths import TIMEOUT_FACTOR

T = 20 * TIMEOUT_FACTOR


@pytest.fixture(scope="module", autouse=True)
def need_tmux():
    if shutil.which("tmux") is None:
        pytest.fail("tmux is required for the screen tests (apt-get install tmux; .ci/run installs it)")


def start_server(port: int = 0) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", "--simulate", "--port", str(port),
                          "--symbols", "BTCUSDT,ETHUSDT"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"(ws://127\.0\.0\.1:\d+)", line)
    assert m, f"serve printed {line!r}"
    return p, m.group(1)


class Screen:
    def __init__(self, cmd: str, width: int = 150, height: int = 40) -> None:
        self.name = f"bm{uuid.uuid4().hex[:8]}"
        # Rich takes COLUMNS/LINES over the terminal's size; a CI runner may export them.
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        f"env -u COLUMNS -u LINES {cmd}; echo EXITED $?; sleep 60"], check=True)

    def text(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-t", self.name, "-p"], capture_output=True, text=True).stdout

    def wait_for(self, pred, what: str, timeout: float = T) -> str:
        end = time.monotonic() + timeout
        while True:
            txt = self.text()
            if pred(txt):
                return txt
            if time.monotonic() > end:
                raise AssertionError(f"screen never showed {what}:\n{txt}")
            time.sleep(0.2)

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def row(txt: str, symbol: str) -> list[str] | None:
    for line in txt.splitlines():
        if line.startswith("│" + symbol):
            return [c.strip() for c in line.strip("│").split("│")]
    return None


def header_cols(txt: str) -> list[str]:
    for line in txt.splitlines():
        if line.startswith("┃symbol"):
            return [c.strip() for c in line.strip("┃").split("┃")]
    return []


def cell(txt: str, symbol: str, col: str) -> str | None:
    r, h = row(txt, symbol), header_cols(txt)
    if r is None or col not in h:
        return None
    return r[h.index(col)]


def sane_mid(txt: str, symbol: str, lo: float, hi: float) -> bool:
    """The price shown: the mid when the terminal is wide enough to show it, else the last trade."""
    v = cell(txt, symbol, "mid") if "mid" in header_cols(txt) else cell(txt, symbol, "last")
    try:
        return v is not None and lo < float(v) < hi
    except ValueError:
        return False


def test_watch_screen_shows_symbols_reconnects_and_recovers():
    server, url = start_server()
    port = url.rsplit(":", 1)[1]
    scr = Screen(f"{sys.executable} -m bybitmon watch BTCUSDT ETHUSDT --url {url}")
    try:
        txt = scr.wait_for(lambda t: sane_mid(t, "BTCUSDT", 50_000, 80_000) and sane_mid(t, "ETHUSDT", 2_500, 4_500),
                           "both symbols with sane mids")
        assert cell(txt, "BTCUSDT", "health") == "ok"
        assert "connected" in txt and "frames/s" in txt and "Ctrl-C" in txt
        spread = float(cell(txt, "BTCUSDT", "spr bps"))
        assert 0 < spread < 50
        imb = float(cell(txt, "ETHUSDT", "imb"))
        assert -1 <= imb <= 1
        server.terminate()
        server.wait(10)
        txt = scr.wait_for(lambda t: (cell(t, "BTCUSDT", "health") or "").startswith("reconnecting"),
                           "reconnecting after the server went away")
        assert cell(txt, "BTCUSDT", "spr bps") == "-"  # no stale book shown as live
        assert cell(txt, "BTCUSDT", "imb") == "-"
        server, _ = start_server(int(port))
        scr.wait_for(lambda t: cell(t, "BTCUSDT", "health") == "ok" and sane_mid(t, "BTCUSDT", 50_000, 80_000)
                     and (cell(t, "BTCUSDT", "spr bps") or "-") != "-",
                     "recovered after the server came back")
        scr.keys("C-c")
        txt = scr.wait_for(lambda t: "EXITED" in t, "a clean exit on Ctrl-C")
        # Ctrl-C ends every command with 130, as shells report a command ended by SIGINT (README).
        assert "EXITED 130" in txt and "Traceback" not in txt
    finally:
        scr.close()
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("width", [80, 150])
def test_ladder_screen_shows_levels_around_mid(width):
    server, url = start_server()
    scr = Screen(f"{sys.executable} -m bybitmon watch BTCUSDT --ladder --url {url}", width=width, height=50)
    try:
        txt = scr.wait_for(lambda t: "ladder" in t and "── mid ──" in t and t.count("█") > 10, "the ladder")
        lines = txt.splitlines()
        assert max(len(l) for l in lines) <= width
        mid_line = next(i for i, l in enumerate(lines) if "── mid ──" in l)
        prices = []
        for l in lines[mid_line - 6: mid_line + 7]:
            m = re.search(r"│\s*(?:[\d.]+ █+)?\s*│\s*(\d{5}\.?\d*)\s*│", l)
            if m:
                prices.append(float(m.group(1)))
        # asks above the mid line descend towards it, bids below keep descending
        assert len(prices) >= 8 and prices == sorted(prices, reverse=True)
    finally:
        scr.close()
        server.terminate()
        server.wait(10)
