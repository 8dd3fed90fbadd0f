"""Density rules in ``--alert`` against a brute-force scan of the simulator's books.

A rule such as ``density_notional>=21000 & density_dist<=0.03`` holds for a symbol when one of its
active densities meets every density condition. The brute force shares no code with bybitmon: it
keeps each book as Decimal sizes straight from the frames' strings and the last trade price as a
Decimal, and at each evaluation asks "is there a resting level whose price x size >= N within D %
of the last price?".

Why the two agree: N is above 7x the largest per-side median level notional the run ever has
(checked below), so every level that qualifies is far above the tracker's 5x-median threshold and
is a density (the simulator's planted orders are 8-25x the median). The one thing the brute force
cannot see is the tracker's scan period (new levels are found on the next scan, <= 100 ms of book
time): a level that has qualified for less than 300 ms makes that one evaluation ambiguous, and it
is not compared (counted, and bounded below).
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import orjson
import pytest

from bybitmon.app.emit import Every
from bybitmon.core.alerts import AlertEngine, parse_alert
from bybitmon.core.monitor import Monitor
from bybitmon.core.screener import ScreenFilter, screen_densities
from bybitmon.sim.market import MarketSimulator

from paths import TIMEOUT_FACTOR

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
DURATION_MS = 90_000
EVERY_MS = 500
YOUNG_MS = 300
N = 21_000
# About 5 ticks at each symbol's price: some planted orders (2-8 ticks behind the touch) are
# within, some beyond.
DIST = {"BTCUSDT": "0.00075", "ETHUSDT": "0.00146", "SOLUSDT": "0.033", "XRPUSDT": "0.0255"}
RULES = [f"{s}: density_notional>={N} & density_dist<={d}" for s, d in DIST.items()]
GLOBAL = f"density_notional >= {N} & density_dist <= 0.03"


class Brute:
    """Books (Decimal sizes by Decimal price) and last trade prices, from the raw frames."""

    def __init__(self, n: Decimal) -> None:
        self.n = n
        self.books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}
        self.big: dict[str, dict[tuple[str, Decimal], tuple[Decimal, Decimal]]] = {}  # notional >= n
        self.last: dict[str, Decimal] = {}
        self.now = 0
        self.max_median_notional = Decimal(0)

    def feed(self, raw: str) -> None:
        msg = json.loads(raw)
        self.now = max(self.now, msg["ts"])
        topic = msg["topic"]
        if topic.startswith("orderbook."):
            d = msg["data"]
            book = self.books.setdefault(d["s"], {"bid": {}, "ask": {}})
            big = self.big.setdefault(d["s"], {})
            if msg["type"] == "snapshot":
                book["bid"].clear()
                book["ask"].clear()
                big.clear()
            for side, key in (("bid", "b"), ("ask", "a")):
                for p, s in d[key]:
                    price, size = Decimal(p), Decimal(s)
                    big.pop((side, price), None)
                    if size == 0:
                        book[side].pop(price, None)
                    else:
                        book[side][price] = size
                        if price * size >= self.n:
                            big[(side, price)] = (size, price * size)
        else:
            for t in msg["data"]:
                self.last[t["s"]] = Decimal(t["p"])

    def median(self, sym: str, side: str) -> Decimal:
        sizes = sorted(self.books[sym][side].values())
        n = len(sizes)
        return sizes[n // 2] if n % 2 else (sizes[n // 2 - 1] + sizes[n // 2]) / 2

    def levels(self, sym: str, dist: Decimal) -> list[tuple[Decimal, str, Decimal, Decimal, Decimal]]:
        """(distance %, side, price, size, notional) of every level with notional >= n within
        dist % of the last price, nearest first."""
        last = self.last[sym]
        out = []
        for (side, price), (size, notional) in self.big[sym].items():
            distance = abs(price - last) / last * 100
            if distance <= dist:
                out.append((distance, side, price, size, notional))
        return sorted(out)


def run_alerts():
    """Feed a Monitor and the brute force side by side; evaluate alerts every EVERY_MS of
    pipeline clock (as ``--interval`` does) with hysteresis 0 (the state is the condition) and
    with the default 10 %."""
    sim = MarketSimulator(SYMBOLS, seed=7, trade_rate=8.0, plant_every_s=6.0)
    m = Monitor("linear", window_ms=60_000)
    brute = Brute(Decimal(N))
    parsed = [(rule, parse_alert(rule)) for rule in RULES + [GLOBAL]]
    for _, r in parsed:
        assert r.threshold == N and r.more[0].field == "density_dist"
    exact = AlertEngine(RULES + [GLOBAL], hysteresis=0.0)
    default = AlertEngine(RULES + [GLOBAL])
    every = Every(EVERY_MS)
    # (rule, sym, side, price) -> since when the level has qualified for the rule, continuously
    since: dict[tuple, int] = {}
    qualifying: dict[tuple[str, str], list] = {}  # (rule, symbol) -> brute.levels(...) now
    points = []
    for ts, raw in sim.frames(DURATION_MS):
        m.feed(ts * 1_000_000, raw)
        brute.feed(raw)
        sym = _symbol_of(raw)
        if sym in brute.last and sym in brute.books:  # only this symbol's levels or price moved
            for rule, r in parsed:
                if not r.applies_to(sym):
                    continue
                found = brute.levels(sym, Decimal(str(r.more[0].threshold)))
                qualifying[(rule, sym)] = found
                keys = {(rule, sym, side, price) for _, side, price, _, _ in found}
                for k in keys:
                    since.setdefault(k, brute.now)
                for k in [k for k in since if k[:2] == (rule, sym) and k not in keys]:
                    del since[k]
        if every.due(m.now_ms):
            assert m.now_ms == brute.now
            for sym in brute.books:
                for side in ("bid", "ask"):
                    if brute.books[sym][side]:
                        brute.max_median_notional = max(brute.max_median_notional,
                                                        brute.median(sym, side) * max(brute.books[sym][side]))
            events_exact = exact.evaluate_monitor(m)
            events = default.evaluate_monitor(m)
            firing_exact = {sym: exact.firing(sym) for sym in SYMBOLS}
            points.append({
                "now": brute.now, "qualifying": dict(qualifying),
                # ambiguous: every qualifying level is younger than the scan latency allows for
                "young": ({k[:2] for k, t in since.items() if brute.now - t < YOUNG_MS}
                          - {k[:2] for k, t in since.items() if brute.now - t >= YOUNG_MS}),
                "events_exact": events_exact, "events": events, "firing_exact": firing_exact,
                "firing": {sym: default.firing(sym) for sym in SYMBOLS},
                "rows": screen_densities(m, flt=ScreenFilter(ended_ms=0)),
            })
    return points, brute


def _symbol_of(raw: str) -> str:
    topic = json.loads(raw)["topic"]
    return topic.rsplit(".", 1)[1]


@pytest.fixture(scope="module")
def points():
    pts, brute = run_alerts()
    # The premise of the comparison: N is far above the 5x-median density threshold.
    assert brute.max_median_notional * 7 < N, brute.max_median_notional
    return pts


def test_exact_rule_fires_exactly_when_a_qualifying_density_exists(points):
    """With no hysteresis, the rule is firing for a symbol exactly at the evaluations where the
    brute force finds a level meeting all its conditions."""
    compared = skipped = 0
    yes = 0
    for p in points:
        for (rule, sym), found in p["qualifying"].items():
            if (rule, sym) in p["young"]:
                skipped += 1
                continue
            compared += 1
            fired = {t.split(" [", 1)[0] for t in p["firing_exact"][sym]}
            assert (rule.strip() in fired) == bool(found), (p["now"], rule, sym, found, p["firing_exact"][sym])
            yes += bool(found)
    assert compared > 700 and skipped < compared / 10, (compared, skipped)
    assert 50 < yes < compared - 50, (yes, compared)


def test_distance_condition_decides_some_evaluations(points):
    """Some evaluations have a level of notional >= N beyond the distance: the rule must not fire."""
    beyond = 0
    for p in points:
        for (rule, sym), found in p["qualifying"].items():
            if found or (rule, sym) in p["young"]:
                continue
            big = [r for r in p["rows"] if r.symbol == sym and r.state == "active" and r.notional >= N]
            if big:
                beyond += 1
                fired = {t.split(" [", 1)[0] for t in p["firing_exact"][sym]}
                assert rule.strip() not in fired
    assert beyond > 20


def test_firing_event_names_the_nearest_qualifying_density_with_brute_force_numbers(points):
    checked = 0
    for p in points:
        for e in p["events_exact"] + p["events"]:
            if e["state"] != "firing":
                continue
            found = p["qualifying"][(e["rule"], e["symbol"])]
            d = e["density"]
            assert found, e
            dist, side, price, size, notional = found[0]
            assert (d["side"], d["price"], d["state"]) == (side, float(price), "active")
            assert d["size"] == pytest.approx(float(size), rel=1e-12)
            assert d["notional"] == pytest.approx(float(notional), rel=1e-9)
            assert d["distance_pct"] == pytest.approx(float(dist), rel=1e-9)
            conds = e["conditions"]
            assert [c["field"] for c in conds] == ["density_notional", "density_dist"]
            assert conds[0]["value"] == d["notional"] and conds[1]["value"] == d["distance_pct"]
            assert e["field"] == "density_notional" and e["value"] == d["notional"]
            checked += 1
    assert checked > 30


def test_firing_density_is_a_row_of_the_density_screen(points):
    """The numbers an alert names are the density screen's, not recomputed."""
    for p in points:
        rows = {(r.symbol, r.side, r.price): r for r in p["rows"] if r.state == "active"}
        for e in p["events"]:
            if e["state"] == "firing":
                r = rows[(e["symbol"], e["density"]["side"], e["density"]["price"])]
                assert {k: v for k, v in r.as_dict().items() if k != "symbol"} == e["density"]


def test_default_hysteresis_fires_on_brute_force_crossings_and_clears_past_the_margins(points):
    """With the 10 % margin: never firing where nothing is within N*0.9 / D*1.1, always firing
    where a level meets N and D; firing events only where one meets them, cleared events only
    where none is within the margins."""
    firing: dict[tuple[str, str], bool] = {}
    n_fire = n_clear = 0
    for p in points:
        for e in p["events"]:
            key = (e["rule"], e["symbol"])
            if e["state"] == "firing":
                assert p["qualifying"][key], e
                assert not firing.get(key)
                firing[key] = True
                n_fire += 1
            else:
                assert firing.get(key) and e["density"] is None
                firing[key] = False
                n_clear += 1
        for (rule, sym), found in p["qualifying"].items():
            if (rule, sym) in p["young"]:
                continue
            r = parse_alert(rule)
            loose_n = Decimal(str(r.threshold)) * Decimal("0.9")
            loose_d = Decimal(str(r.more[0].threshold)) * Decimal("1.1")
            shown = {t.split(" [", 1)[0] for t in p["firing"][sym]}
            if found:
                assert rule.strip() in shown
            elif not _within(p, sym, loose_n, loose_d):
                assert rule.strip() not in shown
    assert n_fire > 10 and n_clear > 10


def _within(p, sym, n: Decimal, d: Decimal) -> bool:
    """Whether any active density row of ``sym`` is within the loose bounds (Decimal from rows)."""
    for r in p["rows"]:
        if r.symbol == sym and r.state == "active" and r.distance_pct is not None:
            if Decimal(r.price) * Decimal(r.size) >= n and Decimal(str(r.distance_pct)) <= d:
                return True
    return False



# -- through the real CLI ---------------------------------------------------------------------

BM = [sys.executable, "-m", "bybitmon"]
CLI_RULE = "density_notional>=2e4 & density_dist<=0.01"


def test_replay_json_alert_lines_name_the_density_of_that_moments_snapshot(tmp_path):
    """``replay --simulate --json --alert RULE --alerts-out F``: each firing alert line names an
    active density of the snapshot printed at the same moment, its distance is the one the last
    price gives, and the alerts file holds exactly the alert lines of stdout."""
    out = tmp_path / "alerts.ndjson"
    p = subprocess.run([*BM, "replay", "--simulate", "--duration", "60s", "--speed", "max", "--json",
                        "--interval", "500ms", "--alert", CLI_RULE, "--alerts-out", str(out)],
                       capture_output=True, timeout=120 * TIMEOUT_FACTOR)
    assert p.returncode == 0, p.stderr
    lines = [orjson.loads(x) for x in p.stdout.splitlines()]
    alerts = [x for x in lines if x["type"] == "alert"]
    assert [orjson.loads(x) for x in out.read_bytes().splitlines()] == alerts
    snaps = {(x["ts"], x["symbol"]): x for x in lines if x["type"] == "snapshot"}
    states = [a["state"] for a in alerts]
    assert states.count("firing") >= 2 and "cleared" in states
    for a in alerts:
        assert a["rule"] == CLI_RULE
        if a["state"] == "cleared":
            assert a["density"] is None
            continue
        d = a["density"]
        snap = snaps[(a["ts"], a["symbol"])]
        views = [v for v in snap["densities"] if v["state"] == "active"
                 and (v["side"], v["price"], v["size"]) == (d["side"], d["price"], d["size"])]
        assert len(views) == 1, (a, snap["densities"])
        last = Decimal(str(snap["trades"]["last_price"]))
        price = Decimal(str(d["price"]))
        assert d["distance_pct"] == pytest.approx(float(abs(price - last) / last * 100), rel=1e-9)
        assert d["distance_pct"] <= 0.01 and d["notional"] >= 2e4
        assert d["notional"] == pytest.approx(float(price * Decimal(str(d["size"]))), rel=1e-12)


def test_replay_without_density_large_enough_gives_no_alert():
    p = subprocess.run([*BM, "replay", "--simulate", "--duration", "20s", "--speed", "max", "--json",
                        "--alert", "density_notional>=1e9 & density_dist<=50"],
                       capture_output=True, timeout=120 * TIMEOUT_FACTOR)
    assert p.returncode == 0, p.stderr
    assert b'"alert"' not in p.stdout and b'"snapshot"' in p.stdout


@pytest.mark.parametrize("rule,words", [
    ("density_notional>=1e6 &", "empty condition"),
    ("& density_dist<=0.5", "empty condition"),
    ("density_notional>=1e6 && density_dist<=0.5", "empty condition"),
    ("density_notion>=1e6 & density_dist<=0.5", "unknown field 'density_notion'"),
    ("density_dist<=abc", "bad number 'abc'"),
    ("density_dist=<0.5", "bad operator '=<'"),
    ("density_notional>=1e6 & density_dist", "no operator"),
    ("BTC USDT: density_dist<=0.5", "bad symbol"),
])
def test_bad_density_rule_is_one_line_and_exit_2(rule, words):
    p = subprocess.run([*BM, "replay", "--simulate", "--duration", "5s", "--speed", "max", "--json",
                        "--alert", rule], capture_output=True, timeout=60 * TIMEOUT_FACTOR)
    assert p.returncode == 2
    assert p.stdout == b""
    err = p.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err
    assert "Traceback" not in err


def test_watch_alert_line_names_the_rule_and_the_density():
    """The line above watch's table (fed from ``engine.firing`` as watch does) names the rule and
    the density: side, price, size, notional and distance."""
    import io

    from rich.console import Console

    from bybitmon.app.board import Board
    from bybitmon.app.screen import WatchScreen
    from bybitmon.app.watch import SORT_KEYS
    from bybitmon.core.screener import SCREEN_SORTS
    from bybitmon.ui.screen import ScreenState

    syms = ["BTCUSDT", "ETHUSDT"]
    sim = MarketSimulator(syms, seed=1)
    m = Monitor("linear")
    engine = AlertEngine([CLI_RULE])
    every = Every(500)
    fired = None
    for ts, raw in sim.frames(60_000):
        m.feed(ts * 1_000_000, raw)
        if every.due(m.now_ms):
            fired = next((e for e in engine.evaluate_monitor(m) if e["state"] == "firing"), None)
            if fired:
                break
    assert fired is not None
    firing = {s: rules for s in syms if (rules := engine.firing(s))}
    scr = WatchScreen(Board.of(m, syms), ScreenState(SORT_KEYS, "tps", tuple(SCREEN_SORTS)),
                      window_ms=60_000, bps=50.0, interactive=False, clock=lambda: 0.0)
    c = Console(width=200, height=30, file=io.StringIO(), color_system=None)
    c.print(scr.body(width=200, height=30, statuses={}, sparks={}, firing=firing))
    first = c.file.getvalue().splitlines()[0]
    d = fired["density"]
    assert first.startswith(f"alerts firing: {fired['symbol']} {CLI_RULE} [{d['side']} {d['price']!r} x ")
    assert f" at {d['distance_pct']:.2f}%]" in first
