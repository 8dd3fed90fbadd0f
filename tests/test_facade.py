"""The seed's library API (TradesAggregator, OrderBookManager, BybitWebSocketClient) against
the loopback Bybit server, and the report's three examples run as a user would run them."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path


from bybitmon import BybitWebSocketClient, OrderBookManager, TradesAggregator
from bybitmon.core.events import BookUpdate, TradeBatch
from bybitmon.testserver.app import BybitServer, SimulatedSource

from helpers import eventually, run
from paths import TIMEOUT_FACTOR

T = 15 * TIMEOUT_FACTOR
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = dict(quiet_s=0.5, pong_timeout_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.5)




def test_callbacks_get_typed_events_sync_and_async():
    async def scenario():
        async with BybitServer(SimulatedSource(["BTCUSDT"], seed=2, trade_rate=20)) as srv:
            books: list[BookUpdate] = []
            trades: list[TradeBatch] = []

            async def on_trade(ev):
                trades.append(ev)

            ws = BybitWebSocketClient(on_trade=on_trade, on_orderbook=books.append, category="linear", url=srv.url)
            await ws.start()
            await ws.subscribe_trades("BTCUSDT")
            await ws.subscribe_orderbook("BTCUSDT", depth=50)
            await eventually(lambda: len(books) > 5 and len(trades) > 2, what="events")
            assert ws.connected
            assert books[0].is_snapshot and books[0].symbol == "BTCUSDT"
            assert all(isinstance(t, TradeBatch) and t.trades for t in trades)
            await ws.stop()
            assert not ws.connected
    run(scenario())


def test_failing_user_callback_is_logged_once_and_never_kills_the_connection(caplog):
    async def scenario():
        async with BybitServer(SimulatedSource(["BTCUSDT"], seed=2)) as srv:
            seen = []

            def bad(ev):
                seen.append(ev)
                raise RuntimeError("user bug")

            ws = BybitWebSocketClient(on_orderbook=bad, category="linear", url=srv.url)
            await ws.start()
            await ws.subscribe_orderbook("BTCUSDT")
            await eventually(lambda: len(seen) > 20, what="many callbacks")
            assert ws.connected and ws.feed.health[0].reconnects == 0
            await ws.stop()
    with caplog.at_level(logging.ERROR, logger="bybitmon"):
        run(scenario())
    msgs = [r.getMessage() for r in caplog.records if "user bug" in r.getMessage()]
    assert len(msgs) == 1


def test_two_aggregators_share_one_connection_and_match_the_core():
    async def scenario():
        async with BybitServer(SimulatedSource(["BTCUSDT", "ETHUSDT"], seed=4, trade_rate=20)) as srv:
            trades = TradesAggregator(category="linear", url=srv.url)
            books = OrderBookManager(category="linear", url=srv.url)
            await trades.start()
            await books.start()
            assert trades.bybit_ws is books.bybit_ws and trades.bybit_ws.connected
            for s in ("BTCUSDT", "ETHUSDT"):
                await trades.subscribe(s)
                await books.subscribe(s)
            await eventually(lambda: books.get_snapshot("ETHUSDT") is not None and trades.get_tps("BTCUSDT") > 0,
                             what="data")
            assert srv.connections("linear") == 1
            m = trades.bybit_ws.monitor
            snap = m.snapshot("BTCUSDT")
            assert trades.get_tpm("BTCUSDT", "60s") == snap["trades"]["tpm"]
            assert trades.get_vol_delta("BTCUSDT") == snap["trades"]["volume_delta"]
            assert trades.get_buy_sell_ratio("BTCUSDT") == snap["trades"]["buy_sell_ratio"]
            assert trades.get_tps("BTCUSDT", "10s") == m.trade_stats("BTCUSDT", 10_000).tps
            ob = books.get_snapshot("BTCUSDT")
            assert ob.mid_price == snap["book"]["mid"] and ob.spread_bps == snap["book"]["spread_bps"]
            assert ob.best_bid < ob.best_ask
            assert books.get_imbalance("BTCUSDT") == snap["book"]["imbalance"]
            assert books.get_aggregated_depth("BTCUSDT", "bid", range_bps=50) == snap["book"]["bid_depth"]
            dens = [d for d in snap["densities"] if d["state"] == "active"]
            if dens:
                got = books.get_density_at_price("BTCUSDT", dens[0]["price"])
                assert got is not None and got.size == dens[0]["size"]
            assert books.get_density_at_price("BTCUSDT", 1.0) is None
            await trades.unsubscribe("ETHUSDT")
            await trades.stop()
            assert books.bybit_ws is not None and books.bybit_ws.connected  # still used by the book manager
            await books.stop()
    run(scenario())


def test_unreachable_exchange_never_shows_made_up_numbers(caplog):
    async def scenario():
        trades = TradesAggregator(category="linear", url="ws://127.0.0.1:9")
        books = OrderBookManager(category="linear", url="ws://127.0.0.1:9")
        t0 = time.monotonic()
        await trades.start()
        await books.start()
        assert time.monotonic() - t0 < 15
        await trades.subscribe("BTCUSDT")
        await books.subscribe("BTCUSDT")
        await asyncio.sleep(0.5)
        assert trades.bybit_ws.connected is False
        assert trades.get_tpm("BTCUSDT", "60s") == 0.0 and trades.get_buy_sell_ratio("BTCUSDT") is None
        assert books.get_snapshot("BTCUSDT") is None and books.get_imbalance("BTCUSDT") is None
        assert books.get_aggregated_depth("BTCUSDT", "bid") is None  # not ready: no number, as the README says
        await trades.stop()
        await books.stop()
    with caplog.at_level(logging.WARNING, logger="bybitmon"):
        run(scenario())
    assert any("no simulated data" in r.getMessage() for r in caplog.records)


# -- the report's examples, as subprocesses against `bybitmon serve` ----------------------------


def serve(*args: str, port: int = 0) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", "--simulate", "--port", str(port), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.search(r"(ws://127\.0\.0\.1:\d+)", p.stdout.readline())
    assert m
    return p, m.group(1)


class Example:
    """A user's script run as a subprocess; its output lines are collected by a thread."""

    def __init__(self, name: str, url: str) -> None:
        env = {**os.environ, "BYBITMON_URL": url, "PYTHONUNBUFFERED": "1"}
        self.p = subprocess.Popen([sys.executable, str(EXAMPLES / name)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, pattern: str, timeout: float) -> list[str]:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = ""
            if line is None or left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got:\n" + "\n".join(self.seen))
            if line:
                self.seen.append(line)
                if re.search(pattern, line):
                    return list(self.seen)

    def stop(self) -> None:
        self.p.kill()
        self.p.wait(10)


def test_basic_example_prints_real_metrics():
    srv, url = serve("--symbols", "BTCUSDT", "--speed", "3")
    try:
        ex = Example("basic.py", url)
        out = ex.read_until(r"^Imbalance: ", 40 * TIMEOUT_FACTOR)
        assert ex.p.wait(20) == 0
        tpm = float(next(l for l in out if l.startswith("TPM: ")).split()[1])
        imb = float(out[-1].split()[1])
        assert tpm > 0 and -1 <= imb <= 1 and imb != 0.0
    finally:
        srv.terminate()
        srv.wait(10)


def test_multiple_symbols_example_reports_high_activity():
    srv, url = serve("--symbols", "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT", "--speed", "4")
    try:
        ex = Example("multiple_symbols.py", url)
        out = ex.read_until(r"High activity \(TPM=\d+, Imb=-?\d", 90 * TIMEOUT_FACTOR)
        hit = out[-1]
        tpm = float(re.search(r"TPM=(\d+)", hit).group(1))
        imb = float(re.search(r"Imb=(-?[\d.]+)", hit).group(1))
        assert tpm > 100 and abs(imb) > 0.3
        ex.stop()
    finally:
        srv.terminate()
        srv.wait(10)


def test_production_example_notices_a_server_drop_and_recovers():
    srv, url = serve("--symbols", "BTCUSDT")
    port = int(url.rsplit(":", 1)[1])
    ex = Example("production.py", url)
    try:
        ex.read_until(r"Real-time data from ws://127\.0\.0\.1:\d+/v5/public/spot", 20 * TIMEOUT_FACTOR)
        ex.read_until(r"Mid: \d", 25 * TIMEOUT_FACTOR)
        srv.terminate()
        srv.wait(10)
        ex.read_until(r"WebSocket disconnected, waiting for reconnect", 25 * TIMEOUT_FACTOR)
        srv, _ = serve("--symbols", "BTCUSDT", port=port)
        ex.read_until(r"Mid: \d", 30 * TIMEOUT_FACTOR)
    finally:
        ex.stop()
        srv.terminate()
        srv.wait(10)
