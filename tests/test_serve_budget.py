"""``serve`` under abusive clients: a global budget of connections and unsent bytes, and rate-limited
snapshot resends. The excess clients are cut; a client that reads is served throughout."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bybitmon.core.book import OrderBook
from bybitmon.core.protocol import parse_frame
from bybitmon.testserver.app import BybitServer, SimulatedSource
from bybitmon.testserver.budget import Budget, TokenBucket, over_budget

from paths import TIMEOUT_FACTOR

T = 2.0 * TIMEOUT_FACTOR
SYMS = [f"S{i:02d}USDT" for i in range(20)]
MiB = 2**20


def test_token_bucket_refills_at_its_rate_up_to_its_capacity():
    b = TokenBucket(5, 2.0, now=0.0)
    assert b.take(5, 0.0) and not b.take(1, 0.0)
    assert not b.take(2, 0.5) and b.take(1, 0.5)  # 0.5 s earned 1 token
    assert b.take(5, 100.0) and not b.take(1, 100.0)  # never more than the capacity


def test_over_budget_cuts_the_largest_holders_first_and_no_more_than_needed():
    sizes = [("a", 10), ("b", 50), ("c", 30), ("d", 5)]
    assert over_budget(sizes, 100) == []
    assert over_budget(sizes, 60) == ["b"]
    assert over_budget(sizes, 20) == ["b", "c"]


async def _abuser(url: str, args: list[str], requests: int, held: list) -> str:
    """Connect with a tiny receive buffer, flood subscribe requests, never read.

    Returns:
        ``"refused 503"`` when the handshake was refused, ``"sent"`` when every request went
        out, ``"cut"`` when the server cut the connection while it was sending.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    try:
        ws = await connect(url, sock=sock, max_queue=1, ping_interval=None, open_timeout=5 * T)
    except InvalidStatus as exc:
        return f"refused {exc.response.status_code}"
    # Reading pauses once the queue is full, so this client may never notice the server's cut:
    # the test counts cuts on the server and lets go of the sockets at the end.
    held.append(ws)
    msg = orjson.dumps({"op": "subscribe", "args": args}).decode()
    try:
        for _ in range(requests):
            await ws.send(msg)
        return "sent"
    except ConnectionClosed:
        return "cut"


def test_abusive_clients_are_cut_and_a_reading_client_is_served():
    budget = Budget(max_connections=9, max_buffer_bytes=4 * MiB, max_total_buffer_bytes=10 * MiB,
                    resend_burst=10_000, resend_per_s=10_000)
    heavy = [f"orderbook.1000.{s}" for s in SYMS]  # ~0.9 MB of snapshots per request

    async def scenario():
        source = SimulatedSource(SYMS, 3, categories=("linear",), trade_rate=5.0)
        async with BybitServer(source, budget=budget) as srv:
            async with connect(srv.url_for("linear"), max_queue=None) as good:
                await good.send('{"op":"subscribe","args":["orderbook.50.S00USDT"]}')
                book = OrderBook("S00USDT")
                peak = 0
                reader_done = asyncio.Event()

                async def read_good():
                    while not reader_done.is_set():
                        try:
                            raw = await asyncio.wait_for(good.recv(), 0.05)
                        except asyncio.TimeoutError:
                            continue
                        if raw.startswith('{"topic"'):
                            book.apply(parse_frame(raw, 0))

                async def watch_buffers():
                    nonlocal peak
                    while not reader_done.is_set():
                        total = sum(c.transport.get_write_buffer_size() for cat in srv._conns.values() for c in cat)
                        peak = max(peak, total)
                        await asyncio.sleep(0.005)

                tasks = [asyncio.create_task(read_good()), asyncio.create_task(watch_buffers())]
                # 10 abusers on a server that takes 9 connections: the good one plus 8 of them.
                # The abusers keep their sockets open (never read) until the server cuts them.
                held: list = []
                ends = await asyncio.gather(*(_abuser(srv.url_for("linear"), heavy, 20, held) for _ in range(10)))
                assert sorted(ends).count("refused 503") == 2, ends
                assert srv.refused_connections == 2
                deadline = time.monotonic() + 10 * T
                while srv.connections() > 1 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert srv.connections() == 1 and srv.overflow_drops == 8
                for ws in held:
                    ws.transport.abort()
                assert not good.protocol.state.name == "CLOSED"
                # Never more unsent bytes than the total cap plus what one request can add between checks.
                assert peak <= budget.max_total_buffer_bytes + budget.max_buffer_bytes + 2 * MiB, peak
                # The reading client was never cut and holds the true book.
                deadline = time.monotonic() + 3 * T
                while time.monotonic() < deadline:
                    truth = orjson.loads(srv.source.snapshot_frame("linear", "orderbook.50.S00USDT"))
                    if book.ready and book.update_id == truth["data"]["u"]:
                        break
                    await asyncio.sleep(0.01)
                bids, asks = srv.true_book("S00USDT", depth=50)
                assert book.bids == {float(p): float(q) for p, q in bids.items()}
                assert book.asks == {float(p): float(q) for p, q in asks.items()}
                reader_done.set()
                await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_snapshot_resends_beyond_the_rate_get_a_failure_ack_then_recover():
    budget = Budget(resend_burst=3, resend_per_s=5.0)

    async def scenario():
        async with BybitServer(SimulatedSource(SYMS[:2], 1, categories=("linear",)), budget=budget) as srv:
            async with connect(srv.url_for("linear"), max_queue=None) as ws:
                sub = '{"op":"subscribe","args":["orderbook.50.S00USDT"],"req_id":"r"}'

                async def ack() -> dict:
                    while True:
                        msg = orjson.loads(await asyncio.wait_for(ws.recv(), T))
                        if "topic" not in msg:
                            return msg

                await ws.send(sub)
                assert (await ack())["success"] is True  # the first subscription is not a resend
                results = []
                for _ in range(5):
                    await ws.send(sub)
                    results.append((await ack())["success"])
                assert results[:3] == [True] * 3 and results[3:] == [False] * 2
                await ws.send(sub)
                refusal = await ack()
                assert refusal == {"success": False, "ret_msg": "error:too many snapshot requests, retry later",
                                   "conn_id": refusal["conn_id"], "req_id": "r", "op": "subscribe"}
                assert srv.resends_refused == 3
                await asyncio.sleep(0.3)  # earns a token back
                await ws.send(sub)
                assert (await ack())["success"] is True
                # Still streaming.
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), T))
                assert msg["topic"] == "orderbook.50.S00USDT"

    asyncio.run(scenario())


@pytest.mark.parametrize("n", [3])
def test_connections_beyond_the_cap_get_http_503(n):
    async def scenario():
        async with BybitServer(SimulatedSource(SYMS[:1], 1), budget=Budget(max_connections=n)) as srv:
            conns = [await connect(srv.url_for("linear")) for _ in range(n)]
            with pytest.raises(InvalidStatus) as err:
                await connect(srv.url_for("linear"))
            assert err.value.response.status_code == 503
            await conns[0].close()
            for _ in range(100):
                if srv.connections() < n:
                    break
                await asyncio.sleep(0.01)
            async with connect(srv.url_for("linear")) as ws:  # room again
                await ws.send('{"op":"ping"}')
                assert orjson.loads(await asyncio.wait_for(ws.recv(), T))["ret_msg"] == "pong"
            for c in conns[1:]:
                await c.close()

    asyncio.run(scenario())
