"""Every book depth at once, as Bybit serves it: the simulator's depth views and ``serve`` on the wire.

Each depth's book is rebuilt from the frames by bybitmon's own core :class:`OrderBook` and checked
after every frame against the market's whole book (``DepthMarket.book_now``): exactly ``depth``
levels per side, equal to the top ``depth`` levels of the true book.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import orjson
import pytest
from websockets.asyncio.client import connect

from bybitmon.core.book import OrderBook
from bybitmon.core.events import BookUpdate
from bybitmon.core.limits import BOOK_DEPTHS, BOOK_PUSH_MS
from bybitmon.core.protocol import parse_frame
from bybitmon.sim.depths import LEVEL1_RESEND_MS, DepthMarket
from bybitmon.testserver.app import BybitServer, FileSource, SimulatedSource
from bybitmon.testserver.run import banner

from paths import TIMEOUT_FACTOR

T = 2.0 * TIMEOUT_FACTOR
SYMS = ["BTCUSDT", "ETHUSDT"]


def _top(levels: dict[str, str], depth: int) -> dict[float, float]:
    return {float(p): float(s) for p, s in list(levels.items())[:depth]}


def _depth_of(raw: str) -> int:
    return int(orjson.loads(raw)["topic"].split(".")[1])


def _run_all_depths(category: str, duration_ms: int):
    """Every depth of SYMS active; yields (ts, depth, event, market) after each frame is emitted."""
    m = DepthMarket(SYMS, 7, category=category, trade_rate=20.0)
    m.advance(m.start_ms)
    books: dict[tuple[str, int], OrderBook] = {}
    for s in SYMS:
        for d in BOOK_DEPTHS:
            m.set_active(s, d, True)
            books[(s, d)] = book = OrderBook(s)
            assert book.apply(parse_frame(m.snapshot_frame(s, d), 0)).value == "snapshot"
    t = m.start_ms
    while t < m.start_ms + duration_ms:
        t += 1
        frames = m.advance(t)
        truth = {s: m.book_now(s) for s in {orjson.loads(raw)["data"]["s"] for _, raw in frames if '"orderbook.' in raw[:30]}}
        for ts, raw in frames:
            ev = parse_frame(raw, 0)
            if isinstance(ev, BookUpdate):
                yield ts, _depth_of(raw), raw, ev, books[(ev.symbol, _depth_of(raw))], truth[ev.symbol]


@pytest.mark.parametrize("category", ["linear", "spot"])
def test_every_depth_holds_exactly_depth_levels_equal_to_the_true_top(category):
    """After every frame of every depth: `depth` levels per side, equal to the market's top `depth`."""
    frames = 0
    per_depth: dict[int, int] = defaultdict(int)
    for _ts, depth, raw, ev, book, (bids, asks) in _run_all_depths(category, 3_000):
        result = book.apply(ev)
        assert book.ready, (depth, result)
        assert len(book.bids) == depth and len(book.asks) == depth
        assert book.bids == _top(bids, depth) and book.asks == _top(asks, depth)
        if depth == 1:
            assert ev.is_snapshot  # "Level 1 ... push snapshots only"
        else:
            assert not ev.is_snapshot
        frames += 1
        per_depth[depth] += 1
    assert set(per_depth) == set(BOOK_DEPTHS) and frames > 300


@pytest.mark.parametrize("category", ["linear", "spot"])
def test_each_depth_pushes_at_bybits_interval_with_its_own_u(category):
    m = DepthMarket(SYMS, 3, category=category, trade_rate=10.0)
    m.advance(m.start_ms)
    for s in SYMS:
        for d in BOOK_DEPTHS:
            m.set_active(s, d, True)
    ts_by_topic: dict[str, list[int]] = defaultdict(list)
    u_by_topic: dict[str, list[int]] = defaultdict(list)
    for ts, raw in m.advance(m.start_ms + 10_000):
        msg = orjson.loads(raw)
        if msg["topic"].startswith("orderbook."):
            ts_by_topic[msg["topic"]].append(ts)
            u_by_topic[msg["topic"]].append(msg["data"]["u"])
    assert len(ts_by_topic) == len(SYMS) * len(BOOK_DEPTHS)
    for topic, stamps in ts_by_topic.items():
        interval = BOOK_PUSH_MS[category][int(topic.split(".")[1])]
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        # Pushed only when the book changed, and only on the depth's own grid.
        assert min(gaps) == interval and all(g % interval == 0 for g in gaps), topic
        if interval >= 20:
            assert statistics.median(gaps) == interval, topic
        us = u_by_topic[topic]
        assert us == list(range(us[0], us[0] + len(us))), topic
    # Each depth has its own u sequence.
    firsts = {u_by_topic[f"orderbook.{d}.BTCUSDT"][0] for d in BOOK_DEPTHS}
    assert len(firsts) == len(BOOK_DEPTHS)


def test_level1_resends_its_snapshot_with_the_same_u_after_3_quiet_seconds():
    # A market that moves once every 10 s and has no trades: level 1 goes quiet in between.
    m = DepthMarket(["BTCUSDT"], 1, depths=(1,), push_ms={1: 10}, book_interval_ms=10_000, trade_rate=0.0,
                    plant_every_s=0.0)
    m.advance(m.start_ms)
    m.set_active("BTCUSDT", 1, True)
    first = orjson.loads(m.snapshot_frame("BTCUSDT", 1))
    frames = [orjson.loads(raw) for _, raw in m.advance(m.start_ms + 9_500)]
    assert frames, "no resend"
    assert all(f["type"] == "snapshot" and f["data"]["u"] == first["data"]["u"] for f in frames)
    assert [f["data"]["b"] for f in frames] == [first["data"]["b"]] * len(frames)
    gaps = [b["ts"] - a["ts"] for a, b in zip(frames, frames[1:])]
    assert gaps and all(LEVEL1_RESEND_MS <= g < LEVEL1_RESEND_MS + 20 for g in gaps)


def test_only_subscribed_depths_are_computed():
    m = DepthMarket(SYMS, 2)
    m.advance(m.start_ms)
    assert m.active_depths("BTCUSDT") == ()
    assert [raw for _, raw in m.advance(m.start_ms + 2_000) if raw.startswith('{"topic":"orderbook.')] == []
    m.set_active("BTCUSDT", 200, True)
    topics = {orjson.loads(raw)["topic"] for _, raw in m.advance(m.start_ms + 4_000) if '"orderbook.' in raw[:30]}
    assert topics == {"orderbook.200.BTCUSDT"} and m.active_depths("BTCUSDT") == (200,)
    m.set_active("BTCUSDT", 200, False)
    assert [raw for _, raw in m.advance(m.start_ms + 6_000) if raw.startswith('{"topic":"orderbook.')] == []


# ----------------------------------------------------------------------------------- on the wire


async def _recv(ws, timeout=T) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


def test_serve_streams_every_depth_of_two_symbols_on_one_connection():
    """One connection, 8 book topics: each rebuilt book keeps `depth` levels and ends equal to the truth."""

    async def scenario():
        source = SimulatedSource(SYMS, 4, categories=("linear",), trade_rate=10.0)
        async with BybitServer(source) as srv:
            async with connect(srv.url_for("linear"), max_queue=None) as ws:
                topics = [f"orderbook.{d}.{s}" for s in SYMS for d in BOOK_DEPTHS]
                await ws.send(orjson.dumps({"op": "subscribe", "args": topics, "req_id": "all"}).decode())
                books = {t: OrderBook(t.split(".")[2]) for t in topics}
                counts: dict[str, int] = defaultdict(int)
                deadline = time.monotonic() + 3 * T
                while time.monotonic() < deadline:
                    msg = await _recv(ws)
                    if "topic" not in msg:
                        assert msg["success"] is True
                        continue
                    book = books[msg["topic"]]
                    depth = int(msg["topic"].split(".")[1])
                    book.apply(parse_frame(orjson.dumps(msg), 0))
                    assert book.ready and len(book.bids) == depth and len(book.asks) == depth, msg["topic"]
                    counts[msg["topic"]] += 1
                assert set(counts) == set(topics) and min(counts.values()) >= 2, counts
                sim = source._cats["linear"].sim
                assert set(sim.active_depths("BTCUSDT")) == set(BOOK_DEPTHS)
                # Sync every topic to the server's current u, then compare with the true book.
                for topic in topics:
                    sym, depth = topic.split(".")[2], int(topic.split(".")[1])
                    book = books[topic]
                    while book.update_id != orjson.loads(srv.source.snapshot_frame("linear", topic))["data"]["u"]:
                        msg = await _recv(ws)
                        if msg.get("topic") in books:
                            books[msg["topic"]].apply(parse_frame(orjson.dumps(msg), 0))
                    bids, asks = srv.true_book(sym, depth=depth)
                    assert book.bids == {float(p): float(q) for p, q in bids.items()}
                    assert book.asks == {float(p): float(q) for p, q in asks.items()}
                await ws.send(orjson.dumps({"op": "unsubscribe", "args": topics}).decode())
                for _ in range(200):
                    if not sim.active_depths("BTCUSDT"):
                        break
                    await asyncio.sleep(0.01)
                assert sim.active_depths("BTCUSDT") == () and sim.active_depths("ETHUSDT") == ()

    asyncio.run(scenario())


def test_file_with_one_depth_serves_it_refuses_others_and_hints_its_own_symbols(tmp_path):
    """A spot depth-200 file: 200 is served, 50 gets Bybit's failure ack, the hint names spot, 200 and the file's symbols."""
    m = DepthMarket(["SOLUSDT", "XRPUSDT"], 5, category="spot", depths=(200,))
    m.advance(m.start_ms)
    lines = []
    for s in ("SOLUSDT", "XRPUSDT"):
        m.set_active(s, 200, True)
        lines.append(m.snapshot_frame(s, 200))
    lines += [raw for _, raw in m.advance(m.start_ms + 3_000)]
    path = tmp_path / "spot200.ndjson"
    path.write_text("\n".join(lines) + "\n")

    async def scenario():
        source = FileSource(str(path), speed=None)
        assert source.category == "spot"
        async with BybitServer(source) as srv:
            await asyncio.wait_for(source.wait_finished(), T)
            text = "\n".join(banner(srv, None))
            hint = text.splitlines()[-1]
            assert re.fullmatch(r"try: bybitmon watch SOLUSDT XRPUSDT --category spot --depth 200 --url ws://\S+", hint)
            assert "depths: 200 (others are refused)" in text
            async with connect(srv.url_for("spot")) as ws:
                await ws.send('{"op":"subscribe","args":["orderbook.50.SOLUSDT"],"req_id":"x"}')
                ack = await _recv(ws)
                assert ack == {"success": False, "ret_msg": "error:handler not found,topic:orderbook.50.SOLUSDT",
                               "conn_id": ack["conn_id"], "req_id": "x", "op": "subscribe"}
                await ws.send('{"op":"subscribe","args":["orderbook.200.SOLUSDT"]}')
                assert (await _recv(ws))["success"] is True
                snap = await _recv(ws)
                assert snap["type"] == "snapshot" and len(snap["data"]["b"]) == len(snap["data"]["a"]) == 200
                truth = m.true_book("SOLUSDT", 200)
                assert ({p: s for p, s in snap["data"]["b"]}, {p: s for p, s in snap["data"]["a"]}) == truth

    asyncio.run(scenario())


# ----------------------------------------------------------------------------------- watch


@pytest.fixture(scope="module")
def serve_url():
    p = subprocess.Popen([sys.executable, "-m", "bybitmon", "serve", "--simulate", "--port", "0",
                          "--symbols", "BTCUSDT,ETHUSDT"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        m = re.search(r"(ws://127\.0\.0\.1:\d+)", p.stdout.readline())
        assert m, "serve printed no URL"
        yield m.group(1)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.mark.parametrize("depth", BOOK_DEPTHS)
def test_watch_gets_a_ready_book_at_every_depth_from_serve(serve_url, depth):
    out = subprocess.run([sys.executable, "-m", "bybitmon", "watch", "BTCUSDT", "--depth", str(depth),
                          "--url", serve_url, "--json", "--duration", "3s"],
                         capture_output=True, text=True, timeout=60 * TIMEOUT_FACTOR)
    assert out.returncode == 0, out.stderr
    snaps = [orjson.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    last = [s for s in snaps if s.get("symbol") == "BTCUSDT"][-1]
    assert last["book"]["ready"] is True
    assert last["book"]["best_bid"] < last["book"]["best_ask"]
    assert last["health"]["gaps"] == 0 and last["health"]["crossed"] == 0
