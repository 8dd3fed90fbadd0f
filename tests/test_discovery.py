"""discover() against `serve`'s REST endpoints on loopback: pagination beyond Bybit's limit on
linear, one page on spot, filters checked by brute force, hostile listings, the refresh diff."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from bybitmon.app import discovery
from bybitmon.app.discovery import PAGE_LIMIT, SYMBOL_RE, diff_symbols, discover, fetch_turnover
from bybitmon.errors import RestError
from bybitmon.testserver.app import BybitServer, SimulatedSource
from bybitmon.testserver.rest import RestMarket, handle

from helpers import run


async def _with_market(market: RestMarket | None, body, symbols=("BTCUSDT", "ETHUSDT")):
    async with BybitServer(SimulatedSource(list(symbols))) as srv:
        if market is not None:
            srv.rest = market
        return await body(srv.url.replace("ws://", "http://"), srv.rest)


def test_linear_follows_the_cursor_beyond_the_page_limit():
    n = 2 * PAGE_LIMIT + 345
    syms = [f"X{i:05d}USDT" for i in range(n)]

    async def body(base, market):
        return await discover("linear", base), list(market.calls)

    found, calls = run(_with_market(RestMarket({"linear": syms}), body))
    assert [i.symbol for i in found] == syms
    assert all(i.category == "linear" and i.quote_coin == "USDT" and i.base_coin == i.symbol[:-4] for i in found)
    assert [c[1].get("limit") for c in calls] == ["1000"] * 3
    assert "cursor" not in calls[0][1] and all("cursor" in c[1] for c in calls[1:])


def test_spot_is_one_call_without_limit_or_cursor():
    syms = [f"Y{i:04d}USDT" for i in range(1500)]

    async def body(base, market):
        return await discover("spot", base), list(market.calls)

    found, calls = run(_with_market(RestMarket({"spot": syms}), body))
    assert len(found) == 1500
    assert calls == [("/v5/market/instruments-info", {"category": "spot"})]


def test_served_simulated_symbols_are_discovered_on_every_category():
    async def body(base, market):
        return {c: [i.symbol for i in await discover(c, base)] for c in ("linear", "spot", "inverse")}

    got = run(_with_market(None, body, symbols=("SOLUSDT", "BTCUSDT", "ETHUSDT")))
    assert got == {c: ["BTCUSDT", "ETHUSDT", "SOLUSDT"] for c in ("linear", "spot", "inverse")}


def test_quote_and_min_turnover_filters_match_a_brute_force_selection():
    syms = [f"Z{i:03d}{q}" for i in range(40) for q in ("USDT", "USDC")]
    market = RestMarket({"linear": syms})
    threshold = 1e7

    async def body(base, _):
        return await discover("linear", base, quote="usdt", min_turnover=threshold)

    found = run(_with_market(market, body))
    # Brute force, from the served tickers reply itself.
    tickers = orjson.loads(handle("/v5/market/tickers", {"category": "linear"}, market)[2])["result"]["list"]
    expect = sorted(t["symbol"] for t in tickers if t["symbol"].endswith("USDT") and float(t["turnover24h"]) >= threshold)
    assert 5 < len(expect) < 40  # the threshold really filters
    assert [i.symbol for i in found] == expect
    by_sym = {t["symbol"]: float(t["turnover24h"]) for t in tickers}
    assert all(i.turnover_24h == by_sym[i.symbol] for i in found)


def test_delisted_and_hidden_symbols_are_not_discovered():
    market = RestMarket({"linear": ["AUSDT", "BUSDT", "CUSDT"]})
    market.delist("linear", "BUSDT")

    async def body(base, _):
        return [i.symbol for i in await discover("linear", base)]

    assert run(_with_market(market, body)) == ["AUSDT", "CUSDT"]


def test_error_reply_raises_with_bybits_message():
    market = RestMarket({"linear": ["AUSDT"]})
    market.error = (10016, "Server error.")

    async def body(base, _):
        return await discover("linear", base)

    with pytest.raises(RestError, match="retCode 10016: Server error."):
        run(_with_market(market, body))


def test_error_on_a_later_page_gives_no_partial_list():
    syms = [f"X{i:05d}USDT" for i in range(PAGE_LIMIT + 5)]
    market = RestMarket({"linear": syms})

    market.error, market.error_after = (10002, "request expired"), 1

    async def body(base, m):
        try:
            return await discover("linear", base)
        finally:
            assert len(m.calls) == 2

    with pytest.raises(RestError, match="10002"):
        run(_with_market(market, body))


def test_server_that_never_answers_fails_within_the_timeout():
    market = RestMarket({"linear": ["AUSDT"]})
    market.hang = True

    async def body(base, _):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(RestError, match="no reply within"):
            await discover("linear", base, timeout_s=0.5)
        return loop.time() - t0

    assert run(_with_market(market, body)) < 2.5


class _Hostile:
    """A loopback HTTP server answering instruments-info with ``pages`` in turn (last one repeated)."""

    def __init__(self, pages: list[dict]) -> None:
        self.pages = pages
        self.n = 0

    async def serve(self, reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        page = self.pages[min(self.n, len(self.pages) - 1)]
        self.n += 1
        body = orjson.dumps({"retCode": 0, "retMsg": "OK", "result": page, "time": 1})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()


async def _hostile(pages, category="linear"):
    h = _Hostile(pages)
    srv = await asyncio.start_server(h.serve, "127.0.0.1", 0)
    try:
        return await discover(category, f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", timeout_s=2), h.n
    finally:
        srv.close()


def test_a_cursor_that_repeats_is_an_error_not_an_endless_loop():
    page = {"category": "linear", "list": [{"symbol": "AUSDT", "status": "Trading"}], "nextPageCursor": "abc"}
    with pytest.raises(RestError, match="repeats"):
        run(_hostile([page]))


def test_endless_distinct_cursors_stop_at_the_page_bound(monkeypatch):
    monkeypatch.setattr(discovery, "MAX_PAGES", 5)

    class Counter(_Hostile):
        async def serve(self, reader, writer):
            self.pages = [{"category": "linear", "list": [{"symbol": f"A{self.n}USDT", "status": "Trading"}],
                           "nextPageCursor": f"c{self.n}"}]
            await super().serve(reader, writer)

    async def go():
        h = Counter([])
        srv = await asyncio.start_server(h.serve, "127.0.0.1", 0)
        try:
            await discover("linear", f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", timeout_s=2)
        finally:
            srv.close()

    with pytest.raises(RestError, match="after 5"):
        run(go())


def test_hostile_symbols_and_other_statuses_are_skipped_with_a_warning(caplog):
    items = [{"symbol": "AUSDT", "status": "Trading", "baseCoin": "A", "quoteCoin": "USDT"},
             {"symbol": "B\x1b[2JUSDT", "status": "Trading"},
             {"symbol": "../../etc", "status": "Trading"},
             {"symbol": "x" * 100, "status": "Trading"},
             {"symbol": 42, "status": "Trading"},
             {"symbol": "CUSDT", "status": "Closed"},
             {"symbol": "DUSDT", "status": "PreLaunch"},
             {"symbol": "BTC-26DEC25", "status": "Trading", "baseCoin": "BTC", "quoteCoin": "USDC"},
             {"symbol": "EUSDT", "status": "Trading", "baseCoin": "<b>", "quoteCoin": "USDT"}]
    with caplog.at_level(logging.WARNING, logger="bybitmon.discovery"):
        found, _ = run(_hostile([{"category": "linear", "list": items, "nextPageCursor": ""}]))
    assert [i.symbol for i in found] == ["AUSDT", "BTC-26DEC25", "EUSDT"]
    assert found[2].base_coin == ""  # a hostile coin name is not kept
    assert any("4 linear instruments with unusable symbol names skipped" in r.getMessage() for r in caplog.records)


def test_a_reply_for_another_category_is_refused():
    page = {"category": "spot", "list": [{"symbol": "AUSDT", "status": "Trading"}], "nextPageCursor": ""}
    with pytest.raises(RestError, match="asked for linear"):
        run(_hostile([page]))


def test_more_items_than_the_limit_on_one_page_is_refused():
    items = [{"symbol": f"A{i}USDT", "status": "Trading"} for i in range(PAGE_LIMIT + 1)]
    with pytest.raises(RestError, match="over the limit"):
        run(_hostile([{"category": "linear", "list": items, "nextPageCursor": ""}]))


def test_turnover_ignores_non_numbers():
    async def go():
        class T(_Hostile):
            pass

        h = T([{"category": "linear", "list": [
            {"symbol": "AUSDT", "turnover24h": "123.5"}, {"symbol": "BUSDT", "turnover24h": "nan"},
            {"symbol": "CUSDT", "turnover24h": "-1"}, {"symbol": "DUSDT", "turnover24h": 7},
            {"symbol": "E USDT", "turnover24h": "1"}]}])
        srv = await asyncio.start_server(h.serve, "127.0.0.1", 0)
        try:
            return await fetch_turnover("linear", f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}")
        finally:
            srv.close()

    assert run(go()) == {"AUSDT": 123.5}


def test_symbol_pattern():
    for ok in ("BTCUSDT", "1000PEPEUSDT", "BTC-26DEC25", "A", "X" * 30):
        assert SYMBOL_RE.fullmatch(ok), ok
    for bad in ("", "btcusdt", "BTC USDT", "-BTC", "BTC-", "X" * 31, "BTC/USDT", "BTC\nUSDT", "ÄUSDT"):
        assert not SYMBOL_RE.fullmatch(bad), bad


def test_diff_reports_listed_and_delisted():
    assert diff_symbols(["A", "B", "C"], ["B", "C", "D", "E"]) == (["D", "E"], ["A"])
    assert diff_symbols([], []) == ([], [])
