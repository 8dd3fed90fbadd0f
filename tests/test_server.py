"""Behaviour of bybitmon's Bybit-compatible server, seen through a plain websockets client.

Each test starts :class:`BybitServer` on 127.0.0.1:0 and talks to it with
``websockets.asyncio.client.connect`` only (never bybitmon's own client), checking what goes on
the wire against the protocol reference (shared/bybit-v5-public-ws.md, sections 2, 3, 5, 10).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.protocol import State

from bybitmon.errors import UsageError
from bybitmon.testserver.app import BybitServer, FaultPlan, FileSource, SimulatedSource

from paths import TIMEOUT_FACTOR, fixture_path

# Every wait below scales from this one constant (BYBITMON_TESTS_TIMEOUT_FACTOR raises it).
T = 2.0 * TIMEOUT_FACTOR
IDLE = 0.25 * T  # idle limit of the idle tests, s
LINEAR_CAPTURE = "cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson"  # optional: BYBITMON_REAL_CAPTURES
BOOK = "orderbook.50.BTCUSDT"


# ----------------------------------------------------------------------------------- helpers


def run(coro):
    return asyncio.run(coro)


def server(symbols=("BTCUSDT", "ETHUSDT"), **kwargs) -> BybitServer:
    """A server over a small simulated market (trades off unless asked: book frames only)."""
    source_kw = {k: kwargs.pop(k) for k in ("trade_rate", "book_interval_ms", "categories") if k in kwargs}
    source_kw.setdefault("trade_rate", 0.0)
    return BybitServer(SimulatedSource(list(symbols), 1, **source_kw), **kwargs)


async def recv_json(ws: ClientConnection, timeout: float = T) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def request(ws: ClientConnection, msg: dict, timeout: float = T) -> dict:
    """Send a request and return the next frame that is an ack/pong (data frames skipped)."""
    await ws.send(orjson.dumps(msg).decode())
    deadline = time.monotonic() + timeout
    while True:
        reply = await recv_json(ws, deadline - time.monotonic())
        if "topic" not in reply:
            return reply


async def book_frames(ws: ClientConnection, n: int, timeout: float = T) -> list[dict]:
    """The next ``n`` book frames (other frames skipped)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        msg = await recv_json(ws, deadline - time.monotonic())
        if msg.get("topic", "").startswith("orderbook."):
            out.append(msg)
    return out


async def collect(ws: ClientConnection, seconds: float) -> list[str]:
    """Every raw frame received during the next ``seconds``."""
    out: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            break
    return out


class PlainBook:
    """A client-side book in plain dicts of strings: snapshot replaces, "0" deletes, else set."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.u: int | None = None

    def apply(self, msg: dict) -> None:
        data = msg["data"]
        if msg["type"] == "snapshot":
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
            for price, size in levels:
                if float(size) == 0.0:
                    side.pop(price, None)
                else:
                    side[price] = size
        self.u = data["u"]

    def crossed(self) -> bool:
        return max(map(float, self.bids)) >= min(map(float, self.asks))


def true_u(srv: BybitServer, topic: str = BOOK, category: str = "linear") -> int:
    return orjson.loads(srv.source.snapshot_frame(category, topic))["data"]["u"]


async def subscribed(srv: BybitServer, topic: str = BOOK, category: str = "linear"):
    """A connection subscribed to ``topic``, its book built from the snapshot."""
    ws = await connect(srv.url_for(category))
    ack = await request(ws, {"op": "subscribe", "args": [topic], "req_id": "s"})
    assert ack["success"] is True
    book = PlainBook()
    (snap,) = await book_frames(ws, 1)
    assert snap["type"] == "snapshot"
    book.apply(snap)
    return ws, book


async def until_synced(ws: ClientConnection, book: PlainBook, srv: BybitServer, topic: str = BOOK,
                       timeout: float = T) -> None:
    """Apply book frames until the client's u is the server's current true u."""
    deadline = time.monotonic() + timeout
    while book.u != true_u(srv, topic):
        msg = await recv_json(ws, deadline - time.monotonic())
        if msg.get("topic") == topic:
            book.apply(msg)


# ----------------------------------------------------------------------------------- basics


def test_server_listens_on_a_free_port_and_refuses_other_paths():
    """port=0 picks a port; /v5/public/option and / get HTTP 404."""

    async def scenario():
        async with server() as srv:
            assert srv.port != 0
            assert srv.url == f"ws://127.0.0.1:{srv.port}"
            for path in ("/v5/public/option", "/", "/v5/public/linearx"):
                with pytest.raises(InvalidStatus) as err:
                    await connect(srv.url + path)
                assert err.value.response.status_code == 404
            async with connect(srv.url_for("inverse")) as ws:
                assert (await request(ws, {"op": "ping"}))["ret_msg"] == "pong"

    run(scenario())


def test_pong_shape_is_the_categorys():
    """Spot pong has no req_id unless sent; linear/inverse always carry req_id ("" if none)."""

    async def scenario():
        async with server() as srv:
            async with connect(srv.url_for("spot")) as ws:
                pong = await request(ws, {"op": "ping"})
                assert list(pong) == ["success", "ret_msg", "conn_id", "op"]
                assert pong["success"] is True and pong["ret_msg"] == "pong" and pong["op"] == "ping"
                assert isinstance(pong["conn_id"], str) and pong["conn_id"]
            for category in ("linear", "inverse"):
                async with connect(srv.url_for(category)) as ws:
                    pong = await request(ws, {"op": "ping"})
                    assert list(pong) == ["success", "ret_msg", "conn_id", "req_id", "op"]
                    assert pong == {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"],
                                    "req_id": "", "op": "ping"}
                    echoed = await request(ws, {"req_id": "100001", "op": "ping"})
                    assert echoed["req_id"] == "100001"

    run(scenario())


def test_subscribe_ack_echoes_req_id_with_its_json_type():
    """req_id comes back unchanged as string or number; spot omits it when none was sent."""

    async def scenario():
        async with server() as srv:
            async with connect(srv.url_for("linear")) as ws:
                ack = await request(ws, {"req_id": "abc", "op": "subscribe", "args": [BOOK]})
                assert list(ack) == ["success", "ret_msg", "conn_id", "req_id", "op"]
                assert ack["req_id"] == "abc" and ack["ret_msg"] == "" and ack["op"] == "subscribe"
                ack = await request(ws, {"req_id": 42, "op": "subscribe", "args": ["publicTrade.BTCUSDT"]})
                assert ack["req_id"] == 42 and type(ack["req_id"]) is int
                # Live linear ack with no req_id sent: "req_id":"" (cryptofeed capture).
                ack = await request(ws, {"op": "unsubscribe", "args": ["publicTrade.BTCUSDT"]})
                assert ack["req_id"] == "" and ack["op"] == "unsubscribe" and ack["success"] is True
            async with connect(srv.url_for("spot")) as ws:
                ack = await request(ws, {"op": "subscribe", "args": [BOOK]})
                assert list(ack) == ["success", "ret_msg", "conn_id", "op"]
                assert ack["ret_msg"] == "subscribe" and ack["success"] is True
                ack = await request(ws, {"req_id": 7.5, "op": "subscribe", "args": [BOOK]})
                assert ack["req_id"] == 7.5

    run(scenario())


def test_unknown_symbol_fails_the_request_while_a_good_subscription_streams():
    """A bad topic gets the failure ack for the whole request; the earlier topic keeps streaming."""

    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            bad = {"req_id": "bad1", "op": "subscribe", "args": ["publicTrade.ETHUSDT", "orderbook.50.NOPEUSDT"]}
            await ws.send(orjson.dumps(bad).decode())
            ack = None
            while ack is None:
                msg = await recv_json(ws)
                if "topic" in msg:
                    book.apply(msg)
                else:
                    ack = msg
            assert ack == {"success": False, "ret_msg": "error:handler not found,topic:orderbook.50.NOPEUSDT",
                           "conn_id": ack["conn_id"], "req_id": "bad1", "op": "subscribe"}
            # Depth 500 is gone since 2025-09-11 and 25 is an option depth; 1/50/200/1000 are served.
            for args in (["orderbook.500.BTCUSDT"], ["orderbook.25.BTCUSDT"], ["orderbook.050.BTCUSDT"],
                         ["tickers.BTCUSDT"], ["kline"]):
                assert (await request(ws, {"op": "subscribe", "args": args}))["success"] is False
            # The good topic streams on; the valid publicTrade.ETHUSDT of the refused request
            # was not subscribed either.
            topics = [json.loads(r).get("topic") for r in await collect(ws, 0.2 * T)]
            assert topics.count(BOOK) >= 5 and set(topics) == {BOOK}
            await ws.close()

    run(scenario())


def test_spot_request_with_eleven_args_is_refused_whole():
    """Spot: 11 args -> "args size >10" (escaped as Bybit does), nothing subscribed; 10 is fine."""

    async def scenario():
        symbols = [f"S{i}USDT" for i in range(11)]
        async with server(symbols, categories=("spot",)) as srv:
            async with connect(srv.url_for("spot")) as ws:
                await ws.send(orjson.dumps({"op": "subscribe", "args": [f"orderbook.50.{s}" for s in symbols]}).decode())
                raw = await asyncio.wait_for(ws.recv(), T)
                assert "\\u003e10" in raw
                ack = json.loads(raw)
                assert ack["success"] is False and ack["ret_msg"] == "args size >10" and "req_id" not in ack
                assert await collect(ws, 0.1 * T) == []
                ok = await request(ws, {"op": "subscribe", "args": [f"orderbook.50.{s}" for s in symbols[:10]]})
                assert ok["success"] is True

    run(scenario())


def test_args_longer_than_21000_chars_on_one_connection_are_refused():
    """The total length of subscribed args per connection stays <= 21,000 characters."""

    async def scenario():
        symbols = [f"{i:04d}LONGSYMBOLNAMEPADDINGXXXXXUSDT" for i in range(260)]  # 85 chars a symbol
        async with server(symbols, book_interval_ms=1000, categories=("linear",)) as srv:
            # max_queue=None: the unread snapshots must not hold back the closing handshake.
            async with connect(srv.url_for("linear"), max_queue=None) as ws:
                first = [t for s in symbols[:200] for t in (f"orderbook.50.{s}", f"publicTrade.{s}")]
                assert (await request(ws, {"op": "subscribe", "args": first}, timeout=3 * T))["success"] is True
                more = [t for s in symbols[200:] for t in (f"orderbook.50.{s}", f"publicTrade.{s}")]
                ack = await request(ws, {"op": "subscribe", "args": more, "req_id": "x"}, timeout=3 * T)
                assert ack["success"] is False and ack["req_id"] == "x"
                assert "21000" in ack["ret_msg"]

    run(scenario())


def test_invalid_json_gets_an_error_frame_and_the_connection_stays():
    async def scenario():
        async with server() as srv:
            async with connect(srv.url_for("linear")) as ws:
                await ws.send("{not json")
                err = await recv_json(ws)
                assert err["success"] is False and err["op"] == "" and err["ret_msg"]
                assert (await request(ws, {"op": "ping"}))["ret_msg"] == "pong"

    run(scenario())


# ----------------------------------------------------------------------------------- streams


def test_book_starts_with_snapshot_then_deltas_with_u_plus_one():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            frames = await book_frames(ws, 20)
            assert all(f["type"] == "delta" for f in frames)
            us = [book.u] + [f["data"]["u"] for f in frames]
            assert us == list(range(us[0], us[0] + 21))
            await ws.close()

    run(scenario())


def test_client_rebuilding_from_frames_holds_the_true_book():
    """Applying every frame (snapshot, then deltas) gives exactly true_book, level for level."""

    async def scenario():
        async with server(trade_rate=20.0) as srv:
            ws, book = await subscribed(srv)
            end = time.monotonic() + 0.5 * T
            while time.monotonic() < end:
                msg = await recv_json(ws)
                if msg.get("topic") == BOOK:
                    book.apply(msg)
            await until_synced(ws, book, srv)
            bids, asks = srv.true_book("BTCUSDT")
            assert (book.bids, book.asks) == (bids, asks)
            assert len(bids) == len(asks) == 50
            await ws.close()

    run(scenario())


def test_resubscribe_gets_a_fresh_snapshot_and_unsubscribe_stops_the_stream():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            ack = await request(ws, {"op": "subscribe", "args": [BOOK], "req_id": 2})
            assert ack["success"] is True
            (snap,) = [f for f in await book_frames(ws, 3) if f["type"] == "snapshot"][:1]
            assert snap["data"]["u"] >= book.u
            await ws.send(orjson.dumps({"op": "unsubscribe", "args": [BOOK], "req_id": "u"}).decode())
            while "topic" in (msg := await recv_json(ws)):
                pass
            assert msg["op"] == "unsubscribe" and msg["success"] is True
            assert await collect(ws, 0.2 * T) == []  # nothing after the ack
            await ws.close()

    run(scenario())


def test_trades_are_forwarded_to_trade_subscribers():
    async def scenario():
        async with server(trade_rate=50.0) as srv:
            async with connect(srv.url_for("linear")) as ws:
                await request(ws, {"op": "subscribe", "args": ["publicTrade.ETHUSDT"]})
                msg = await recv_json(ws)
                assert msg["topic"] == "publicTrade.ETHUSDT" and msg["type"] == "snapshot"
                assert msg["data"] and all(t["s"] == "ETHUSDT" for t in msg["data"])

    run(scenario())


# ----------------------------------------------------------------------------------- faults


def test_duplicate_fault_sends_the_next_delta_twice():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            await until_synced(ws, book, srv)
            assert srv.inject("duplicate", "BTCUSDT") == 1
            us = [f["data"]["u"] for f in await book_frames(ws, 6)]
            assert any(a == b for a, b in zip(us, us[1:])), us
            assert srv.fault_counts["duplicate"] == 1
            await ws.close()

    run(scenario())


def test_gap_fault_skips_one_delta_on_the_wire():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            # Caught up first: no delta sent before the fault is still in flight on a slow host.
            await until_synced(ws, book, srv)
            srv.inject("gap", "BTCUSDT")
            us = [book.u] + [f["data"]["u"] for f in await book_frames(ws, 6)]
            steps = [b - a for a, b in zip(us, us[1:])]
            assert steps.count(2) == 1 and set(steps) == {1, 2}, us
            assert srv.fault_counts["gap"] == 1
            await ws.close()

    run(scenario())


def test_reorder_fault_swaps_the_next_two_deltas():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            # Caught up first: no delta sent before the fault is still in flight on a slow host.
            await until_synced(ws, book, srv)
            srv.inject("reorder", "BTCUSDT")
            us = [book.u] + [f["data"]["u"] for f in await book_frames(ws, 6)]
            # Every u arrives once, and exactly one neighbouring pair is swapped.
            assert sorted(us) == list(range(us[0], us[0] + len(us))), us
            descents = [(a, b) for a, b in zip(us, us[1:]) if b < a]
            assert len(descents) == 1 and descents[0][0] == descents[0][1] + 1, us
            assert srv.fault_counts["reorder"] == 1
            await ws.close()

    run(scenario())


def test_crossed_fault_sends_a_crossing_delta_and_leaves_the_true_book_alone():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            await until_synced(ws, book, srv)
            srv.inject("crossed", "BTCUSDT")
            last_u = book.u
            (msg,) = await book_frames(ws, 1)
            assert msg["type"] == "delta" and msg["data"]["u"] == last_u + 1
            book.apply(msg)
            assert book.crossed()
            bids, asks = srv.true_book("BTCUSDT")
            assert max(map(float, bids)) < min(map(float, asks))
            await ws.close()

    run(scenario())


def test_reset_fault_sends_u1_snapshot_then_renumbers_deltas_from_2():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            await until_synced(ws, book, srv)
            srv.inject("reset", "BTCUSDT")
            frames = await book_frames(ws, 4)
            assert frames[0]["type"] == "snapshot" and frames[0]["data"]["u"] == 1
            assert [f["data"]["u"] for f in frames[1:]] == [2, 3, 4]
            # The u=1 snapshot is the true book at that moment: applying it and what follows
            # still gives the true book (only the numbering changed).
            for f in frames:
                book.apply(f)
            offset = true_u(srv) - book.u
            while true_u(srv) - offset != book.u:
                (f,) = await book_frames(ws, 1)
                book.apply(f)
            assert (book.bids, book.asks) == srv.true_book("BTCUSDT")
            # A new subscriber is not renumbered.
            ws2, book2 = await subscribed(srv)
            assert book2.u > 100
            await ws.close()
            await ws2.close()

    run(scenario())


def test_resend_snapshot_fault_sends_a_snapshot_mid_stream_with_the_current_u():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            await until_synced(ws, book, srv)
            srv.inject("resend_snapshot", "BTCUSDT")
            (msg,) = await book_frames(ws, 1)
            assert msg["type"] == "snapshot" and msg["data"]["u"] == book.u
            book.apply(msg)
            assert (book.bids, book.asks) == srv.true_book("BTCUSDT")
            await ws.close()

    run(scenario())


def test_malformed_fault_sends_broken_json_and_the_stream_goes_on():
    async def scenario():
        async with server() as srv:
            ws, _ = await subscribed(srv)
            srv.inject("malformed", "BTCUSDT")
            raw = await asyncio.wait_for(ws.recv(), T)
            while raw.startswith('{"topic"') and raw.endswith("}"):
                raw = await asyncio.wait_for(ws.recv(), T)
            with pytest.raises(json.JSONDecodeError):
                json.loads(raw)
            assert (await book_frames(ws, 2))[1]["type"] == "delta"
            await ws.close()

    run(scenario())


def test_drop_closes_connections_abnormally():
    """drop(): TCP abort, no close frame (close code 1006 on the client)."""

    async def scenario():
        async with server() as srv:
            ws, _ = await subscribed(srv)
            other = await connect(srv.url_for("spot"))
            assert await srv.drop() == 2
            for conn in (ws, other):
                with pytest.raises(ConnectionClosedError) as err:
                    while True:
                        await asyncio.wait_for(conn.recv(), T)
                assert err.value.rcvd is None
            assert srv.fault_counts["drop"] == 2
            async with connect(srv.url_for("linear")) as ws3:  # still listening
                assert (await request(ws3, {"op": "ping"}))["ret_msg"] == "pong"

    run(scenario())


def test_stall_keeps_the_connection_open_but_sends_nothing():
    """After stall(): no data, no pong, no ack on old connections; new ones are served."""

    async def scenario():
        async with server() as srv:
            ws, _ = await subscribed(srv)
            assert srv.stall() == 1
            await collect(ws, 0.1 * T)  # frames written before the stall
            await ws.send(orjson.dumps({"op": "ping", "req_id": "p"}).decode())
            await ws.send(orjson.dumps({"op": "subscribe", "args": ["orderbook.50.ETHUSDT"]}).decode())
            assert await collect(ws, 0.4 * T) == []
            assert ws.state is State.OPEN
            async with connect(srv.url_for("linear")) as fresh:
                assert (await request(fresh, {"op": "ping"}))["ret_msg"] == "pong"
            await ws.close()

    run(scenario())


def test_rejected_symbol_gets_failure_acks_from_then_on():
    async def scenario():
        async with server() as srv:
            async with connect(srv.url_for("linear")) as ws:
                srv.reject("ETHUSDT")
                ack = await request(ws, {"op": "subscribe", "args": ["publicTrade.ETHUSDT"], "req_id": 1})
                assert ack["success"] is False and ack["req_id"] == 1
                assert ack["ret_msg"] == "error:handler not found,topic:publicTrade.ETHUSDT"
                assert (await request(ws, {"op": "subscribe", "args": [BOOK]}))["success"] is True

    run(scenario())


def test_resubscribing_recovers_the_true_book_after_every_fault_kind():
    """Faults corrupt only the wire: a resubscribe brings the client back to true_book."""

    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            for kind in ("duplicate", "gap", "reorder", "crossed", "reset", "resend_snapshot", "malformed"):
                assert srv.inject(kind, "BTCUSDT") == 1
            await collect(ws, 0.1 * T)  # corrupted frames, a broken one among them
            await ws.send(orjson.dumps({"op": "subscribe", "args": [BOOK], "req_id": "again"}).decode())
            while json.loads(await asyncio.wait_for(ws.recv(), T)).get("req_id") != "again":
                pass
            (msg,) = await book_frames(ws, 1)
            assert msg["type"] == "snapshot"
            book = PlainBook()
            book.apply(msg)
            await until_synced(ws, book, srv)
            assert (book.bids, book.asks) == srv.true_book("BTCUSDT")
            await ws.close()

    run(scenario())


def test_fault_plan_grammar():
    plan = FaultPlan.parse("drop=30s,stall=1.5m,gap=0.01,duplicate=500ms,reorder=0", seed=3)
    assert plan.every_s == {"drop": 30.0, "stall": 90.0, "duplicate": 0.5}
    assert plan.per_delta == {"gap": 0.01}
    assert plan.seed == 3
    full = ("drop=30s,stall=90s,gap=0.01,duplicate=0.01,reorder=0.005,crossed=0.005,reset=0.002,"
            "resend_snapshot=0.005,malformed=0.002")
    assert set(FaultPlan.parse(full).per_delta) == {"gap", "duplicate", "reorder", "crossed", "reset",
                                                    "resend_snapshot", "malformed"}
    for bad in ("", "gap", "gap=", "gap=x", "gap=1.5", "gap=-0.1", "drop=0.1", "boom=1s", "gap=0.1,gap=0.2",
                "gap=0.6,duplicate=0.6", "drop=0s", "drop=10d"):
        with pytest.raises(UsageError) as err:
            FaultPlan.parse(bad)
        assert "\n" not in str(err.value)


def test_fault_plan_injects_per_delta_faults_and_timed_drops():
    async def scenario():
        async with server() as srv:
            ws, book = await subscribed(srv)
            srv.apply_plan(FaultPlan.parse("gap=0.3", seed=1))
            us = [book.u] + [f["data"]["u"] for f in await book_frames(ws, 30)]
            assert any(b - a == 2 for a, b in zip(us, us[1:]))
            assert srv.fault_counts["gap"] > 0
            srv.apply_plan(FaultPlan.parse("drop=100ms", seed=1))
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), T)
            assert srv.fault_counts["drop"] >= 1

    run(scenario())


def test_plan_snapshots_carry_the_u_the_client_has_reached():
    """A plan-driven resend_snapshot fired mid-batch goes out after the batch's deltas, so the
    stream stays consistent: every snapshot has the last delta's u, every delta the next u."""

    async def scenario():
        # 5 ms book pushes: each 20 ms source tick carries several deltas of the topic.
        async with server(book_interval_ms=5) as srv:
            ws, book = await subscribed(srv)
            srv.apply_plan(FaultPlan.parse("resend_snapshot=0.2", seed=1))
            frames = await book_frames(ws, 100)
            snapshots = 0
            last = book.u
            for f in frames:
                u = f["data"]["u"]
                if f["type"] == "snapshot":
                    snapshots += 1
                    assert u == last, (last, u)
                else:
                    assert u == last + 1, (last, u)
                last = u
            assert snapshots >= 5
            await ws.close()

    run(scenario())


# ----------------------------------------------------------------------------------- idle limit


def test_idle_connection_is_closed_after_the_idle_timeout():
    async def scenario():
        async with server(idle_timeout_s=IDLE) as srv:
            async with connect(srv.url_for("linear")) as ws:
                start = time.monotonic()
                await asyncio.wait_for(ws.wait_closed(), 2 * T)
                assert time.monotonic() - start >= 0.8 * IDLE
                assert ws.close_code == 1000

    run(scenario())


def test_control_pings_and_stream_data_keep_a_connection_alive():
    """A client that only sends WebSocket control pings, or only receives data, is not cut off."""

    async def scenario():
        async with server(idle_timeout_s=IDLE) as srv:
            async with connect(srv.url_for("linear"), ping_interval=None) as pinger:
                receiver, _ = await subscribed(srv)
                end = time.monotonic() + 3 * IDLE
                while time.monotonic() < end:
                    await asyncio.wait_for(await pinger.ping(), T)  # answered by the server
                    await collect(receiver, 0.01)
                    await asyncio.sleep(0.2 * IDLE)
                assert pinger.state is State.OPEN and receiver.state is State.OPEN
                await receiver.close()

    run(scenario())


# ----------------------------------------------------------------------------------- file source


def capture() -> Path:
    return fixture_path(LINEAR_CAPTURE)  # skips the test when the optional captures are absent


def _replay_capture(topic: str) -> tuple[dict[str, str], dict[str, str], int]:
    """The capture's final book of ``topic``, replayed independently with plain dicts."""
    book = PlainBook()
    for line in capture().read_text().splitlines():
        msg = json.loads(line)
        if msg.get("topic") == topic:
            book.apply(msg)
    return book.bids, book.asks, book.u


def test_file_source_serves_a_snapshot_equal_to_the_book_replayed_from_the_file():
    topic = "orderbook.200.BTCUSDT"
    bids, asks, u = _replay_capture(topic)

    async def scenario():
        source = FileSource(str(capture()), "linear", speed=None)
        assert source.symbols() >= {"BTCUSDT", "ETHUSDT"}
        async with BybitServer(source) as srv:
            await asyncio.wait_for(source.wait_finished(), T)
            assert srv.true_book("BTCUSDT") == (bids, asks)
            async with connect(srv.url_for("linear")) as ws:
                ack = await request(ws, {"op": "subscribe", "args": [topic], "req_id": "f"})
                assert ack["success"] is True
                snap = await recv_json(ws)
                assert snap["type"] == "snapshot" and snap["topic"] == topic and snap["data"]["u"] == u
                book = PlainBook()
                book.apply(snap)
                assert (book.bids, book.asks) == (bids, asks)
                assert [p for p, _ in snap["data"]["b"]] == sorted(bids, key=float, reverse=True)
                bad = await request(ws, {"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
                assert bad["success"] is False  # not in the file

    run(scenario())


def test_file_source_subscriber_joining_mid_replay_ends_with_the_files_final_book():
    topic = "orderbook.200.ETHUSDT"
    bids, asks, u = _replay_capture(topic)

    async def scenario():
        source = FileSource(str(capture()), "linear", speed=25.0)
        async with BybitServer(source) as srv:
            deadline = time.monotonic() + 2 * T
            while srv.true_book("ETHUSDT") == ({}, {}) or source.frames_sent < 600:
                assert time.monotonic() < deadline, "replay did not reach the middle of the file"
                await asyncio.sleep(0.01)
            assert not source.finished
            async with connect(srv.url_for("linear")) as ws:
                await request(ws, {"op": "subscribe", "args": [topic]})
                book = PlainBook()
                frames = []
                while book.u != u:
                    msg = await recv_json(ws, 2 * T)
                    assert msg["topic"] == topic  # acks, tickers etc. of the file are not forwarded
                    frames.append(msg)
                    book.apply(msg)
                assert frames[0]["type"] == "snapshot" and len(frames) > 10
                us = [f["data"]["u"] for f in frames]
                assert us == list(range(us[0], us[0] + len(us)))
                assert (book.bids, book.asks) == (bids, asks)

    run(scenario())


# ----------------------------------------------------------------------------------- scale


def test_200_symbols_client_gets_a_snapshot_for_each_of_its_topics():
    """A client subscribing to 400 topics of a 200-symbol market gets 200 snapshots in time."""
    symbols = [f"SYM{i:03d}USDT" for i in range(200)]

    async def scenario():
        async with server(symbols, trade_rate=5.0, categories=("linear",)) as srv:
            async with connect(srv.url_for("linear"), max_queue=None) as ws:
                args = [t for s in symbols for t in (f"orderbook.50.{s}", f"publicTrade.{s}")]
                start = time.monotonic()
                ack = await request(ws, {"op": "subscribe", "args": args, "req_id": "all"}, timeout=5 * T)
                assert ack["success"] is True
                seen: set[str] = set()
                trades: set[str] = set()
                deadline = start + 5 * T
                while len(seen) < 200:
                    raw = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                    if raw.startswith('{"topic":"orderbook.') and '"type":"snapshot"' in raw[:80]:
                        seen.add(raw[10:raw.index('"', 10)])
                    elif raw.startswith('{"topic":"publicTrade.'):
                        trades.add(raw)
                assert seen == {f"orderbook.50.{s}" for s in symbols}
                assert srv.overflow_drops == 0

    run(scenario())
