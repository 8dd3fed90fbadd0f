from __future__ import annotations

import orjson
import pytest

from bybitmon.core.alerts import AlertEngine, AlertRule, parse_alert
from bybitmon.errors import UsageError
from bybitmon.core.monitor import Monitor
from bybitmon.core.snapshot import FIELDS, Snapshot

from paths import fixture_lines

REAL = "cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson"  # optional: BYBITMON_REAL_CAPTURES
SIM = "sim_linear_BTCUSDT_ETHUSDT.ndjson"  # `serve --simulate` capture in tests/data


def snap(symbol: str = "BTCUSDT", ts: int = 1000, *, trades: dict | None = None, book: dict | None = None,
         health: dict | None = None, densities: list | None = None) -> Snapshot:
    """A version-1 snapshot with every number unknown or zero unless given."""
    t = {"window_s": 60.0, "count": 0, "tps": 0.0, "tpm": 0.0, "buy_volume": 0.0, "sell_volume": 0.0,
         "volume_delta": 0.0, "buy_sell_ratio": None, "last_price": None}
    b = {"ready": False, "best_bid": None, "best_ask": None, "mid": None, "spread_bps": None, "bps": 50.0,
         "bid_depth": None, "ask_depth": None, "bid_notional": None, "ask_notional": None, "imbalance": None,
         "update_id": 0, "seq": None}
    h = {"frames": 0, "bad_frames": 0, "stale": 0, "gaps": 0, "crossed": 0, "resets": 0, "dropped": 0}
    return Snapshot.from_dict({"type": "snapshot", "v": 1, "ts": ts, "symbol": symbol, "category": "linear",
                               "trades": {**t, **(trades or {})}, "book": {**b, **(book or {})},
                               "densities": densities or [], "health": {**h, **(health or {})}})


def fire(ts, rule, field, value, threshold, symbol="BTCUSDT", state="firing") -> dict:
    return {"type": "alert", "v": 1, "ts": ts, "symbol": symbol, "rule": rule, "field": field,
            "value": value, "threshold": threshold, "state": state}


def run_values(engine: AlertEngine, section: str, key: str, values, symbol: str = "BTCUSDT") -> list[dict]:
    events = []
    for i, v in enumerate(values):
        events += engine.evaluate(snap(symbol, 1000 * (i + 1), **{section: {key: v}}))
    return events


# -- parsing ---------------------------------------------------------------------------------

SHORTCUT_PATHS = [
    ("tps", "trades.tps"), ("tpm", "trades.tpm"), ("count", "trades.count"),
    ("buy_volume", "trades.buy_volume"), ("sell_volume", "trades.sell_volume"),
    ("volume_delta", "trades.volume_delta"), ("buy_sell_ratio", "trades.buy_sell_ratio"),
    ("last_price", "trades.last_price"),
    ("spread_bps", "book.spread_bps"), ("mid", "book.mid"), ("imbalance", "book.imbalance"),
    ("bid_depth", "book.bid_depth"), ("ask_depth", "book.ask_depth"), ("bid_notional", "book.bid_notional"),
    ("ask_notional", "book.ask_notional"), ("best_bid", "book.best_bid"), ("best_ask", "book.best_ask"),
    ("gaps", "health.gaps"), ("stale", "health.stale"), ("crossed", "health.crossed"),
    ("bad_frames", "health.bad_frames"),
]


def test_alert_fields_are_the_snapshot_declaration():
    """The names a rule may use are the typed snapshot's fields, and every shortcut is one."""
    from bybitmon.core import alerts
    from bybitmon.core.snapshot import BookView, Health, TradesView, field_names

    assert alerts.FIELDS is FIELDS
    assert FIELDS["trades"] == field_names(TradesView) and FIELDS["book"] == field_names(BookView)
    assert FIELDS["health"] == field_names(Health)
    for path in alerts.SHORTCUTS.values():
        section, key = path.split(".")
        assert key in FIELDS[section], path


def distinct_snapshot() -> Snapshot:
    """A snapshot where every numeric field has its own value, so a wrong path shows."""
    names = [path for _, path in SHORTCUT_PATHS] + ["book.bps", "book.update_id", "book.seq", "health.frames",
                                                   "health.resets", "health.dropped", "trades.window_s"]
    parts: dict[str, dict] = {"trades": {}, "book": {"ready": True}, "health": {}}
    for i, path in enumerate(names):
        section, key = path.split(".")
        parts[section][key] = 100 + i
    return snap(**parts)


@pytest.mark.parametrize("shortcut,path", SHORTCUT_PATHS)
def test_shortcut_reads_its_snapshot_field(shortcut, path):
    """Every shortcut names its field under trades/book/health, and reads that field's value."""
    rule = parse_alert(f"{shortcut}>1")
    assert rule.field == path
    s = distinct_snapshot()
    section, key = path.split(".")
    assert rule.value(s) == s[section][key]
    assert parse_alert(f"{path}>1").field == path


@pytest.mark.parametrize("path", ["trades.window_s", "book.bps", "book.update_id", "book.seq",
                                  "health.frames", "health.resets", "health.dropped"])
def test_full_path_without_shortcut_parses(path):
    s = distinct_snapshot()
    section, key = path.split(".")
    assert parse_alert(f"{path} > 1").value(s) == s[section][key]


def test_book_ready_reads_as_one_or_zero():
    rule = parse_alert("book.ready==0")
    assert rule.value(snap(book={"ready": False})) == 0
    assert rule.value(snap(book={"ready": True})) == 1


def test_rule_parts_are_parsed():
    rule = parse_alert("  btcusdt : imbalance <= -0.6 ")
    assert rule == AlertRule("btcusdt : imbalance <= -0.6", "BTCUSDT", "book.imbalance", "<=", -0.6)


@pytest.mark.parametrize("text,op,threshold", [
    ("tps>1e3", ">", 1000.0), ("tps>=50", ">=", 50.0), ("tps<.5", "<", 0.5), ("tps<=+2", "<=", 2.0),
    ("gaps==0", "==", 0.0), ("gaps != 0", "!=", 0.0), ("volume_delta<-1.5E-2", "<", -0.015),
])
def test_operators_and_numbers(text, op, threshold):
    rule = parse_alert(text)
    assert (rule.op, rule.threshold) == (op, threshold)
    assert rule.symbol is None


DENSITIES = [
    {"side": "bid", "price": 100.0, "size": 9.0, "notional": 900.0, "x_median": 7.0, "since": 1,
     "state": "active", "ended": None},
    {"side": "ask", "price": 101.0, "size": 5.0, "notional": 505.0, "x_median": 12.0, "since": 2,
     "state": "active", "ended": None},
    {"side": "ask", "price": 102.0, "size": 50.0, "notional": 5100.0, "x_median": 99.0, "since": 3,
     "state": "eaten", "ended": 4},
    {"side": "bid", "price": 99.0, "size": 40.0, "notional": 3960.0, "x_median": 80.0, "since": 3,
     "state": "ending", "ended": 5},
]


@pytest.mark.parametrize("key,expected", [("x_median", 12.0), ("notional", 900.0), ("size", 9.0)])
def test_density_field_is_max_over_active_densities(key, expected):
    """Ended and ending densities do not count, however large."""
    rule = parse_alert(f"density.{key}>1")
    assert rule.field == f"density.{key}"
    assert rule.value(snap(densities=DENSITIES)) == expected


def test_density_field_without_active_density_has_no_value():
    rule = parse_alert("density.x_median>10")
    assert rule.value(snap(densities=[])) is None
    assert rule.value(snap(densities=DENSITIES[2:])) is None


@pytest.mark.parametrize("text,words", [
    ("tsp>5", ["unknown field 'tsp'", "tps", "spread_bps", "density.x_median", "bad_frames"]),
    ("trades.spread_bps>1", ["unknown field 'trades.spread_bps'"]),
    ("density.price>1", ["unknown field 'density.price'"]),
    ("book.>1", ["unknown field 'book.'"]),
    ("tps=5", ["bad operator '='"]),
    ("tps=>5", ["bad operator '=>'"]),
    ("tps>>5", ["bad operator '>>'"]),
    ("tps<>5", ["bad operator '<>'"]),
    ("tps!5", ["bad operator '!'"]),
    ("tps 5", ["no operator"]),
    ("tps", ["no operator"]),
    ("tps>abc", ["bad number 'abc'"]),
    ("tps>", ["bad number ''"]),
    ("tps>1e", ["bad number '1e'"]),
    ("tps>nan", ["bad number 'nan'"]),
    ("tps>inf", ["bad number 'inf'"]),
    ("tps>1e400", ["bad number '1e400'"]),
    ("tps>5 6", ["bad number '5 6'"]),
    ("tps>1_000", ["bad number '1_000'"]),
    ("tps>5\nspread_bps>1", ["bad number '5\\nspread_bps>1'"]),
    ("5<tps", ["no field"]),
    (":tps>5", ["bad symbol ''"]),
    ("BTC USDT:tps>5", ["bad symbol 'BTC USDT'"]),
    ("", ["empty alert"]),
    ("   ", ["empty alert"]),
])
def test_bad_expression_raises_one_line_usage_error(text, words):
    with pytest.raises(UsageError) as info:
        parse_alert(text)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    for word in words:
        assert word in message


def test_engine_parses_rule_texts_up_front():
    with pytest.raises(UsageError, match="unknown field 'nope'"):
        AlertEngine(["tps>1", "nope>1"])
    assert AlertEngine(["tps>1"]).rules == (parse_alert("tps>1"),)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_engine_rejects_bad_hysteresis(bad):
    with pytest.raises(UsageError, match="bad hysteresis"):
        AlertEngine(["tps>1"], hysteresis=bad)


# -- firing and hysteresis -------------------------------------------------------------------

def test_greater_than_fires_once_and_rearms_below_margin():
    """tps>10 with a 10 % margin: fires at 10.5, stays quiet until below 9, fires again at 11."""
    engine = AlertEngine(["tps>10"])
    events = run_values(engine, "trades", "tps", [9.0, 10.5, 9.5, 10.2, 9.1, 8.9, 9.5, 11.0, 12.0])
    assert events == [
        fire(2000, "tps>10", "trades.tps", 10.5, 10.0),
        fire(6000, "tps>10", "trades.tps", 8.9, 10.0, state="cleared"),
        fire(8000, "tps>10", "trades.tps", 11.0, 10.0),
    ]


def test_value_hovering_at_threshold_fires_once():
    engine = AlertEngine(["tpm>20"])
    values = [19.99, 20.01] * 50 + [20.0, 19.5, 20.5, 18.01]
    events = run_values(engine, "trades", "tpm", values)
    assert events == [fire(2000, "tpm>20", "trades.tpm", 20.01, 20.0)]
    assert engine.firing("BTCUSDT") == {"tpm>20"}


def test_greater_or_equal_fires_at_threshold():
    engine = AlertEngine(["count>=5"])
    events = run_values(engine, "trades", "count", [4, 5, 5, 4.6, 4.4, 5])
    assert events == [
        fire(2000, "count>=5", "trades.count", 5, 5.0),
        fire(5000, "count>=5", "trades.count", 4.4, 5.0, state="cleared"),
        fire(6000, "count>=5", "trades.count", 5, 5.0),
    ]


def test_less_than_rearms_above_threshold_plus_margin():
    """imbalance<-0.6: margin 0.06, so it re-arms only above -0.54."""
    engine = AlertEngine(["imbalance<-0.6"])
    events = run_values(engine, "book", "imbalance", [-0.5, -0.61, -0.59, -0.55, -0.7, -0.53, -0.65])
    assert events == [
        fire(2000, "imbalance<-0.6", "book.imbalance", -0.61, -0.6),
        fire(6000, "imbalance<-0.6", "book.imbalance", -0.53, -0.6, state="cleared"),
        fire(7000, "imbalance<-0.6", "book.imbalance", -0.65, -0.6),
    ]


def test_less_or_equal_fires_at_threshold():
    engine = AlertEngine(["spread_bps<=1"])
    events = run_values(engine, "book", "spread_bps", [1.0, 1.05, 1.11])
    assert events == [
        fire(1000, "spread_bps<=1", "book.spread_bps", 1.0, 1.0),
        fire(3000, "spread_bps<=1", "book.spread_bps", 1.11, 1.0, state="cleared"),
    ]


def test_not_equal_rearms_when_condition_is_false():
    engine = AlertEngine(["gaps!=0"])
    events = run_values(engine, "health", "gaps", [0, 1, 2, 0, 0, 3])
    assert events == [
        fire(2000, "gaps!=0", "health.gaps", 1, 0.0),
        fire(4000, "gaps!=0", "health.gaps", 0, 0.0, state="cleared"),
        fire(6000, "gaps!=0", "health.gaps", 3, 0.0),
    ]


def test_equal_rearms_when_condition_is_false():
    engine = AlertEngine(["crossed==1"])
    events = run_values(engine, "health", "crossed", [0, 1, 1, 2, 1])
    assert events == [
        fire(2000, "crossed==1", "health.crossed", 1, 1.0),
        fire(4000, "crossed==1", "health.crossed", 2, 1.0, state="cleared"),
        fire(5000, "crossed==1", "health.crossed", 1, 1.0),
    ]


def test_zero_threshold_uses_absolute_margin():
    """|0| x 10 % is 0, so the 1e-9 minimum margin decides: exactly 0 does not re-arm, -1e-6 does."""
    engine = AlertEngine(["volume_delta>0"])
    events = run_values(engine, "trades", "volume_delta", [0.0, 1.0, 0.0, -5e-10, -1e-6, 1e-6])
    assert events == [
        fire(2000, "volume_delta>0", "trades.volume_delta", 1.0, 0.0),
        fire(5000, "volume_delta>0", "trades.volume_delta", -1e-6, 0.0, state="cleared"),
        fire(6000, "volume_delta>0", "trades.volume_delta", 1e-6, 0.0),
    ]


def test_hysteresis_is_configurable():
    engine = AlertEngine(["tps>10"], hysteresis=0.5)
    events = run_values(engine, "trades", "tps", [11.0, 5.5, 4.9, 11.0])
    assert [e["state"] for e in events] == ["firing", "cleared", "firing"]
    assert [e["ts"] for e in events] == [1000, 3000, 4000]


def test_none_value_never_fires():
    """No book (spread null) fires nothing, whatever the rule."""
    engine = AlertEngine(["spread_bps>2", "spread_bps<2", "mid!=0", "density.size>0"])
    assert run_values(engine, "book", "spread_bps", [None, None, None]) == []
    assert engine.firing("BTCUSDT") == set()


def test_none_value_does_not_rearm():
    """A book that goes not-ready while firing neither clears nor re-fires the alert."""
    engine = AlertEngine(["spread_bps>2"])
    events = run_values(engine, "book", "spread_bps", [3.0, None, None, 2.5, None, 1.0, None, 3.0])
    assert events == [
        fire(1000, "spread_bps>2", "book.spread_bps", 3.0, 2.0),
        fire(6000, "spread_bps>2", "book.spread_bps", 1.0, 2.0, state="cleared"),
        fire(8000, "spread_bps>2", "book.spread_bps", 3.0, 2.0),
    ]


def test_density_rule_fires_on_active_density_only():
    engine = AlertEngine(["density.x_median>50"])
    assert engine.evaluate(snap(ts=1, densities=DENSITIES)) == []   # the 99x and 80x ones are not active
    big = [{**DENSITIES[0], "x_median": 60.0}]
    assert engine.evaluate(snap(ts=2, densities=big)) == [fire(2, "density.x_median>50", "density.x_median",
                                                                60.0, 50.0)]
    assert engine.evaluate(snap(ts=3, densities=[])) == []          # no active density: no value
    assert engine.firing("BTCUSDT") == {"density.x_median>50"}


def test_symbol_filter_ignores_other_symbols():
    engine = AlertEngine(["ETHUSDT:tps>1"])
    assert engine.evaluate(snap("BTCUSDT", 1, trades={"tps": 5.0})) == []
    assert engine.evaluate(snap("ETHUSDT", 2, trades={"tps": 5.0})) == [
        fire(2, "ETHUSDT:tps>1", "trades.tps", 5.0, 1.0, symbol="ETHUSDT")]
    assert engine.firing("BTCUSDT") == set()
    assert engine.firing("ETHUSDT") == {"ETHUSDT:tps>1"}


def test_state_is_per_rule_and_symbol():
    engine = AlertEngine(["tps>1", "tps>3"])
    out = engine.evaluate(snap("BTCUSDT", 1, trades={"tps": 2.0}))
    out += engine.evaluate(snap("ETHUSDT", 2, trades={"tps": 5.0}))
    out += engine.evaluate(snap("BTCUSDT", 3, trades={"tps": 4.0}))
    out += engine.evaluate(snap("ETHUSDT", 4, trades={"tps": 0.5}))
    assert out == [
        fire(1, "tps>1", "trades.tps", 2.0, 1.0),
        fire(2, "tps>1", "trades.tps", 5.0, 1.0, symbol="ETHUSDT"),
        fire(2, "tps>3", "trades.tps", 5.0, 3.0, symbol="ETHUSDT"),
        fire(3, "tps>3", "trades.tps", 4.0, 3.0),
        fire(4, "tps>1", "trades.tps", 0.5, 1.0, symbol="ETHUSDT", state="cleared"),
        fire(4, "tps>3", "trades.tps", 0.5, 3.0, symbol="ETHUSDT", state="cleared"),
    ]
    assert engine.firing("BTCUSDT") == {"tps>1", "tps>3"}
    assert engine.firing("ETHUSDT") == set()
    assert engine.firing("SOLUSDT") == set()


def test_events_are_json_serialisable():
    engine = AlertEngine(["tps>1"])
    (event,) = engine.evaluate(snap(trades={"tps": 2.0}))
    assert orjson.loads(orjson.dumps(event)) == event


# -- over a replay of the real capture --------------------------------------------------------

def replay_alerts(rules, window_ms: int = 60_000, every_ms: int = 1000,
                  name: str = REAL) -> tuple[list[dict], list[tuple]]:
    """Drive a Monitor over a capture, evaluating all symbols at the first frame whose
    pipeline clock crosses each ``every_ms`` boundary (as ``replay --json`` emits snapshots).

    Returns the events and the evaluation points (frame index, now, symbols)."""
    monitor = Monitor("linear", window_ms=window_ms)
    engine = AlertEngine(rules)
    events: list[dict] = []
    points: list[tuple] = []
    next_ms = None
    for i, raw in enumerate(fixture_lines(name)):
        monitor.feed(0, raw)
        now = monitor.now_ms
        if now is None:
            continue
        if next_ms is None:
            next_ms = (now // every_ms + 1) * every_ms
        elif now >= next_ms:
            points.append((i, now, tuple(monitor.symbols)))
            for sym in monitor.symbols:
                events += engine.evaluate(monitor.snapshot(sym))
            next_ms = (now // every_ms + 1) * every_ms
    return events, points


def brute_force_tpm(window_ms: int, points, name: str = REAL) -> list[tuple[int, str, float]]:
    """(now, symbol, tpm) at each evaluation point, from the raw capture: trades whose fill time
    is in (now - W, now] among the frames received so far, a repeated id counted once."""
    lines = fixture_lines(name)
    out = []
    seen: dict[tuple[str, str], int] = {}
    done = -1
    for i, now, symbols in points:
        for raw in lines[done + 1:i + 1]:
            msg = orjson.loads(raw)
            if str(msg.get("topic", "")).startswith("publicTrade."):
                for t in msg["data"]:
                    seen.setdefault((t["s"], t["i"]), t["T"])
        done = i
        for sym in symbols:
            count = sum(1 for (s, _), fill in seen.items() if s == sym and now - window_ms < fill <= now)
            out.append((now, sym, count * 60_000 / window_ms))
    return out


def expected_events(rule: str, threshold: float, samples, hysteresis: float = 0.1) -> list[dict]:
    firing: set[str] = set()
    margin = hysteresis * threshold
    events = []
    for now, sym, tpm in samples:
        if sym not in firing and tpm > threshold:
            firing.add(sym)
            events.append(fire(now, rule, "trades.tpm", tpm, threshold, symbol=sym))
        elif sym in firing and tpm < threshold - margin:
            firing.discard(sym)
            events.append(fire(now, rule, "trades.tpm", tpm, threshold, symbol=sym, state="cleared"))
    return events


RULES = ["tpm>20", "BTCUSDT:spread_bps>0.02", "imbalance<-0.3", "density.x_median>20", "gaps!=0", "count>=10"]


@pytest.mark.parametrize("name", [REAL, SIM])
def test_replay_gives_the_same_alerts_every_time(name):
    first, _ = replay_alerts(RULES, name=name)
    second, _ = replay_alerts(RULES, name=name)
    assert first == second
    assert {e["rule"] for e in first} >= {"tpm>20", "count>=10"}


@pytest.mark.parametrize("name", [REAL, SIM])
def test_replay_tpm_alert_fires_when_brute_force_tpm_first_exceeds_20(name):
    events, points = replay_alerts(["tpm>20"], name=name)
    samples = brute_force_tpm(60_000, points, name)
    first_btc = next(now for now, sym, tpm in samples if sym == "BTCUSDT" and tpm > 20)
    btc = [e for e in events if e["symbol"] == "BTCUSDT"]
    assert btc[0]["state"] == "firing" and btc[0]["ts"] == first_btc
    assert events == expected_events("tpm>20", 20.0, samples)


# thresholds each capture crosses both ways (the simulated BTCUSDT rises to 366 tpm, then falls to 300)
@pytest.mark.parametrize("name,threshold", [(REAL, 30), (SIM, 340)])
def test_replay_tpm_alerts_fire_and_clear_as_brute_force_says_on_a_short_window(name, threshold):
    """A 10 s window lets the count fall again within the capture, so alerts clear too."""
    events, points = replay_alerts([f"tpm>{threshold}"], window_ms=10_000, name=name)
    samples = brute_force_tpm(10_000, points, name)
    assert events == expected_events(f"tpm>{threshold}", float(threshold), samples)
    assert "cleared" in {e["state"] for e in events}


# -- rules with several conditions, density rules ---------------------------------------------

from bybitmon.core.alerts import DENSITY_FIELDS, Condition, density_label  # noqa: E402
from bybitmon.core.screener import DensityRow  # noqa: E402


def row(side="bid", price=100.0, size=50.0, distance=0.4, state="active", since=1, eta=10.0) -> DensityRow:
    return DensityRow("BTCUSDT", side, price, size, price * size, 12.0, since, 5000, 100.2, distance,
                      size, 5.0, 10.0, 1.0, eta, state, None)


def test_density_rule_parts_are_parsed():
    rule = parse_alert(" btcusdt: density_notional >= 1e6 & density_dist<=0.5 ")
    assert rule == AlertRule("btcusdt: density_notional >= 1e6 & density_dist<=0.5", "BTCUSDT",
                             "density_notional", ">=", 1e6, (Condition("density_dist", "<=", 0.5),))
    assert rule.per_density and [c.per_density for c in rule.conditions] == [True, True]
    assert not parse_alert("tps>5 & spread_bps<2").per_density


@pytest.mark.parametrize("name", list(DENSITY_FIELDS))
def test_every_density_field_parses_and_reads_its_row_column(name):
    r = row()
    expected = {"density_notional": r.notional, "density_dist": r.distance_pct, "density_size": r.size,
                "density_x": r.x_median, "density_price": r.price, "density_lifetime": r.lifetime_ms / 1000,
                "density_eaten": r.eaten_pct, "density_eta": r.eta_s}[name]
    engine = AlertEngine([f"{name}>=0"], hysteresis=0)
    (event,) = engine.evaluate(snap(ts=1), [r])
    assert event["field"] == name and event["value"] == expected
    assert parse_alert(f"{name}>1").value(snap()) is None  # a snapshot carries no per-density value


@pytest.mark.parametrize("text,words", [
    ("tps>1 &", ["empty condition"]),
    ("&tps>1", ["empty condition"]),
    ("tps>1 & & spread_bps<1", ["empty condition"]),
    ("density_dst<1", ["unknown field 'density_dst'", "density_notional", "density_dist"]),
    ("tps>1 & density_dist<<1", ["bad operator '<<'"]),
    ("&".join(["tps>1"] * 17), ["too many conditions"]),
])
def test_bad_compound_rule_raises_one_line_usage_error(text, words):
    with pytest.raises(UsageError) as info:
        parse_alert(text)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_density_rule_fires_when_one_density_meets_all_conditions():
    """One density large but far and another near but small: no alert; one both: alert."""
    engine = AlertEngine(["density_notional>=5000 & density_dist<=0.5"], hysteresis=0)
    far_big, near_small = row(price=99.0, size=100.0, distance=1.2), row(price=100.1, size=1.0, distance=0.1)
    assert engine.evaluate(snap(ts=1), [far_big, near_small]) == []
    both = row(side="ask", price=100.3, size=60.0, distance=0.3)
    (event,) = engine.evaluate(snap(ts=2), [far_big, near_small, both])
    assert event["state"] == "firing" and event["density"]["price"] == 100.3 and event["density"]["side"] == "ask"
    assert event["conditions"] == [
        {"field": "density_notional", "op": ">=", "threshold": 5000.0, "value": both.notional},
        {"field": "density_dist", "op": "<=", "threshold": 0.5, "value": 0.3}]
    (event,) = engine.evaluate(snap(ts=3), [far_big, near_small])
    assert event["state"] == "cleared" and event["density"] is None and event["value"] is None


def test_density_rule_names_the_first_qualifying_row_nearest_first():
    engine = AlertEngine(["density_notional>=1000"])
    rows = [row(price=100.1, size=20.0, distance=0.1), row(side="ask", price=100.5, size=30.0, distance=0.3)]
    (event,) = engine.evaluate(snap(ts=1), rows)
    assert event["density"]["price"] == 100.1


def test_density_rule_ignores_ending_densities_and_unknown_values():
    engine = AlertEngine(["density_notional>=1000 & density_dist<=1", "density_eta<100"], hysteresis=0)
    rows = [row(state="ending"), row(price=101.0, distance=None, eta=None), row(price=102.0, eta=None, distance=5.0)]
    assert engine.evaluate(snap(ts=1), rows) == []


def test_density_rule_without_rows_changes_nothing():
    """Called with a snapshot only (no screen rows), a density rule neither fires nor clears."""
    engine = AlertEngine(["density_notional>=1000"])
    assert engine.evaluate(snap(ts=1)) == []
    assert [e["state"] for e in engine.evaluate(snap(ts=2), [row()])] == ["firing"]
    assert engine.evaluate(snap(ts=3)) == []
    assert engine.firing("BTCUSDT") != set()
    assert [e["state"] for e in engine.evaluate(snap(ts=4), [])] == ["cleared"]


def test_density_rule_stays_firing_within_the_margins():
    """density_dist<=0.5 with 10 %: a density drifting to 0.54 % keeps it firing, 0.56 % clears."""
    engine = AlertEngine(["density_notional>=1000 & density_dist<=0.5"])
    assert [e["state"] for e in engine.evaluate(snap(ts=1), [row(distance=0.45)])] == ["firing"]
    assert engine.evaluate(snap(ts=2), [row(distance=0.54)]) == []
    assert [e["state"] for e in engine.evaluate(snap(ts=3), [row(distance=0.56)])] == ["cleared"]


def test_mixed_rule_needs_the_snapshot_conditions_too():
    engine = AlertEngine(["tps>5 & density_notional>=1000"], hysteresis=0)
    assert engine.evaluate(snap(ts=1, trades={"tps": 1.0}), [row()]) == []
    (event,) = engine.evaluate(snap(ts=2, trades={"tps": 6.0}), [row()])
    assert (event["field"], event["value"]) == ("trades.tps", 6.0)
    assert [c["value"] for c in event["conditions"]] == [6.0, row().notional]
    assert event["density"]["price"] == 100.0


def test_compound_snapshot_rule_event_lists_conditions_and_no_density():
    engine = AlertEngine(["tps>5 & spread_bps<2"])
    assert engine.evaluate(snap(ts=1, trades={"tps": 6.0}, book={"spread_bps": 3.0})) == []
    (event,) = engine.evaluate(snap(ts=2, trades={"tps": 6.0}, book={"spread_bps": 1.0}))
    assert event["conditions"] == [{"field": "trades.tps", "op": ">", "threshold": 5.0, "value": 6.0},
                                   {"field": "book.spread_bps", "op": "<", "threshold": 2.0, "value": 1.0}]
    assert "density" not in event
    assert engine.evaluate(snap(ts=3, trades={"tps": 6.0}, book={"spread_bps": None})) == []  # unknown: nothing
    (event,) = engine.evaluate(snap(ts=4, trades={"tps": 6.0}, book={"spread_bps": 2.5}))
    assert event["state"] == "cleared"


def test_one_condition_rules_keep_their_event_shape():
    (event,) = AlertEngine(["tps>1"]).evaluate(snap(trades={"tps": 2.0}))
    assert set(event) == {"type", "v", "ts", "symbol", "rule", "field", "value", "threshold", "state"}


def test_firing_names_the_rule_and_its_density_for_the_alert_line():
    engine = AlertEngine(["density_notional>=1000", "tps>1"])
    engine.evaluate(snap(ts=1, trades={"tps": 2.0}), [row(side="ask", price=100.25, size=15.5, distance=0.25)])
    assert engine.firing("BTCUSDT") == {"tps>1", "density_notional>=1000 [ask 100.25 x 15.5 = 1.55k at 0.25%]"}
    assert density_label(row(price=64012.55, size=20.0, distance=0.031)) == "bid 64012.55 x 20 = 1.28M at 0.03%"
