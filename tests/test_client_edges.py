"""The live client at its edges, against scripted and hostile WebSocket servers on 127.0.0.1:
what may enter the pipeline, what an exception in the pipeline does, what an output error
does, how the backoff behaves, and which errors reach the caller."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
import websockets

from bybitmon.core.monitor import Monitor
from bybitmon.errors import FeedClosed, OutputError, SubscriptionError
from bybitmon.testserver.app import BybitServer, SimulatedSource
from bybitmon.transport.client import BybitClient, ConnState, map_network_errors
from bybitmon.transport.feed import LiveFeed
from bybitmon.transport.recording import FrameReader, RecordingWriter
from bybitmon.transport.timing import WatchdogAction, backoff_delay, next_attempt, watchdog_decision

from helpers import eventually, run
from hostile_ws import HostileServer, book_frame, trade_frame
from paths import TIMEOUT_FACTOR

FAST = dict(quiet_s=5.0, pong_timeout_s=5.0, backoff_initial_s=0.05, backoff_max_s=0.5)


class FixedRng(random.Random):
    """Jitter pinned to 1.0, so backoff delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return 1.0


# -- the watchdog and the backoff, as pure functions -----------------------------------------

WD = dict(ping_interval_s=20.0, quiet_s=5.0, pong_timeout_s=5.0)


def test_watchdog_waits_until_the_quiet_period_is_over_then_pings():
    assert watchdog_decision(104.99, 100.0, 100.0, **WD) == (WatchdogAction.WAIT, pytest.approx(0.01))
    assert watchdog_decision(105.0, 100.0, 100.0, **WD)[0] is WatchdogAction.PING


def test_watchdog_declares_a_stall_exactly_at_quiet_plus_pong_timeout():
    # pinged at 105 (quiet), nothing since 100
    assert watchdog_decision(109.99, 100.0, 105.0, **WD) == (WatchdogAction.WAIT, pytest.approx(0.01))
    assert watchdog_decision(110.0, 100.0, 105.0, **WD) == (WatchdogAction.STALL, 0.0)


def test_a_frame_after_the_ping_postpones_the_stall():
    action, wait = watchdog_decision(109.99, 108.0, 105.0, **WD)  # no stall at 110
    assert action is WatchdogAction.WAIT and wait == pytest.approx(113.0 - 109.99)  # next quiet ping at 113
    assert watchdog_decision(113.0, 108.0, 105.0, **WD)[0] is WatchdogAction.PING
    assert watchdog_decision(117.99, 108.0, 113.0, **WD)[0] is WatchdogAction.WAIT
    assert watchdog_decision(118.0, 108.0, 113.0, **WD)[0] is WatchdogAction.STALL


def test_a_busy_connection_is_pinged_every_ping_interval():
    for t in (100.5, 110.0, 119.99):  # frames keep arriving: last_rx == now
        assert watchdog_decision(t, t, 100.0, **WD)[0] is WatchdogAction.WAIT
    assert watchdog_decision(120.0, 120.0, 100.0, **WD)[0] is WatchdogAction.PING


def test_watchdog_timeline_on_a_fake_clock_matches_a_step_by_step_simulation():
    """Sleeping for the returned wait never misses a deadline: stepping time in 1 ms steps
    gives the same pings and the same stall time as jumping from decision to decision."""
    rx = [100.0, 101.0, 103.5]  # frames, then silence

    def by_jumps():
        now, last_rx, last_ping, out = 100.0, 100.0, 100.0, []
        while True:
            last_rx = max([r for r in rx if r <= now], default=last_rx)
            action, wait = watchdog_decision(now, last_rx, last_ping, **WD)
            if action is WatchdogAction.STALL:
                return out, round(now, 3)
            if action is WatchdogAction.PING:
                last_ping = now
                out.append(round(now, 3))
                continue
            nxt = [r for r in rx if now < r < now + wait]
            now = nxt[0] if nxt else now + wait

    def by_steps():
        last_ping, out = 100.0, []
        for i in range(0, 20_000):
            now = 100.0 + i / 1000
            last_rx = max(r for r in rx if r <= now + 1e-9)
            action, _ = watchdog_decision(now, last_rx, last_ping, **WD)
            if action is WatchdogAction.STALL:
                return out, round(now, 3)
            if action is WatchdogAction.PING:
                last_ping = now
                out.append(round(now, 3))
        raise AssertionError("no stall")

    assert by_jumps() == by_steps() == ([108.5], 113.5)


def test_backoff_doubles_to_its_cap_and_starts_over_after_data():
    rng = FixedRng()
    attempt, delays = 0, []
    for _ in range(5):  # connections that delivered nothing
        attempt = next_attempt(attempt, delivered_data=False, up_s=1.0)
        delays.append(backoff_delay(attempt, 1.0, 10.0, rng))
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0]
    attempt = next_attempt(attempt, delivered_data=True, up_s=0.5)
    assert backoff_delay(attempt, 1.0, 10.0, rng) == 1.0
    assert next_attempt(7, delivered_data=False, up_s=30.0) == 1
    assert backoff_delay(10_000, 1.0, 10.0, rng) == 10.0  # no overflow however many attempts


# -- errors mapped at the edge ---------------------------------------------------------------

def test_network_errors_become_feed_closed_from_the_original():
    closed = websockets.exceptions.ConnectionClosedError(None, None)
    for exc in (closed, ConnectionResetError(104, "reset"), TimeoutError()):
        with pytest.raises(FeedClosed) as info:
            with map_network_errors("linear#1"):
                raise exc
        assert info.value.__cause__ is exc and str(info.value).startswith("linear#1: ")
    with pytest.raises(ValueError):
        with map_network_errors("linear#1"):
            raise ValueError("not a network error")


def test_a_dropped_connection_is_reported_as_a_lost_connection():
    async def scenario():
        async with BybitServer(SimulatedSource(["BTCUSDT"], seed=1)) as srv:
            c = BybitClient("linear", url=srv.url, **FAST)
            await c.subscribe(["publicTrade.BTCUSDT"])
            await c.start()
            await eventually(lambda: c.connected, what="connected")
            await srv.drop()
            await eventually(lambda: c.health[0].reconnects == 1, what="reconnect")
            assert c.health[0].last_error.startswith("linear#1: connection lost: ConnectionClosedError")
            assert c.health[0].errors == 1
            await c.stop()
    run(scenario())


def test_refusals_arrive_as_subscription_errors_and_no_task_outlives_stop():
    async def scenario():
        async with BybitServer(SimulatedSource(["BTCUSDT"], seed=1)) as srv:
            srv.reject("ETHUSDT")
            got: list[SubscriptionError] = []
            c = BybitClient("linear", url=srv.url, on_subscribe_error=got.append, **FAST)
            await c.subscribe(["publicTrade.BTCUSDT", "publicTrade.ETHUSDT", "orderbook.50.ETHUSDT"])
            await c.start()
            await eventually(lambda: len(got) == 2, what="two refusals")
            assert sorted(e.topics for e in got) == [("orderbook.50.ETHUSDT",), ("publicTrade.ETHUSDT",)]
            assert all(isinstance(e, SubscriptionError) and "ETHUSDT" in e.reason for e in got)
            assert set(c.failed) == {"orderbook.50.ETHUSDT", "publicTrade.ETHUSDT"}
            assert c.health[0].state is ConnState.CONNECTED and c.health[0].state == "connected"
            await c.stop()
            assert [t for t in asyncio.all_tasks() if t.get_coro().__qualname__.startswith("BybitClient.")] == []
    run(scenario())


def test_refusal_message_from_the_server_cannot_reach_the_terminal_raw():
    err = SubscriptionError.refused("publicTrade.X", "bad\x1b]0;pwned\x07 topic\n")
    assert "\x1b" not in str(err) and "\x07" not in str(err) and "\n" not in str(err)
    assert err.reason.startswith("bad\\x1b]0;pwned\\x07 topic\\")  # escaped, still readable
    assert err.reason.isprintable()


# -- only subscribed topics enter the pipeline (issue 14, item 2) ----------------------------

def test_frames_for_topics_never_subscribed_are_counted_and_dropped(tmp_path):
    """A server pushing ever-new symbols creates no per-symbol state and no recorded lines."""
    async def flood(ws, n):
        for i in range(300):
            await ws.send(trade_frame(f"NEW{i}USDT", 1_700_000_000_000 + i))
        for i in range(100):  # the same with "topic" not first, so the fast prefix check misses it
            await ws.send(trade_frame(f"ODD{i}USDT", 1_700_000_000_000 + i, topic_first=False))
        await ws.send(book_frame("BTCUSDT", 1_700_000_000_500, depth=200))  # a depth never asked for
        await ws.send(trade_frame("BTCUSDT", 1_700_000_001_000, topic_first=False))
        await ws.send(trade_frame("BTCUSDT", 1_700_000_001_001))
        await asyncio.sleep(30)

    async def scenario():
        rec = tmp_path / "rec.ndjson"
        async with HostileServer(flood) as srv:
            m = Monitor("linear")
            feed = LiveFeed(m, url=srv.url, **FAST)
            feed.recorder = RecordingWriter(str(rec), header={"symbols": ["BTCUSDT"]})
            await feed.start(["BTCUSDT"])
            await eventually(lambda: m.trade_stats("BTCUSDT") is not None
                             and m.trade_stats("BTCUSDT").count == 2, what="BTCUSDT trades")
            await feed.stop()
            feed.recorder.close()
        assert m.symbols == ["BTCUSDT"]
        assert feed.health[0].unsubscribed == 401
        recorded = [f.raw for f in FrameReader(str(rec))]
        assert not any("NEW" in r or "ODD" in r or "orderbook.200" in r for r in recorded)
        assert sum('"publicTrade.BTCUSDT"' in r for r in recorded) == 2
    run(scenario())


# -- the pipeline's exceptions (issue 14, item 3) --------------------------------------------

def test_an_exception_in_frame_handling_is_logged_once_and_the_book_resynced(caplog):
    async def scenario():
        async with BybitServer(SimulatedSource(["BTCUSDT"], seed=2)) as srv:
            m = Monitor("linear")
            failures = {"n": 0}

            def flaky(recv_ns, conn, raw):
                if raw.startswith('{"topic":"orderbook') and failures["n"] < 3:
                    failures["n"] += 1
                    raise RuntimeError("callback bug")

            feed = LiveFeed(m, url=srv.url, on_frame=flaky, resync_retry_s=0.2, **FAST)
            await feed.start(["BTCUSDT"])
            await eventually(lambda: failures["n"] == 3, what="three failures")
            await eventually(lambda: feed.client.resyncs >= 1, what="resync asked")

            def in_sync():
                st = m.states.get("BTCUSDT")
                bids, asks = srv.true_book("BTCUSDT")
                return (st is not None and st.book.ready
                        and st.book.bids == {float(p): float(s) for p, s in bids.items()}
                        and st.book.asks == {float(p): float(s) for p, s in asks.items()})

            await eventually(in_sync, what="book rebuilt after the resync")
            h = feed.health[0]
            assert h.pipeline_errors == 3 and h.reconnects == 0 and h.state == "connected"
            await feed.stop()
        lines = [r for r in caplog.records if "raised RuntimeError" in r.getMessage()]
        assert len(lines) == 1 and "resyncing" in lines[0].getMessage()
    with caplog.at_level(logging.WARNING, logger="bybitmon"):
        run(scenario())


@pytest.mark.parametrize("error", [BrokenPipeError(32, "Broken pipe"), OSError(28, "No space left on device"),
                                   OutputError("stdout: write failed (No space left on device)")])
def test_an_output_error_in_frame_handling_ends_the_feed_instead_of_reconnecting(error):
    async def scenario():
        async with BybitServer(SimulatedSource(["BTCUSDT"], seed=2)) as srv:
            def write_out(recv_ns, conn, raw):
                raise error

            feed = LiveFeed(Monitor("linear"), url=srv.url, on_frame=write_out, **FAST)
            await feed.start(["BTCUSDT"])
            await asyncio.wait_for(feed.failed.wait(), 10 * TIMEOUT_FACTOR)
            assert feed.fatal is error and feed.client.fatal is error
            await asyncio.sleep(0.2)  # a reconnect would start within the 0.05 s backoff
            h = feed.health[0]
            assert h.reconnects == 0 and h.errors == 0 and h.state == "stopped"
            await feed.stop()
    run(scenario())


# -- the reconnect backoff (issue 14, item 12) -----------------------------------------------

def _backoffs(script, reconnects: int) -> list[float]:
    async def scenario():
        seen: list[float] = []

        def on_state(h):
            if h.state is ConnState.RECONNECTING:
                seen.append(h.backoff_s)

        async with HostileServer(script) as srv:
            c = BybitClient("linear", url=srv.url, rng=FixedRng(), on_state=on_state,
                            **{**FAST, "backoff_initial_s": 0.02, "backoff_max_s": 1.0})
            await c.subscribe(["publicTrade.BTCUSDT"])
            await c.start()
            await eventually(lambda: len(seen) >= reconnects, what=f"{reconnects} reconnects")
            await c.stop()
        return seen[:reconnects]
    return run(scenario())


def test_backoff_starts_over_after_each_connection_that_delivered_data():
    async def one_trade_then_drop(ws, n):
        await ws.send(trade_frame("BTCUSDT", 1_700_000_000_000 + n))
        await asyncio.sleep(0.01)
        ws.transport.abort()

    assert _backoffs(one_trade_then_drop, 5) == [0.02] * 5


def test_backoff_keeps_doubling_across_connections_that_delivered_nothing():
    async def drop_at_once(ws, n):
        ws.transport.abort()

    assert _backoffs(drop_at_once, 5) == [0.02, 0.04, 0.08, 0.16, 0.32]
