"""Proof under fire: the client against `bybitmon serve --simulate` while the server injects
faults of every kind. Whenever the client's book is ready and has applied the same frame as
the server's true book (same seq), the two must be equal; at the end every book recovers.
The fast version runs in the normal suite; `pytest -m soak` runs the long one."""

from __future__ import annotations

import asyncio
import random
import time

import orjson
import pytest

from bybitmon.transport.feed import LiveFeed
from bybitmon.core.monitor import Monitor
from bybitmon.testserver.app import BybitServer, FaultPlan, SimulatedSource

from paths import TIMEOUT_FACTOR

PLAN = ("drop=4s,stall=7s,duplicate=0.008,gap=0.008,reorder=0.006,crossed=0.006,"
        "reset=0.004,resend_snapshot=0.006,malformed=0.004")


async def soak(seconds: float, symbols: int, plan: str) -> dict:
    syms = [f"C{i:02d}USDT" for i in range(symbols)]
    # One more symbol the market has but the server refuses: its refusal must be reported once,
    # across every reconnect, and must not hold up the symbols batched with it.
    refused = "REFUSEDUSDT"
    srv = BybitServer(SimulatedSource(syms + [refused], seed=5))
    await srv.start()
    srv.reject(refused)
    m = Monitor("linear")
    feed = LiveFeed(m, url=srv.url, quiet_s=0.5, pong_timeout_s=0.5, backoff_initial_s=0.05,
                    backoff_max_s=0.3, resync_retry_s=0.5)
    stats = {"checks": 0, "equal": 0, "mismatch": 0, "ready_samples": 0, "not_ready_samples": 0}
    rng = random.Random(1)
    try:
        await feed.start(syms + [refused])
        srv.apply_plan(FaultPlan.parse(plan, seed=4))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(rng.uniform(0.001, 0.02))
            for s in rng.sample(syms, k=min(5, len(syms))):
                st = m.states.get(s)
                if st is None:
                    continue
                if not st.book.ready:
                    stats["not_ready_samples"] += 1
                    continue
                stats["ready_samples"] += 1
                snap = orjson.loads(srv.source.snapshot_frame("linear", f"orderbook.50.{s}"))
                if snap["data"]["seq"] != st.book.seq:
                    continue  # frames in flight: not comparable at this instant
                stats["checks"] += 1
                bids = {float(p): float(q) for p, q in snap["data"]["b"]}
                asks = {float(p): float(q) for p, q in snap["data"]["a"]}
                if st.book.bids == bids and st.book.asks == asks:
                    stats["equal"] += 1
                else:
                    stats["mismatch"] += 1
        srv.apply_plan(None)
        # recovery: every book ready and equal to the truth once the faults stop
        deadline = time.monotonic() + 15 * TIMEOUT_FACTOR
        pending = set(syms)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            for s in list(pending):
                st = m.states.get(s)
                if st is None or not st.book.ready:
                    continue
                bids, asks = srv.true_book(s)
                if (st.book.bids == {float(p): float(q) for p, q in bids.items()}
                        and st.book.asks == {float(p): float(q) for p, q in asks.items()}):
                    pending.discard(s)
        stats["unrecovered"] = sorted(pending)
        stats["refused_topics"] = sorted(feed.client.failed)
        stats["refusals_reported"] = sum(refused in str(e) for e in feed.errors)
        stats["refused_book_ready"] = m.states[refused].book.ready if refused in m.states else False
        stats["faults"] = dict(srv.fault_counts)
        health = [m.snapshot(s)["health"] for s in syms]
        stats["detected"] = {
            "stale": sum(h["stale"] for h in health), "gaps": sum(h["gaps"] for h in health),
            "crossed": sum(h["crossed"] for h in health), "resets": sum(h["resets"] for h in health),
            "bad_frames": m.bad_frames, "reconnects": sum(h.reconnects for h in feed.health),
            "stalls": sum(h.stalls for h in feed.health), "resyncs": feed.client.resyncs,
        }
    finally:
        await feed.stop()
        await srv.close()
    return stats


def check(stats: dict, min_faults: int) -> None:
    f, d = stats["faults"], stats["detected"]
    total = sum(f.values())
    assert total >= min_faults, stats
    for kind in ("drop", "stall", "reject", "duplicate", "gap", "reorder", "crossed", "reset", "resend_snapshot",
                 "malformed"):
        assert f[kind] > 0, f"no {kind} fault injected: {f}"
    assert stats["refused_topics"] == ["orderbook.50.REFUSEDUSDT", "publicTrade.REFUSEDUSDT"], stats
    assert stats["refusals_reported"] == 2 and not stats["refused_book_ready"], stats
    assert stats["mismatch"] == 0, stats
    assert stats["checks"] > 100, stats
    assert stats["unrecovered"] == [], stats
    # every kind was seen by the client's counters
    assert d["stale"] > 0 and d["gaps"] > 0 and d["crossed"] > 0 and d["resets"] > 0
    assert d["bad_frames"] > 0 and d["reconnects"] > 0 and d["stalls"] > 0


def test_fault_soak_short():
    stats = asyncio.run(soak(12.0, symbols=20, plan=PLAN))
    print(stats)
    check(stats, min_faults=200)


@pytest.mark.soak
def test_fault_soak_long():
    stats = asyncio.run(soak(90.0, symbols=40, plan=PLAN))
    print(stats)
    check(stats, min_faults=1000)
