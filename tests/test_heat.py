"""Heat: the last 10 s of trading against the symbol's own last 15 min, checked by brute force."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from bybitmon.core.activity import HEAT_LONG_S, HEAT_SHORT_S, HEAT_TPS_FLOOR, HeatMeter
from bybitmon.core.alerts import AlertEngine, parse_alert
from bybitmon.core.events import Trade
from bybitmon.core.monitor import Monitor

from frames import trades

T0 = 1_767_225_600_000


def brute_heat(fed: list[tuple[int, Decimal]], first_now: int, now: int) -> tuple[float, float]:
    """(heat, heat_volume) from every trade fed (fill ms, size), by the README's definition."""
    c = now // 1000
    span = min(HEAT_LONG_S, c - first_now // 1000 + 1)
    short_span = min(HEAT_SHORT_S, span)
    long = [v for T, v in fed if c - HEAT_LONG_S + 1 <= T // 1000 <= c]
    short = [v for T, v in fed if c - HEAT_SHORT_S + 1 <= T // 1000 <= c]
    tps_long = len(long) / span
    heat = (len(short) / short_span) / max(tps_long, HEAT_TPS_FLOOR)
    vol_short = sum(short, Decimal(0)) / short_span
    vol_long = sum(long, Decimal(0)) / span
    mean = (sum(long, Decimal(0)) / len(long)) if long else (sum(short, Decimal(0)) / len(short) if short else 0)
    floor = Decimal(str(HEAT_TPS_FLOOR)) * mean
    heat_volume = float(vol_short / max(vol_long, floor)) if vol_short else 0.0
    return heat, heat_volume


@pytest.mark.parametrize("seed", range(6))
def test_heat_matches_a_brute_force_on_random_streams_with_planted_bursts(seed):
    """Three symbols over ~25 simulated minutes (quiet stretches, bursts, late and early fills,
    clock pauses longer than 15 min): the snapshot's heat equals the brute force at every check."""
    rng = random.Random(seed)
    m = Monitor("linear", window_ms=60_000)
    fed: dict[str, list[tuple[int, Decimal]]] = {s: [] for s in ("AAA", "BBB", "CCC")}
    first_now: dict[str, int] = {}
    t = T0
    n = 0
    checks = 0
    while t < T0 + 25 * 60_000:
        burst = (t // 60_000) % 7 == 3
        t += rng.choice([1, 5, 50, 200, 900]) if not burst else rng.choice([1, 3, 10])
        if rng.random() < 0.002:
            t += 16 * 60_000  # a long pause: everything leaves the baseline
        sym = rng.choice(["AAA", "AAA", "BBB", "CCC"]) if not burst else "BBB"
        items = []
        for _ in range(rng.randrange(1, 4)):
            n += 1
            T = t - rng.choice([0, 0, 0, 20, 1500, 12_000, 950_000]) + rng.choice([0, 0, 0, 0, 700, 3000])
            v = rng.choice(["0.001", "1", "2.5", "7", "30"])
            items.append((T, rng.choice(["Buy", "Sell"]), "10", v, f"i{n}"))
        m.feed(t * 1_000_000, trades(sym, items, ts=t))
        first_now.setdefault(sym, m.now_ms)
        fed[sym] += [(T, Decimal(v)) for T, _, _, v, _ in items]
        if rng.random() < 0.05:
            if rng.random() < 0.5:
                m.advance()
            for s in fed:
                snap = m.snapshot(s)
                if s not in first_now:
                    assert snap.trades.heat is None
                    continue
                heat, heat_volume = brute_heat(fed[s], first_now[s], m.now_ms)
                assert snap.trades.heat == pytest.approx(heat, rel=1e-12)
                assert snap.trades.heat_volume == pytest.approx(heat_volume, rel=1e-9)
                checks += 1
    assert checks > 50


def _market(burst_symbol: str, burst_at_s: int, seconds: int, rng: random.Random):
    """About one trade a second on each of four symbols, a lone trade on QUIET, and from
    ``burst_at_s`` on twenty trades a second on ``burst_symbol``."""
    n = 0
    for sec in range(seconds):
        for sym in ("AAA", "BBB", "CCC", "DDD"):
            k = 20 if sym == burst_symbol and sec >= burst_at_s else (1 if rng.random() < 0.9 else 2)
            for j in range(k):
                n += 1
                T = T0 + sec * 1000 + j * (1000 // k)
                yield T, trades(sym, [(T, "Buy", "10", "1", f"{sym}{n}")], ts=T)
        if sec == seconds - 30:
            n += 1
            T = T0 + sec * 1000
            yield T, trades("QUIET", [(T, "Sell", "10", "5", f"q{n}")], ts=T)


def test_the_burst_symbol_ranks_first_within_seconds_and_a_lone_trade_does_not():
    rng = random.Random(1)
    m = Monitor("linear")
    engine = AlertEngine(["heat>5"])
    fired: list[tuple[int, str]] = []
    burst_at = 1000  # after more than 15 minutes of quiet trading
    for T, raw in _market("CCC", burst_at, burst_at + 40, rng):
        m.feed(T * 1_000_000, raw)
        if T % 1000 == 0:
            m.advance()
            for s in m.symbols:
                fired += [(T, e["symbol"]) for e in engine.evaluate(m.snapshot(s)) if e["state"] == "firing"]
    ranked = sorted(m.symbols, key=lambda s: -m.heat(s).heat)
    assert ranked[0] == "CCC"
    assert m.heat("QUIET").heat <= 1.0 and m.heat("QUIET").heat_volume <= 1.0
    assert m.snapshot("CCC").trades.heat > 5
    # The alert fired for the burst symbol only, within a few seconds of the burst's start.
    assert [s for _, s in fired] == ["CCC"]
    assert fired[0][0] - (T0 + burst_at * 1000) <= 3000


def test_heat_is_usable_in_alert_rules():
    assert parse_alert("heat>5").field == "trades.heat"
    assert parse_alert("BTCUSDT:heat_volume >= 3").field == "trades.heat_volume"


def test_a_fresh_symbol_is_not_a_spike():
    """A symbol seen for the first time has no baseline yet: its windows start at its first trade."""
    meter = HeatMeter()
    meter.add([Trade(T0, True, 1.0, 1.0, "1", "a")], T0)
    h = meter.read(T0)
    assert h.heat == pytest.approx(1.0 / max(1.0, HEAT_TPS_FLOOR)) and h.tps_long == 1.0


def test_heat_meter_memory_is_bounded_against_future_fills():
    meter = HeatMeter()
    meter.add([Trade(T0 + i * 1000, True, 1.0, 1.0, "1", f"f{i}") for i in range(1, 5000)], T0)
    assert len(meter._pending) <= 1024 and meter.overflow == 4999 - 1024
