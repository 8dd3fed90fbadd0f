"""Against the real exchange: opt-in (BYBITMON_LIVE=1 pytest -m live tests/test_live.py).

Skipped by default: development and CI machines cannot reach Bybit. Everything else about the
client is tested against `bybitmon serve` on loopback."""

from __future__ import annotations

import asyncio

import pytest

from bybitmon.transport.feed import LiveFeed
from bybitmon.core.monitor import Monitor

from helpers import eventually, run

pytestmark = pytest.mark.live


@pytest.mark.parametrize("category", ["linear", "spot"])
def test_real_exchange_books_and_trades(category):
    async def scenario():
        m = Monitor(category)
        feed = LiveFeed(m, ping_interval_s=2.0)
        await feed.start(["BTCUSDT", "ETHUSDT"])
        await eventually(lambda: all(m.states.get(s) and m.states[s].book.ready for s in ("BTCUSDT", "ETHUSDT")),
                         timeout=30, what="books from Bybit")
        await asyncio.sleep(5)
        snap = m.snapshot("BTCUSDT")
        assert snap["book"]["best_bid"] < snap["book"]["best_ask"]
        assert snap["health"]["gaps"] == 0 and snap["health"]["crossed"] == 0
        assert len(m.states["BTCUSDT"].book.bids) == 50
        assert feed.health[0].reconnects == 0
        await feed.stop()
    run(scenario(), timeout=90)


def test_real_exchange_refuses_a_bad_symbol_once():
    async def scenario():
        errors = []
        feed = LiveFeed(Monitor("linear"), on_subscribe_error=lambda err: errors.append(err.topics[0]))
        await feed.start(["NOSUCHCOIN123"])
        await eventually(lambda: len(errors) == 2, timeout=30, what="refusals")
        await feed.stop()
    run(scenario(), timeout=60)
