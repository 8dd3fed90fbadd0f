"""``serve``'s REST endpoints for instrument discovery, on its own port, read with urllib on loopback.

Shapes follow Bybit's (protocol notes §11): ``retCode``/``retMsg``/``result.list``/
``result.nextPageCursor``; linear paginates at ``limit``, spot answers in one page and rejects
``limit``/``cursor``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from bybitmon.testserver.app import BybitServer, SimulatedSource

from paths import TIMEOUT_FACTOR

T = 2.0 * TIMEOUT_FACTOR
SYMBOLS = [f"C{i:03d}USDT" for i in range(23)] + ["BTCUSDT", "ETHUSDT"]


class Running:
    """A BybitServer on its own event loop in a thread, so blocking urllib calls can reach it."""

    def __init__(self, symbols, **kw) -> None:
        self.loop = asyncio.new_event_loop()
        self.srv = BybitServer(SimulatedSource(symbols, 2, **kw))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> BybitServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.srv.start(), self.loop).result(10 * T)
        return self.srv

    def call(self, fn, *args):
        return self.loop.call_soon_threadsafe(fn, *args)

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.srv.close(), self.loop).result(10 * T)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10 * T)


def get(srv: BybitServer, target: str, timeout: float = 5 * T) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{srv.port}{target}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_linear_instruments_paginate_at_limit_until_the_cursor_is_empty():
    with Running(SYMBOLS, categories=("linear", "spot")) as srv:
        seen: list[str] = []
        cursor = ""
        pages = 0
        while True:
            status, body = get(srv, "/v5/market/instruments-info?category=linear&limit=10"
                                    + (f"&cursor={cursor}" if cursor else ""))
            assert status == 200 and body["retCode"] == 0 and body["retMsg"] == "OK"
            assert len(body["result"]["list"]) <= 10
            seen += [item["symbol"] for item in body["result"]["list"]]
            pages += 1
            cursor = body["result"]["nextPageCursor"]
            if not cursor:
                break
            assert "%3D" in cursor  # opaque and already URL-encoded, sent back unchanged
        assert pages == 3 and seen == sorted(SYMBOLS)  # 25 symbols: 10 + 10 + 5, none twice
        item = next(i for i in body["result"]["list"] if i["symbol"] == "ETHUSDT")
        assert item["status"] == "Trading" and item["contractType"] == "LinearPerpetual"
        assert (item["baseCoin"], item["quoteCoin"]) == ("ETH", "USDT")
        assert item["priceFilter"]["tickSize"] == "0.01"
        # The filters fit the stream: every book price is a multiple of the tick, every size of the step.
        bids, _ = srv.true_book("ETHUSDT")
        step = Decimal(item["lotSizeFilter"]["qtyStep"])
        assert all(Decimal(p) % Decimal("0.01") == 0 and Decimal(q) % step == 0 for p, q in bids.items())


def test_spot_answers_in_one_page_and_rejects_limit_and_cursor():
    with Running(SYMBOLS, categories=("linear", "spot")) as srv:
        status, body = get(srv, "/v5/market/instruments-info?category=spot")
        assert status == 200 and body["retCode"] == 0 and body["result"]["nextPageCursor"] == ""
        assert sorted(i["symbol"] for i in body["result"]["list"]) == sorted(SYMBOLS)
        assert "contractType" not in body["result"]["list"][0]
        for bad in ("limit=10", "cursor=abc"):
            status, body = get(srv, f"/v5/market/instruments-info?category=spot&{bad}")
            assert status == 200 and body["retCode"] == 10001 and body["result"] == {}
        status, body = get(srv, "/v5/market/instruments-info?category=option")
        assert body["retCode"] == 10001


def test_tickers_list_every_symbol_with_its_24h_numbers():
    with Running(SYMBOLS, categories=("linear",)) as srv:
        status, body = get(srv, "/v5/market/tickers?category=linear")
        assert status == 200 and body["retCode"] == 0
        items = {i["symbol"]: i for i in body["result"]["list"]}
        assert set(items) == set(SYMBOLS)
        for i in items.values():
            assert Decimal(i["turnover24h"]) == pytest.approx(Decimal(i["volume24h"]) * Decimal(i["lastPrice"]),
                                                              rel=Decimal("1e-6"))
        assert len({i["volume24h"] for i in items.values()}) > 20  # they differ


def test_error_reply_and_a_server_that_never_answers():
    with Running(SYMBOLS[:3], categories=("linear",)) as srv:
        srv.rest.error = (10006, "Too many visits!")
        status, body = get(srv, "/v5/market/instruments-info?category=linear")
        assert status == 200 and body["retCode"] == 10006 and body["retMsg"] == "Too many visits!"
        srv.rest.error = None
        srv.rest.http_status = 403
        assert get(srv, "/v5/market/instruments-info?category=linear")[0] == 403
        srv.rest.http_status = None
        srv.rest.hang = True
        with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
            get(srv, "/v5/market/tickers?category=linear", timeout=0.5 * T)
        srv.rest.hang = False
        assert get(srv, "/v5/market/tickers?category=linear")[1]["retCode"] == 0


def test_a_symbol_listed_while_running_is_in_the_next_reply_and_streams():
    from websockets.sync.client import connect

    runner = Running(SYMBOLS[:3], categories=("linear",))
    with runner as srv:
        before = [i["symbol"] for i in get(srv, "/v5/market/instruments-info?category=linear")[1]["result"]["list"]]
        assert "NEWUSDT" not in before
        with connect(srv.url_for("linear")) as ws:  # the market is running before the listing
            ws.send('{"op":"subscribe","args":["publicTrade.C000USDT"]}')
            assert json.loads(ws.recv(T))["success"] is True
            done = threading.Event()
            runner.call(lambda: (srv.list_symbol("NEWUSDT"), done.set()))  # on the server's own loop
            assert done.wait(5 * T)
            after = [i["symbol"] for i in get(srv, "/v5/market/instruments-info?category=linear")[1]["result"]["list"]]
            assert "NEWUSDT" in after and len(after) == len(before) + 1
            ws.send('{"op":"subscribe","args":["orderbook.50.NEWUSDT"]}')
            snap = json.loads(ws.recv(T))
            while snap.get("topic") != "orderbook.50.NEWUSDT":  # trades of C000USDT may come first
                assert snap.get("success", True) is True
                snap = json.loads(ws.recv(T))
            assert snap["type"] == "snapshot" and len(snap["data"]["b"]) == len(snap["data"]["a"]) == 50
            while True:  # and it streams deltas
                msg = json.loads(ws.recv(T))
                if msg.get("topic") == "orderbook.50.NEWUSDT":
                    assert msg["type"] == "delta" and msg["data"]["u"] == snap["data"]["u"] + 1
                    break
