from __future__ import annotations

import orjson
import pytest

from bybitmon.core.events import BadFrame, BookUpdate, OtherTopic, Pong, SubscribeReply, TradeBatch, UnknownFrame
from bybitmon.core.protocol import parse_frame, ping_message, subscribe_message

from paths import fixture_lines


def test_linear_book_delta_from_docs_is_parsed():
    """The documented orderbook.50 delta becomes a BookUpdate with floats and ids."""
    lines = fixture_lines("doc_examples.ndjson")
    ev = parse_frame(lines[6], 5)
    assert isinstance(ev, BookUpdate)
    assert ev.symbol == "BTCUSDT" and ev.depth == 50 and not ev.is_snapshot
    assert ev.update_id == 177400507 and ev.seq == 66544703342
    assert ev.ts_ms == 1687940967466 and ev.cts_ms == 1687940967464 and ev.recv_ns == 5
    assert ev.bids[0] == (30247.2, 30.028)
    assert ev.asks[0] == (30248.7, 0.0)


def test_trade_batch_from_docs_is_parsed():
    ev = parse_frame(fixture_lines("doc_examples.ndjson")[7], 0)
    assert isinstance(ev, TradeBatch)
    (t,) = ev.trades
    assert t.ts_ms == 1672304486865 and t.is_buy and t.price == 16578.5 and t.size_str == "0.001"
    assert t.trade_id == "20f43950-d8dd-5b31-9112-a178eb6023af"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_every_documented_pong_shape_is_a_pong(index):
    """spot and linear answer with op=ping and ret_msg=pong; option with op=pong."""
    assert isinstance(parse_frame(fixture_lines("doc_examples.ndjson")[index], 0), Pong)


@pytest.mark.parametrize("name", ["readme_quoted_spot_ack_pong_ob1.ndjson", "handbuilt_spot_ack_pong_ob1.ndjson"])
def test_real_spot_pong_is_a_pong(name):
    assert isinstance(parse_frame(fixture_lines(name)[1], 0), Pong)


@pytest.mark.parametrize("index", [3, 4, 5])
def test_documented_subscribe_acks_are_successes(index):
    ev = parse_frame(fixture_lines("doc_examples.ndjson")[index], 0)
    assert isinstance(ev, SubscribeReply) and ev.success


@pytest.mark.parametrize("name", ["issue_quoted_spot_error_ack.ndjson", "handbuilt_spot_error_ack.ndjson"])
def test_real_error_ack_is_a_failed_reply_with_message(name):
    """The live server escapes '>' as \\u003e; the message is unescaped."""
    assert b"\\u003e" in fixture_lines(name)[0]
    ev = parse_frame(fixture_lines(name)[0], 0)
    assert isinstance(ev, SubscribeReply)
    assert ev.success is False and ev.ret_msg == "args size >10" and ev.req_id is None


def test_every_frame_of_the_live_captures_parses_without_a_bad_frame():
    kinds: dict[type, int] = {}
    for name in ("cryptofeed_linear_BTCUSDT_ETHUSDT.ndjson", "cryptofeed_spot_BTCUSDT.ndjson",
                 "nautilus_bybit_history_linear_XRPUSDT_ob500.ndjson"):
        for line in fixture_lines(name):
            ev = parse_frame(line, 0)
            kinds[type(ev)] = kinds.get(type(ev), 0) + 1
    assert BadFrame not in kinds
    # linear 835 + spot 300 + nautilus 50 book frames; 28 + 11 trade frames (SOURCES.md)
    assert kinds[BookUpdate] == 835 + 300 + 50
    assert kinds[TradeBatch] == 28 + 11
    assert kinds[SubscribeReply] == 17 + 7
    assert kinds[OtherTopic] == 401 + 34 + 41 + 15


@pytest.mark.parametrize("name", ["cryptofeed_spot_BTCUSDT.ndjson", "sim_spot_BTCUSDT.ndjson"])
def test_spot_trades_without_tick_direction_parse(name):
    line = next(l for l in fixture_lines(name) if b"publicTrade" in l)
    ev = parse_frame(line, 0)
    assert isinstance(ev, TradeBatch) and ev.trades and ev.trades[0].trade_id.isdigit()


@pytest.mark.parametrize("raw", [
    b"", b"{", b"not json", b"[1,2]", b"123", b'"x"', b"\xff\xfe",
    b'{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"b":[],"a":[],"u":"1"}}',
    b'{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"b":5,"a":[],"u":1}}',
    b'{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"b":[["1","-2"]],"a":[],"u":1}}',
    b'{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"b":[["nan","2"]],"a":[],"u":1}}',
    b'{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"b":[["1","2","3"]],"a":[],"u":1}}',
    b'{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"b":[[1,2]],"a":[],"u":1}}',
    b'{"topic":"orderbook.50.X","type":"weird","ts":1,"data":{"b":[],"a":[],"u":1}}',
    b'{"topic":"orderbook.50.X","type":"delta","ts":true,"data":{"b":[],"a":[],"u":1}}',
    b'{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"b":[],"a":[],"u":true}}',
    b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"S":"Hold","v":"1","p":"1","i":"a"}]}',
    b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"S":"Buy","v":"1","p":"inf","i":"a"}]}',
    b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":{"T":1}}',
    b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[5]}',
    b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"S":"Buy","v":"1","p":"1"}]}',
])
def test_malformed_frames_become_bad_frames(raw):
    """No exception escapes the parser: a bad frame is an event to count."""
    assert isinstance(parse_frame(raw, 0), BadFrame)


def test_unknown_object_and_other_topics_are_not_errors():
    assert isinstance(parse_frame(b'{"hello":1,"ts":5}', 0), UnknownFrame)
    assert isinstance(parse_frame(b'{"topic":5}', 0), UnknownFrame)
    ev = parse_frame(b'{"topic":"kline.1.BTCUSDT","ts":7,"data":[]}', 0)
    assert isinstance(ev, OtherTopic) and ev.ts_ms == 7


def test_outgoing_messages_carry_unique_req_ids():
    a = orjson.loads(subscribe_message(["publicTrade.BTCUSDT"]))
    b = orjson.loads(subscribe_message(["publicTrade.BTCUSDT"]))
    assert a["op"] == "subscribe" and a["args"] == ["publicTrade.BTCUSDT"]
    assert a["req_id"] != b["req_id"]
    assert orjson.loads(ping_message())["op"] == "ping"
