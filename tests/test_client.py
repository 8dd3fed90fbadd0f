"""The live client against `bybitmon serve`'s server on 127.0.0.1: every test is a real
WebSocket conversation in Bybit's v5 protocol, with the server's faults on demand."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from bybitmon.transport.client import BybitClient, resolve_url
from bybitmon.errors import UsageError
from bybitmon.transport.feed import LiveFeed
from bybitmon.core.monitor import Monitor
from bybitmon.testserver.app import BybitServer, SimulatedSource

from fakeclock import FakeClock, drained, settle
from helpers import eventually, run
from paths import TIMEOUT_FACTOR

T = 10.0 * TIMEOUT_FACTOR
FAST = dict(quiet_s=0.4, pong_timeout_s=0.4, backoff_initial_s=0.05, backoff_max_s=0.5)



def book_equals_truth(m: Monitor, srv: BybitServer, sym: str) -> bool:
    st = m.states.get(sym)
    if st is None or not st.book.ready:
        return False
    bids, asks = srv.true_book(sym)
    return (st.book.bids == {float(p): float(s) for p, s in bids.items()}
            and st.book.asks == {float(p): float(s) for p, s in asks.items()})



async def started(symbols=("BTCUSDT", "ETHUSDT"), **kw):
    srv = BybitServer(SimulatedSource(list(symbols), seed=3), **kw)
    await srv.start()
    return srv


async def live(srv, symbols, **client_kw):
    m = Monitor("linear")
    feed = LiveFeed(m, url=srv.url, **{**FAST, **client_kw})
    await feed.start(symbols)
    for s in symbols:
        await eventually(lambda s=s: book_equals_truth(m, srv, s), what=f"{s} book")
    return m, feed


def test_url_resolution():
    assert resolve_url("linear") == "wss://stream.bybit.com/v5/public/linear"
    assert resolve_url("spot", testnet=True) == "wss://stream-testnet.bybit.com/v5/public/spot"
    assert resolve_url("linear", "ws://127.0.0.1:9") == "ws://127.0.0.1:9/v5/public/linear"
    assert resolve_url("spot", "ws://127.0.0.1:9/v5/public/linear") == "ws://127.0.0.1:9/v5/public/spot"
    with pytest.raises(UsageError):
        resolve_url("linear", "http://x")


def test_env_url_overrides_the_exchange(monkeypatch):
    monkeypatch.setenv("BYBITMON_URL", "ws://127.0.0.1:7")
    assert resolve_url("linear") == "ws://127.0.0.1:7/v5/public/linear"
    assert resolve_url("linear", testnet=True) == "ws://127.0.0.1:7/v5/public/linear"


def test_subscribe_ack_snapshot_and_pong_round_trip():
    """Subscribing gets an ack, a snapshot then deltas; app-level pings get pongs."""
    async def scenario():
        async with BybitServer(SimulatedSource(["BTCUSDT"], seed=1)) as srv:
            got: list[str] = []
            c = BybitClient("linear", url=srv.url, on_frame=lambda ns, conn, raw: got.append(raw),
                            ping_interval_s=0.2, **{k: v for k, v in FAST.items() if k != "quiet_s"}, quiet_s=5)
            await c.subscribe(["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"])
            await c.start()
            await eventually(lambda: any('"ret_msg":"pong"' in r for r in got), what="pong")
            await c.stop()
        msgs = [orjson.loads(r) for r in got]
        acks = [m for m in msgs if m.get("op") == "subscribe"]
        assert acks and all(a["success"] for a in acks)
        books = [m for m in msgs if m.get("topic") == "orderbook.50.BTCUSDT"]
        assert books[0]["type"] == "snapshot" and all(b["type"] == "delta" for b in books[1:])
        us = [b["data"]["u"] for b in books]
        assert us == list(range(us[0], us[0] + len(us)))
        assert c.health[0].state == "stopped" and c.health[0].reconnects == 0
    run(scenario())


def test_drop_reconnects_resubscribes_and_rebuilds_the_true_book():
    async def scenario():
        srv = await started()
        try:
            m, feed = await live(srv, ["BTCUSDT", "ETHUSDT"])
            assert await srv.drop() >= 1
            await eventually(lambda: feed.health[0].reconnects >= 1, what="reconnect")
            for s in ("BTCUSDT", "ETHUSDT"):
                await eventually(lambda s=s: book_equals_truth(m, srv, s), what=f"{s} rebuilt")
            assert feed.health[0].state == "connected"
            await feed.stop()
        finally:
            await srv.close()
    run(scenario())


def test_book_is_not_ready_between_a_drop_and_its_fresh_snapshot():
    """Never a stale book shown as ready: after the drop it is not ready until resubscribed."""
    async def scenario():
        srv = await started(["BTCUSDT"])
        try:
            m, feed = await live(srv, ["BTCUSDT"], backoff_initial_s=0.5, backoff_max_s=0.5)
            await srv.drop()
            await eventually(lambda: feed.health[0].state == "reconnecting", what="reconnecting")
            assert m.snapshot("BTCUSDT")["book"]["ready"] is False
            assert m.snapshot("BTCUSDT")["book"]["mid"] is None
            await eventually(lambda: book_equals_truth(m, srv, "BTCUSDT"), what="rebuilt")
            await feed.stop()
        finally:
            await srv.close()
    run(scenario())


def test_stall_is_detected_at_the_watchdog_bound_on_a_fake_clock_and_recovered():
    """A silent connection is replaced once quiet_s + pong_timeout_s have passed on the
    client's clock, and not before; time is a fake clock, so the test does not wait for it."""
    async def scenario():
        clock = FakeClock()
        srv = await started(["BTCUSDT"])
        try:
            m, feed = await live(srv, ["BTCUSDT"], quiet_s=5.0, pong_timeout_s=5.0,
                                 clock=clock, sleep=clock.sleep)
            h = feed.health[0]
            assert srv.stall() == 1
            await drained(h)
            clock.jump(9.99)  # nothing received for 9.99 s of the 10 s bound: a ping, no stall
            await settle()
            assert h.stalls == 0 and h.state == "connected"
            clock.jump(0.02)
            await eventually(lambda: h.stalls == 1 and h.last_error, timeout=2 * TIMEOUT_FACTOR, what="stall detected")
            assert "stalled: nothing received for 10.0 s" in h.last_error
            await eventually(lambda: h.reconnects == 1 and book_equals_truth(m, srv, "BTCUSDT"), what="recovered")
            await feed.stop()
        finally:
            await srv.close()
    run(scenario())


@pytest.mark.parametrize("kind,counter", [
    ("duplicate", "stale"),
    ("gap", "gaps"),
    ("reorder", "gaps"),
    ("crossed", "crossed"),
    ("reset", "resets"),
    ("resend_snapshot", "resets"),
])
def test_injected_book_fault_is_counted_and_the_book_recovers(kind, counter):
    async def scenario():
        srv = await started(["BTCUSDT"])
        try:
            m, feed = await live(srv, ["BTCUSDT"])
            before = m.snapshot("BTCUSDT")["health"][counter]
            assert srv.inject(kind, "BTCUSDT") == 1
            await eventually(lambda: m.snapshot("BTCUSDT")["health"][counter] > before, what=f"{kind} counted")
            await eventually(lambda: book_equals_truth(m, srv, "BTCUSDT"), what="book equals truth again")
            await feed.stop()
        finally:
            await srv.close()
    run(scenario())


def test_malformed_frame_is_counted_not_fatal():
    async def scenario():
        srv = await started(["BTCUSDT"])
        try:
            m, feed = await live(srv, ["BTCUSDT"])
            srv.inject("malformed", "BTCUSDT")
            await eventually(lambda: m.bad_frames == 1, what="bad frame counted")
            await eventually(lambda: book_equals_truth(m, srv, "BTCUSDT"), what="still in sync")
            assert feed.health[0].reconnects == 0
            await feed.stop()
        finally:
            await srv.close()
    run(scenario())


def test_bad_symbol_gets_one_clear_error_while_the_others_stream():
    async def scenario():
        srv = await started(["BTCUSDT", "ETHUSDT"])
        errors: list[tuple[str, str]] = []
        try:
            m = Monitor("linear")
            feed = LiveFeed(m, url=srv.url, on_subscribe_error=lambda err: errors.append((err.topics[0], err.reason)), **FAST)
            await feed.start(["BTCUSDT", "NOSUCHCOIN", "ETHUSDT"])
            for s in ("BTCUSDT", "ETHUSDT"):
                await eventually(lambda s=s: book_equals_truth(m, srv, s), what=f"{s} book")
            await eventually(lambda: len(errors) == 2, what="errors")
            await asyncio.sleep(0.3)
            assert sorted(t for t, _ in errors) == ["orderbook.50.NOSUCHCOIN", "publicTrade.NOSUCHCOIN"]
            assert all("NOSUCHCOIN" in why for _, why in errors)
            # the refused topics are not retried on reconnect
            await srv.drop()
            await eventually(lambda: feed.health[0].reconnects >= 1 and book_equals_truth(m, srv, "BTCUSDT"),
                             what="reconnected")
            await asyncio.sleep(0.3)
            assert len(errors) == 2
            await feed.stop()
        finally:
            await srv.close()
    run(scenario())


def test_rejected_subscription_does_not_break_the_connection():
    async def scenario():
        srv = await started(["BTCUSDT", "ETHUSDT"])
        try:
            srv.reject("ETHUSDT")
            m = Monitor("linear")
            errors: list[str] = []
            feed = LiveFeed(m, url=srv.url, on_subscribe_error=lambda err: errors.append(err.topics[0]), **FAST)
            await feed.start(["BTCUSDT", "ETHUSDT"])
            await eventually(lambda: book_equals_truth(m, srv, "BTCUSDT"), what="BTC book")
            await eventually(lambda: len(errors) == 2, what="ETH refused")
            assert feed.health[0].reconnects == 0 and feed.health[0].state == "connected"
            await feed.stop()
        finally:
            await srv.close()
    run(scenario())


def test_200_symbols_over_several_connections_all_get_books():
    symbols = [f"S{i:03d}USDT" for i in range(200)]

    async def scenario():
        srv = await started(symbols)
        try:
            m = Monitor("linear")
            feed = LiveFeed(m, url=srv.url, max_topics_per_conn=150, **FAST)
            await feed.start(symbols)
            await eventually(lambda: all(m.states.get(s) is not None and m.states[s].book.ready for s in symbols),
                             timeout=30 * TIMEOUT_FACTOR, what="200 books")
            assert len(feed.client.conns) == 3  # 400 topics, 150 per connection
            assert all(h.state == "connected" for h in feed.health)
            for s in symbols[::40]:
                await eventually(lambda s=s: book_equals_truth(m, srv, s), what=f"{s} equals truth")
            await feed.stop()
        finally:
            await srv.close()
    run(scenario())


def test_unreachable_server_keeps_retrying_and_never_claims_connected():
    async def scenario():
        m = Monitor("linear")
        feed = LiveFeed(m, url="ws://127.0.0.1:9", **FAST)  # port 9 (discard): nothing listens
        await feed.start(["BTCUSDT"])
        await eventually(lambda: feed.health[0].reconnects >= 3, what="retries")
        assert not feed.client.connected
        assert feed.health[0].last_error
        assert m.snapshot("BTCUSDT")["book"]["ready"] is False
        await feed.stop()
    run(scenario())


def test_every_frame_carries_its_receive_time():
    async def scenario():
        srv = await started(["BTCUSDT"])
        stamps: list[int] = []
        try:
            t0 = time.time_ns()
            c = BybitClient("linear", url=srv.url, on_frame=lambda ns, conn, raw: stamps.append(ns), **FAST)
            await c.subscribe(["orderbook.50.BTCUSDT"])
            await c.start()
            await eventually(lambda: len(stamps) > 20, what="frames")
            await c.stop()
            assert all(t0 <= a <= b <= time.time_ns() for a, b in zip(stamps, stamps[1:]))
        finally:
            await srv.close()
    run(scenario())
