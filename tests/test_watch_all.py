"""`bybitmon watch --all` end to end against `serve` on loopback: every discovered symbol followed
with a ready book (one and two categories), REST failures as one line and a non-zero exit, a
listing and a delisting picked up by the refresh, and the client's batching at 500+ symbols."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import orjson
import pytest

from bybitmon.core.limits import ARGS_CHARS_PER_CONN
from bybitmon.core.monitor import Monitor
from bybitmon.testserver.app import BybitServer, SimulatedSource
from bybitmon.transport.feed import LiveFeed

from helpers import eventually, run
from paths import TIMEOUT_FACTOR

BM = [sys.executable, "-m", "bybitmon"]
SIXTY = [f"C{i:02d}USDT" for i in range(60)]


def _serve(symbols: list[str]) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([*BM, "serve", "--simulate", "--port", "0", "--symbols", ",".join(symbols)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.search(r"(ws://127\.0\.0\.1:\d+)", p.stdout.readline())
    assert m, p.stderr.read() if p.poll() is not None else "no URL"
    return p, m.group(1)


def _stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def _last_snapshots(stdout: str) -> dict[tuple[str, str], dict]:
    last: dict[tuple[str, str], dict] = {}
    for line in stdout.splitlines():
        msg = orjson.loads(line)
        if msg["type"] == "snapshot":
            last[(msg["category"], msg["symbol"])] = msg
    return last


def _watch_all(url: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BYBITMON_URL"}
    return subprocess.run([*BM, "watch", "--all", "--url", url, *args], capture_output=True, text=True,
                          timeout=timeout * TIMEOUT_FACTOR, env=env)


@pytest.fixture(scope="module")
def served_sixty():
    p, url = _serve(SIXTY)
    yield url
    _stop(p)


def test_all_emits_every_served_symbol_with_a_ready_book(served_sixty):
    p = _watch_all(served_sixty, "--json", "--duration", "15s")
    assert p.returncode == 0, p.stderr
    last = _last_snapshots(p.stdout)
    assert set(last) == {("linear", s) for s in SIXTY}
    assert all(s["book"]["ready"] and s["book"]["mid"] is not None for s in last.values())
    assert all(s["health"]["frames"] > 0 for s in last.values())


def test_all_on_two_categories_emits_both_with_ready_books(served_sixty):
    p = _watch_all(served_sixty, "--json", "--duration", "15s", "--category", "linear,spot")
    assert p.returncode == 0, p.stderr
    last = _last_snapshots(p.stdout)
    assert set(last) == {(c, s) for c in ("linear", "spot") for s in SIXTY}
    assert all(s["book"]["ready"] for s in last.values())
    # Different simulators: the same name is a different market on each category.
    assert last[("linear", "C00USDT")]["book"]["mid"] != last[("spot", "C00USDT")]["book"]["mid"]
    # Each interval, each category's density screen as one line, as `watch --json` writes it.
    lines = [orjson.loads(line) for line in p.stdout.splitlines()]
    dens = [m for m in lines if m["type"] == "densities"]
    assert {d["category"] for d in dens} == {"linear", "spot"} and len(dens) >= 20
    rows = [r for d in dens for r in d["rows"]]
    assert rows and {r["symbol"] for r in rows} <= set(SIXTY)
    for r in rows:
        assert r["notional"] == pytest.approx(r["price"] * r["size"], rel=1e-12)
        if r["distance_pct"] is not None:
            assert r["distance_pct"] == pytest.approx(abs(r["price"] - r["last_price"]) / r["last_price"] * 100,
                                                      rel=1e-12)
        assert r["lifetime_ms"] >= 2000  # the screen's default minimum lifetime


def test_all_table_draws_top_rows_labelled_by_category(served_sixty):
    env = {**{k: v for k, v in os.environ.items() if k != "BYBITMON_URL"}, "COLUMNS": "80", "LINES": "60"}
    p = subprocess.run([*BM, "watch", "--all", "--url", served_sixty, "--category", "linear,spot", "--top", "7",
                        "--duration", "3s"], capture_output=True, text=True, timeout=60 * TIMEOUT_FACTOR, env=env)
    assert p.returncode == 0, p.stderr
    final = p.stdout[p.stdout.rindex("┏"):]
    rows = [l for l in final.splitlines() if l.startswith("│")]
    assert len(rows) == 7
    assert all(re.match(r"│C\d\dUSDT/(lin|spot) ", r) for r in rows)
    assert "120 symbols" in p.stdout and "113 more symbols" in final
    assert max(len(l) for l in final.splitlines()) <= 80


def test_top_limits_nothing_with_json(served_sixty):
    p = _watch_all(served_sixty, "--json", "--duration", "3s", "--top", "3")
    assert p.returncode == 0, p.stderr
    assert len(_last_snapshots(p.stdout)) == 60


def test_quote_filter_that_matches_nothing_is_one_line(served_sixty):
    p = _watch_all(served_sixty, "--json", "--duration", "3s", "--quote", "EUR")
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no linear instrument is trading with quote EUR")


# -- REST failures, with the server in this process --------------------------------------------


async def _cli(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BYBITMON_URL"}
    proc = await asyncio.create_subprocess_exec(*BM, "watch", "--all", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60 * TIMEOUT_FACTOR)
    return proc.returncode, out.decode(), err.decode()


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


def test_error_reply_is_one_line_and_a_non_zero_exit():
    async def go():
        async with BybitServer(SimulatedSource(["BTCUSDT"])) as srv:
            srv.rest.error = (10006, "Too many visits!")
            return await _cli("--url", srv.url, "--json", "--duration", "5s")

    rc, out, err = run(go())
    assert rc != 0 and out == ""
    assert "retCode 10006: Too many visits!" in _one_error_line(err)


def test_http_403_says_to_wait():
    async def go():
        async with BybitServer(SimulatedSource(["BTCUSDT"])) as srv:
            srv.rest.http_status = 403
            return await _cli("--url", srv.url, "--json", "--duration", "5s")

    rc, out, err = run(go())
    assert rc != 0 and "403" in _one_error_line(err) and "10 minutes" in err


def test_server_that_never_answers_is_a_bounded_wait_and_one_line():
    async def go():
        async with BybitServer(SimulatedSource(["BTCUSDT"])) as srv:
            srv.rest.hang = True
            t0 = time.monotonic()
            res = await _cli("--url", srv.url, "--json", "--rest-timeout", "1s", "--duration", "30s")
            return (*res, time.monotonic() - t0)

    rc, out, err, took = run(go())
    assert rc != 0 and "no reply within 1 s" in _one_error_line(err)
    assert took < 25 * TIMEOUT_FACTOR  # Python startup included; the server would hold it 10 s+


def test_no_server_is_one_line():
    async def go():
        srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        await srv.wait_closed()
        return await _cli("--url", f"ws://127.0.0.1:{port}", "--json", "--duration", "5s")

    rc, out, err = run(go())
    assert rc != 0 and "cannot connect" in _one_error_line(err)


@pytest.mark.parametrize("args, words", [
    (["BTCUSDT"], "symbols or --all"),
    (["--top", "0"], "--top"),
    (["--category", "linear,option"], "--category"),
    (["--min-turnover", "-5"], "--min-turnover"),
    (["--rediscover", "0s"], "rediscover"),
    (["--ladder"], "--ladder goes without --all"),
    (["--record", "x.ndjson"], "--record goes without --all"),
])
def test_bad_all_options_are_one_line(args, words):
    p = subprocess.run([*BM, "watch", "--all", "--url", "ws://127.0.0.1:9", *args], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0 and words in _one_error_line(p.stderr)


def test_filters_need_all():
    p = subprocess.run([*BM, "watch", "BTCUSDT", "--top", "5"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "--top goes with --all" in _one_error_line(p.stderr)


def test_listing_and_delisting_while_running_are_picked_up_by_the_refresh():
    syms = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "NEWUSDT"]

    async def go():
        async with BybitServer(SimulatedSource(syms, speed=2.0)) as srv:
            srv.rest.hide("linear", "NEWUSDT")  # streams, but not listed yet
            env = {k: v for k, v in os.environ.items() if k != "BYBITMON_URL"}
            proc = await asyncio.create_subprocess_exec(
                *BM, "watch", "--all", "--url", srv.url, "--json", "--interval", "500ms", "--rediscover", "1s",
                "--duration", "12s", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
            seen: list[dict] = []
            phase = 0
            marks: dict[str, int] = {}
            assert proc.stdout is not None
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), 30 * TIMEOUT_FACTOR)
                if not line:
                    break
                snap = orjson.loads(line)
                if snap["type"] != "snapshot":
                    continue
                seen.append(snap)
                names = {s["symbol"] for s in seen[marks.get("p", 0):]}
                if phase == 0 and {"AAAUSDT", "BBBUSDT", "CCCUSDT"} <= names:
                    marks["listed"] = len(seen)
                    srv.rest.list_symbol("linear", "NEWUSDT")
                    phase = 1
                elif phase == 1 and any(s["symbol"] == "NEWUSDT" and s["book"]["ready"] for s in seen[marks["listed"]:]):
                    marks["delisted"] = len(seen)
                    srv.rest.delist("linear", "BBBUSDT")
                    marks["p"] = len(seen)
                    phase = 2
            err = (await proc.stderr.read()).decode()
            await proc.wait()
            return proc.returncode, seen, marks, err

    rc, seen, marks, err = run(go(), timeout=90 * TIMEOUT_FACTOR)
    assert rc == 0, err
    assert "listed" in marks and "delisted" in marks, (marks, err)
    assert all(s["symbol"] != "NEWUSDT" for s in seen[:marks["listed"]])
    assert "linear instruments: 1 listed (NEWUSDT), 0 delisted" in err
    assert "linear instruments: 0 listed, 1 delisted (BBBUSDT)" in err
    # Once the delisting was seen (one refresh, ~1 s), BBBUSDT is no longer emitted.
    after = seen[marks["delisted"]:]
    names_late = [s["symbol"] for s in after[len(after) // 2:]]
    assert "BBBUSDT" not in names_late and "NEWUSDT" in names_late and "AAAUSDT" in names_late


def test_refresh_failure_keeps_the_list_and_warns():
    async def go():
        async with BybitServer(SimulatedSource(["AAAUSDT", "BBBUSDT"])) as srv:
            srv.rest.error, srv.rest.error_after = (10016, "Server error."), 1
            return await _cli("--url", srv.url, "--json", "--rediscover", "1s", "--duration", "4s")

    rc, out, err = run(go())
    assert rc == 0, err
    assert "instrument refresh failed, keeping the current list" in err and "10016" in err
    assert set(_last_snapshots(out)) == {("linear", "AAAUSDT"), ("linear", "BBBUSDT")}


# -- batching at 500+ symbols ------------------------------------------------------------------


@pytest.mark.parametrize("category", ["spot", "linear"])
def test_client_subscribes_520_symbols_within_bybits_limits(category):
    """520 symbols (1,040 topics): spot requests of at most 10 args (the server refuses more),
    at most 21,000 characters of args per connection, several connections, every book ready."""
    syms = [f"Q{i:03d}USDT" for i in range(520)]

    async def go():
        src = SimulatedSource(syms, categories=(category,), trade_rate=0.2, plant_every_s=0, book_interval_ms=1000,
                              tick_s=0.1)
        async with BybitServer(src) as srv:
            mon = Monitor(category)
            refusals: list[str] = []
            acks: list[int] = []

            def note(recv_ns: int, conn: str, raw: str) -> None:
                if '"op":"subscribe"' in raw:
                    acks.append(1)
                    if '"success":false' in raw:
                        refusals.append(raw)

            feed = LiveFeed(mon, url=srv.url, on_frame=note)
            await feed.start(syms)
            try:
                await eventually(lambda: all(s in mon.states and mon.states[s].book.ready for s in syms),
                                 timeout=60 * TIMEOUT_FACTOR, what="520 ready books")
                conns = feed.client.conns
                return (len(conns), [c.args_chars() for c in conns], dict(feed.client.failed),
                        sum(len(c.topics) for c in conns), srv.connections(category), refusals, len(acks))
            finally:
                await feed.stop()

    n_conns, chars, failed, topics, server_conns, refusals, acks = run(go(), timeout=120 * TIMEOUT_FACTOR)
    assert failed == {} and refusals == []
    assert acks >= 1040 // 10  # one ack per request of at most 10 args
    assert topics == 1040 and n_conns >= 2 and server_conns == n_conns
    assert all(c <= ARGS_CHARS_PER_CONN for c in chars)


# -- row order across categories -----------------------------------------------------------------


def test_rows_across_categories_are_ordered_by_heat_then_name():
    """The Board merges every category's symbols by the --sort value (heat by default with --all),
    largest first; a tie is broken by symbol, then category."""
    from bybitmon.app.board import Board
    from bybitmon.sim.market import MarketSimulator

    syms = [f"H{i:02d}USDT" for i in range(12)]
    monitors = []
    for cat in ("linear", "spot"):
        mon = Monitor(cat)
        sim = MarketSimulator(syms, seed=3, category=cat, trade_rate=3.0, book_interval_ms=1000, plant_every_s=0)
        for _, raw in sim.frames(2 * 60_000, step_ms=500):  # bursts happen within minutes
            mon.feed(0, raw)
        monitors.append(mon)
    board = Board(monitors)
    for mon in monitors:
        board.follow(mon.category, syms)
    tag = {"lin": "linear", "spot": "spot"}
    rows = [(tag[label.split("/")[1]], label.split("/")[0]) for label in board.order("heat")]
    assert len(rows) == 24 and set(rows) == {(c, s) for c in ("linear", "spot") for s in syms}
    by_cat = {m.category: m for m in monitors}
    heats = [by_cat[c].heat(s).heat for c, s in rows]
    assert heats == sorted(heats, reverse=True)
    assert heats[0] > heats[-1]  # not all equal: the order says something
    keys = [(-by_cat[c].heat(s).heat, s, c) for c, s in rows]
    assert keys == sorted(keys)
    assert board.order("symbol") == [f"{s}/{t}" for s in syms for t in ("lin", "spot")]


def test_a_delisted_symbol_is_unsubscribed_and_its_state_forgotten():
    """_Market.follow: a delisted symbol leaves the Monitor (book, trades, densities), and so
    does a state a late frame made again for a symbol no longer followed."""
    from bybitmon.app.live import LiveOptions, Stop
    from bybitmon.app.watch_all import _Market

    syms = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]

    async def go():
        async with BybitServer(SimulatedSource(syms, speed=2.0)) as srv:
            market = _Market("linear", LiveOptions(symbols=[], url=srv.url), Stop(), None)
            await market.follow(syms)
            await market.feed.start()
            try:
                mon = market.monitor
                await eventually(lambda: all(s in mon.states and mon.states[s].book.ready for s in syms),
                                 timeout=20 * TIMEOUT_FACTOR, what="three ready books")
                listed, delisted = await market.follow(["AAAUSDT", "CCCUSDT"])
                gone_at_once = "BBBUSDT" not in mon.states
                await asyncio.sleep(0.5)  # frames in flight may make BBBUSDT's state again...
                mon.state("BBBUSDT")      # (as one would)
                await market.follow(["AAAUSDT", "CCCUSDT"])  # ...the next refresh forgets it
                topics = {t for c in market.feed.client.conns for t in c.topics}
                return listed, delisted, gone_at_once, set(mon.states), topics
            finally:
                await market.feed.stop()

    listed, delisted, gone_at_once, states, topics = run(go())
    assert listed == [] and delisted == ["BBBUSDT"] and gone_at_once
    assert states == {"AAAUSDT", "CCCUSDT"}
    assert not any("BBBUSDT" in t for t in topics) and any("AAAUSDT" in t for t in topics)
