"""``bybitmon serve`` as a user runs it: the banner, ``--verbose`` logging, and fault counts on exit."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import orjson
from websockets.sync.client import connect

from paths import TIMEOUT_FACTOR

T = 2.0 * TIMEOUT_FACTOR


def test_banner_verbose_log_and_fault_counts_on_exit():
    p = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", "--simulate", "--port", "0", "--verbose",
                          "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT", "--faults", "gap=0.5"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = [p.stdout.readline()]
        while not banner[-1].startswith("try:") and banner[-1]:
            banner.append(p.stdout.readline())
        url = re.search(r"(ws://127\.0\.0\.1:\d+)", banner[0]).group(1)
        text = "".join(banner)
        assert "categories: spot, linear, inverse" in text
        assert "symbols: BTCUSDT, ETHUSDT, SOLUSDT (3)" in text
        assert "depths: 1 (10 ms), 50 (20 ms), 200 (100 ms), 1000 (200 ms)" in text
        assert "faults: gap=0.5" in text
        assert re.search(r"try: bybitmon watch BTCUSDT ETHUSDT --url ws://", text)
        with connect(f"{url}/v5/public/linear") as ws:
            ws.send('{"op":"subscribe","args":["orderbook.200.BTCUSDT"]}')
            assert orjson.loads(ws.recv(T))["success"] is True
            for _ in range(20):  # let the plan hit some deltas
                ws.recv(T)
            ws.send('{"op":"subscribe","args":["orderbook.500.BTCUSDT"]}')
            while "topic" in (msg := orjson.loads(ws.recv(T))):
                pass
            assert msg["success"] is False
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10 * T)
    assert "linear 127.0.0.1:" in err and "connected" in err
    assert "subscribed 1 topic(s): orderbook.200.BTCUSDT" in err
    assert "refused subscribe: error:handler not found,topic:orderbook.500.BTCUSDT" in err
    assert "fault gap on the next delta of linear orderbook.200.BTCUSDT" in err
    counts = re.search(r"faults injected: (.*)", out)
    assert counts and re.search(r"\bgap=\d+", counts.group(1)), out
