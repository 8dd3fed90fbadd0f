"""Heat (core/heat.py) against a brute-force computation from every trade, and on planted
bursts: the burst symbol ranks first within seconds; a quiet symbol's single trade does not."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from bybitmon.core.heat import FLOOR_TPS, Heat

T0 = 1_767_225_600_000  # a whole 10-second block, so block edges are where the definition says


def brute(trades: list[tuple[int, str]], now_ms: int) -> tuple[float, float, float]:
    """The module docstring's definition, from the raw list, sizes as Decimal."""
    k = now_ms // 1000
    K = k // 10
    short = [Decimal(v) for t, v in trades if k - 9 <= t // 1000 <= k]
    long = [Decimal(v) for t, v in trades if K - 89 <= t // 10000 <= K]
    if not short or not long:
        return 0.0, 0.0, 0.0
    k0 = min(t // 10000 for t, _ in trades)
    span = Decimal(min(900, 10 * (K - k0 + 1)))
    floor = Decimal(str(FLOOR_TPS))
    rate_x = (Decimal(len(short)) / 10) / max(Decimal(len(long)) / span, floor)
    base_v = max(sum(long) / span, floor * sum(short) / len(short))
    volume_x = (sum(short) / 10) / base_v
    return float((rate_x * volume_x).sqrt()), float(rate_x), float(volume_x)


def _stream(rng: random.Random, rate: float, start: int, end: int) -> list[tuple[int, str]]:
    out, t = [], float(start)
    while True:
        t += rng.expovariate(rate) * 1000
        if t >= end:
            return out
        out.append((int(t), f"{rng.lognormvariate(0, 1):.3f}"))


@pytest.mark.parametrize("seed", range(6))
def test_heat_matches_brute_force_on_random_streams(seed):
    rng = random.Random(seed)
    rate = rng.choice([0.05, 0.5, 3.0, 12.0])
    trades = _stream(rng, rate, T0 + rng.randrange(0, 20_000), T0 + 25 * 60_000)
    # A burst somewhere, and some trades arriving a little out of order (as batches do).
    b0 = T0 + rng.randrange(5, 20) * 60_000
    trades += _stream(rng, rate * 10, b0, b0 + rng.randrange(2000, 8000))
    trades.sort()
    for i in range(0, len(trades) - 3, 3):
        if rng.random() < 0.2:
            trades[i], trades[i + 2] = trades[i + 2], trades[i]
    h = Heat()
    fed: list[tuple[int, str]] = []
    checks = 0
    for i, (t, v) in enumerate(trades):
        h.add(t, float(v))
        fed.append((t, v))
        if i % max(1, len(trades) // 40) == 0:
            now = max(x for x, _ in fed) + rng.randrange(0, 3000)
            got, want = h.parts(now), brute(fed, now)
            for g, w in zip(got, want):
                assert g == pytest.approx(w, rel=1e-9, abs=1e-12), (now, got, want)
            checks += 1
    assert checks > 30
    # Long after the last trade: nothing in the short window.
    assert h.value(max(t for t, _ in trades) + 11_000) == 0.0


def test_empty_and_single_trade():
    h = Heat()
    assert h.value(T0) == 0.0 and h.parts(T0) == (0.0, 0.0, 0.0)
    h.add(T0 + 500, 2.0)
    # One trade on a new symbol: compared with the 10 s it has been seen, heat is 1, not a spike.
    assert h.parts(T0 + 1000) == pytest.approx((1.0, 1.0, 1.0))


def test_quiet_symbols_single_trade_is_at_most_one():
    h = Heat()
    h.add(T0, 1.0)
    h.add(T0 + 14 * 60_000, 50.0)  # 14 min of silence, then one (large) trade
    parts = h.parts(T0 + 14 * 60_000 + 100)
    assert parts.rate_x == pytest.approx(1.0) and parts.volume_x <= 1.0 and parts.heat <= 1.0
    assert brute([(T0, "1"), (T0 + 14 * 60_000, "50")], T0 + 14 * 60_000 + 100) == pytest.approx(tuple(parts))


def test_memory_is_constant():
    h = Heat()
    for i in range(200_000):
        h.add(T0 + i * 37, 1.0)
    assert len(h._n1) == 10 and len(h._n10) == 90


def test_planted_burst_ranks_first_within_seconds_and_a_quiet_trade_does_not():
    rng = random.Random(7)
    end = T0 + 16 * 60_000
    burst_at = end - 5_000
    streams: dict[str, list[tuple[int, str]]] = {}
    for i, rate in enumerate([0.2, 0.5, 1, 2, 5, 10, 20, 40] * 2):
        streams[f"S{i:02d}USDT"] = _stream(rng, rate, T0, end + 10_000)
    # The burst: an ordinary 1 trade/s symbol trading 10x faster from burst_at.
    streams["BURSTUSDT"] = (_stream(rng, 1.0, T0, burst_at) + _stream(rng, 10.0, burst_at, burst_at + 8000)
                            + _stream(rng, 1.0, burst_at + 8000, end + 10_000))
    # The quiet one: a trade 15 min ago, and one, large, right at the burst.
    streams["QUIETUSDT"] = [(T0 + 60_000, "1.0"), (burst_at + 200, "80.0")]
    merged = sorted((t, s, v) for s, tr in streams.items() for t, v in tr)
    heat = {s: Heat() for s in streams}
    fed: dict[str, list[tuple[int, str]]] = {s: [] for s in streams}
    first_rank_ms = None
    for t, s, v in merged:
        if t > burst_at + 6000:
            break
        heat[s].add(t, float(v))
        fed[s].append((t, v))
        now = t
        if first_rank_ms is None and t >= burst_at:
            top = max(streams, key=lambda x: heat[x].value(now))
            if top == "BURSTUSDT":
                first_rank_ms = now - burst_at
            if t >= burst_at + 300:
                assert heat["QUIETUSDT"].value(now) <= 1.0 + 1e-9
    assert first_rank_ms is not None and first_rank_ms <= 3000, first_rank_ms
    now = burst_at + 3000
    ranked = sorted(streams, key=lambda x: -brute(fed[x], now)[0])
    assert ranked[0] == "BURSTUSDT"
    assert ranked.index("QUIETUSDT") > 3
    # By trades per second the burst would not be first: 40 trades/s symbols are busier.
    tps = {s: sum(1 for t, _ in fed[s] if now - 10_000 < t <= now) for s in streams}
    assert max(tps, key=tps.get) != "BURSTUSDT"
    last = max(t for tr in fed.values() for t, _ in tr)
    for s in streams:  # and the streaming values are the brute-force ones
        assert heat[s].value(last) == pytest.approx(brute(fed[s], last)[0], rel=1e-9, abs=1e-12)
