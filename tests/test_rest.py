"""The REST client (transport/rest.py) against loopback servers, and serve's REST handler
(testserver/rest.py) as a pure function: shapes, pagination, spot's single page, hostile replies."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import unquote

import orjson
import pytest

from bybitmon.errors import RestError
from bybitmon.testserver.rest import RestMarket, handle
from bybitmon.transport.rest import MAINNET_REST, TESTNET_REST, rest_base, rest_get

from helpers import run
from paths import TIMEOUT_FACTOR


def _market(n: int = 25, categories=("linear", "spot", "inverse")) -> RestMarket:
    syms = [f"S{i:03d}USDT" for i in range(n)]
    return RestMarket({c: syms for c in categories}, clock_ms=lambda: 1_700_000_000_000)


def _body(reply) -> dict:
    status, headers, body = reply
    assert status == 200 and ("Content-Type", "application/json") in headers
    return orjson.loads(body)


# -- the handler ----------------------------------------------------------------------------


def test_linear_pages_at_the_requested_limit_with_an_encoded_cursor():
    m = _market(25)
    seen: list[str] = []
    query = {"category": "linear", "limit": "10"}
    pages = 0
    while True:
        msg = _body(handle("/v5/market/instruments-info", query, m))
        assert msg["retCode"] == 0 and msg["retMsg"] == "OK" and msg["time"] == 1_700_000_000_000
        res = msg["result"]
        assert res["category"] == "linear" and len(res["list"]) <= 10
        seen += [it["symbol"] for it in res["list"]]
        pages += 1
        cur = res["nextPageCursor"]
        if not cur:
            break
        # Bybit's cursor is already URL-encoded ("first%3DBIOUSDT%26last%3DBIOUSDT").
        assert "%3D" in cur and "%26" in cur and "=" not in cur
        query = {"category": "linear", "limit": "10", "cursor": unquote(cur)}
    assert pages == 3
    assert seen == [f"S{i:03d}USDT" for i in range(25)]


def test_instruments_carry_bybits_fields_as_strings():
    item = _body(handle("/v5/market/instruments-info", {"category": "linear"}, _market(3)))["result"]["list"][0]
    assert item["symbol"] == "S000USDT" and item["status"] == "Trading"
    assert item["baseCoin"] == "S000" and item["quoteCoin"] == "USDT" and item["contractType"] == "LinearPerpetual"
    assert set(item["lotSizeFilter"]) >= {"minOrderQty", "maxOrderQty", "qtyStep", "minNotionalValue"}
    assert isinstance(item["priceFilter"]["tickSize"], str)


def test_default_limit_is_500():
    m = _market(600)
    res = _body(handle("/v5/market/instruments-info", {"category": "linear"}, m))["result"]
    assert len(res["list"]) == 500 and res["nextPageCursor"]


def test_spot_answers_every_pair_in_one_page():
    res = _body(handle("/v5/market/instruments-info", {"category": "spot"}, _market(700)))["result"]
    assert len(res["list"]) == 700 and res["nextPageCursor"] == ""


@pytest.mark.parametrize("extra", [{"limit": "10"}, {"cursor": "first=A&last=B"}])
def test_spot_refuses_limit_and_cursor(extra):
    msg = _body(handle("/v5/market/instruments-info", {"category": "spot", **extra}, _market()))
    assert msg["retCode"] == 10001 and "spot" in msg["retMsg"]


@pytest.mark.parametrize("query", [{}, {"category": "option"}, {"category": "linear", "limit": "0"},
                                   {"category": "linear", "limit": "1001"}, {"category": "linear", "limit": "x"},
                                   {"category": "linear", "cursor": "garbage"}])
def test_bad_parameters_get_retcode_10001(query):
    assert _body(handle("/v5/market/instruments-info", query, _market()))["retCode"] == 10001


def test_tickers_list_every_listed_symbol_with_turnover_and_volume():
    m = _market(5)
    m.hide("linear", "S002USDT")
    items = _body(handle("/v5/market/tickers", {"category": "linear"}, m))["result"]["list"]
    assert [t["symbol"] for t in items] == ["S000USDT", "S001USDT", "S003USDT", "S004USDT"]
    for t in items:
        assert float(t["turnover24h"]) >= 1e5 and float(t["volume24h"]) >= 0 and "lastPrice" in t


def test_hidden_symbol_is_listed_once_list_symbol_is_called():
    m = _market(3)
    m.hide("linear", "S001USDT")
    q = {"category": "linear"}
    assert [i["symbol"] for i in _body(handle("/v5/market/instruments-info", q, m))["result"]["list"]] == ["S000USDT", "S002USDT"]
    m.list_symbol("linear", "S001USDT")
    m.list_symbol("linear", "NEWUSDT")
    got = [i["symbol"] for i in _body(handle("/v5/market/instruments-info", q, m))["result"]["list"]]
    assert got == ["NEWUSDT", "S000USDT", "S001USDT", "S002USDT"]


def test_modes_error_http_status_and_hang():
    m = _market(3)
    m.error = (10006, "Too many visits!")
    msg = _body(handle("/v5/market/tickers", {"category": "linear"}, m))
    assert msg["retCode"] == 10006 and msg["retMsg"] == "Too many visits!"
    m.error, m.http_status = None, 403
    assert handle("/v5/market/tickers", {"category": "linear"}, m)[0] == 403
    m.http_status, m.hang = None, True
    assert handle("/v5/market/tickers", {"category": "linear"}, m) is None
    assert len(m.calls) == 3


def test_unknown_path_is_404():
    assert handle("/v5/market/kline", {}, _market())[0] == 404


def test_tick_size_is_the_smallest_gap_of_the_book():
    m = RestMarket({"linear": ["BTCUSDT"]}, book=lambda c, s: ({"65000.10": "1", "64999.90": "2", "64999.80": "1"},
                                                               {"65000.30": "1"}))
    assert m.tick_size("linear", "BTCUSDT") == "0.1"


# -- REST base -------------------------------------------------------------------------------


def test_rest_base_follows_the_websocket_url():
    assert rest_base(None) == MAINNET_REST == "https://api.bybit.com"
    assert rest_base(None, testnet=True) == TESTNET_REST == "https://api-testnet.bybit.com"
    assert rest_base("wss://stream.bybit.com/v5/public/linear") == MAINNET_REST
    assert rest_base("wss://stream-testnet.bybit.com") == TESTNET_REST
    assert rest_base("ws://127.0.0.1:8765") == "http://127.0.0.1:8765"
    assert rest_base("ws://127.0.0.1:8765/v5/public/spot") == "http://127.0.0.1:8765"
    assert rest_base("wss://example.test:9443") == "https://example.test:9443"
    with pytest.raises(RestError):
        rest_base("http://127.0.0.1:1")


# -- the client against loopback servers ----------------------------------------------------


class _Canned:
    """A loopback HTTP server answering every request with ``reply`` bytes (or nothing)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        if self.reply is None:
            await asyncio.sleep(3600)
        writer.write(self.reply)
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()


def _http(status: str, body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}"
            f"Connection: close\r\n\r\n").encode() + body


def _ok(result: dict) -> bytes:
    return orjson.dumps({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1})


async def _get(reply: bytes | None, *, cursor: str | None = None, timeout_s: float = 5.0, max_bytes: int = 2**20):
    srv = _Canned(reply)
    async with srv as base:
        rep = await rest_get(base, "/v5/market/instruments-info", {"category": "linear", "limit": "1000"},
                             cursor=cursor, timeout_s=timeout_s, max_bytes=max_bytes)
    return rep, srv.requests


def test_good_reply_is_parsed_and_the_cursor_goes_back_unchanged():
    body = _ok({"category": "linear", "list": [{"symbol": "BTCUSDT"}], "nextPageCursor": "first%3DA%26last%3DB"})
    rep, reqs = run(_get(_http("200 OK", body), cursor="first%3DX%26last%3DY"))
    assert rep.items == [{"symbol": "BTCUSDT"}] and rep.cursor == "first%3DA%26last%3DB" and rep.time_ms == 1
    line = reqs[0].split(b"\r\n", 1)[0].decode()
    # Not encoded twice: %3D stays %3D (a second encoding would give %253D).
    assert line == "GET /v5/market/instruments-info?category=linear&limit=1000&cursor=first%3DX%26last%3DY HTTP/1.1"


@pytest.mark.parametrize("reply, words", [
    (_http("200 OK", orjson.dumps({"retCode": 10006, "retMsg": "Too many visits!", "result": {}})), "retCode 10006: Too many visits!"),
    (_http("403 Forbidden", b"access too frequent"), "403"),
    (_http("502 Bad Gateway", b"<html>"), "HTTP 502"),
    (_http("200 OK", b"<html>oops</html>"), "not JSON"),
    (_http("200 OK", b"[1,2]"), "not a JSON object"),
    (_http("200 OK", orjson.dumps({"retMsg": "OK", "result": {"list": []}})), "retCode"),
    (_http("200 OK", orjson.dumps({"retCode": 0, "retMsg": "OK", "result": []})), "result"),
    (_http("200 OK", orjson.dumps({"retCode": 0, "retMsg": "OK", "result": {"list": {}}})), "result.list"),
    (_http("200 OK", orjson.dumps({"retCode": 0, "retMsg": "OK", "result": {"list": [1]}})), "result.list"),
    (_http("200 OK", _ok({"list": [], "nextPageCursor": "a&category=spot"})), "nextPageCursor"),
    (_http("200 OK", _ok({"list": [], "nextPageCursor": 5})), "nextPageCursor"),
    (b"garbage\r\n\r\n", "bad HTTP reply"),
    (_http("200 OK", b"x" * 5000), "limit"),
], ids=["retcode", "403", "502", "html", "array", "no-retcode", "result-list", "list-dict", "list-int",
        "cursor-injection", "cursor-int", "garbage", "oversize"])
def test_bad_replies_are_one_line_errors(reply, words):
    with pytest.raises(RestError) as exc:
        run(_get(reply, max_bytes=4096))
    msg = str(exc.value)
    assert words in msg and "\n" not in msg and len(msg) < 300


def test_oversize_body_without_content_length_is_cut_off():
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + b"[" * 100_000
    with pytest.raises(RestError, match="limit"):
        run(_get(reply, max_bytes=4096))


def test_retmsg_from_outside_is_clipped_and_printable():
    body = orjson.dumps({"retCode": 1, "retMsg": "\x1b[31mred\n" + "x" * 500, "result": {}})
    with pytest.raises(RestError) as exc:
        run(_get(_http("200 OK", body)))
    msg = str(exc.value)
    assert "\x1b" not in msg and "\n" not in msg and len(msg) < 300


def test_a_server_that_never_answers_is_given_up_on_in_time():
    t0 = time.monotonic()
    with pytest.raises(RestError, match="no reply within 0.5 s"):
        run(_get(None, timeout_s=0.5))
    assert time.monotonic() - t0 < 3 * TIMEOUT_FACTOR


def test_connection_refused_is_one_line():
    async def go():
        srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        await srv.wait_closed()
        return await rest_get(f"http://127.0.0.1:{port}", "/v5/market/tickers", {"category": "linear"}, timeout_s=2)

    with pytest.raises(RestError, match="cannot connect"):
        run(go())
