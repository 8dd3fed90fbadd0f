"""The server's per-connection protocol rules, sans-I/O: strings in, an Outcome out (no sockets)."""

from __future__ import annotations

import orjson
import pytest

from bybitmon.errors import UsageError
from bybitmon.testserver.faults import FaultKind, FaultPlan, TopicFault, fault_frame
from bybitmon.testserver.session import Session

TOPICS = {"orderbook.50.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.50.ETHUSDT"}


def serves(category: str, topic: str) -> bool:
    return topic in TOPICS


def req(op: str, args=None, **kw) -> str:
    msg = {"op": op, **kw}
    if args is not None:
        msg["args"] = args
    return orjson.dumps(msg).decode()


def test_ping_gets_a_pong_in_the_categorys_shape():
    linear = Session("linear", serves, cid="c1").receive(req("ping"))
    spot = Session("spot", serves, cid="c2").receive(req("ping"))
    assert orjson.loads(linear.reply) == {"success": True, "ret_msg": "pong", "conn_id": "c1", "req_id": "", "op": "ping"}
    assert orjson.loads(spot.reply) == {"success": True, "ret_msg": "pong", "conn_id": "c2", "op": "ping"}


def test_subscribe_adds_new_topics_once_and_resubscribe_asks_for_a_snapshot_again():
    s = Session("linear", serves)
    first = s.receive(req("subscribe", ["orderbook.50.BTCUSDT", "orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"], req_id=7))
    assert orjson.loads(first.reply)["success"] is True and orjson.loads(first.reply)["req_id"] == 7
    assert first.added == ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]
    again = s.receive(req("subscribe", ["orderbook.50.BTCUSDT"]))
    assert again.added == [] and again.subscribed == ["orderbook.50.BTCUSDT"]
    assert s.args_chars == len("orderbook.50.BTCUSDT") + len("publicTrade.BTCUSDT")


def test_one_unknown_topic_refuses_the_whole_request():
    s = Session("linear", serves)
    out = s.receive(req("subscribe", ["orderbook.50.BTCUSDT", "orderbook.200.BTCUSDT"]))
    assert orjson.loads(out.reply)["ret_msg"] == "error:handler not found,topic:orderbook.200.BTCUSDT"
    assert out.refused and out.added == [] and s.topics == {}


def test_rejected_symbol_and_spot_arg_count_are_refused():
    assert Session("linear", serves, {"ETHUSDT"}).receive(req("subscribe", ["orderbook.50.ETHUSDT"])).refused
    spot = Session("spot", lambda c, t: True).receive(req("subscribe", [f"publicTrade.S{i}" for i in range(11)]))
    assert '"ret_msg":"args size \\u003e10"' in spot.reply


def test_unsubscribe_returns_the_topics_it_ended():
    s = Session("linear", serves)
    s.receive(req("subscribe", ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]))
    out = s.receive(req("unsubscribe", ["publicTrade.BTCUSDT", "publicTrade.NOPE"]))
    assert out.removed == ["publicTrade.BTCUSDT"] and list(s.topics) == ["orderbook.50.BTCUSDT"]
    assert s.args_chars == len("orderbook.50.BTCUSDT")


def test_not_json_gets_an_error_frame():
    out = Session("linear", serves).receive("{nope")
    assert orjson.loads(out.reply)["success"] is False and out.refused


DELTA = '{"topic":"orderbook.50.X","type":"delta","ts":1,"data":{"s":"X","b":[],"a":[],"u":%d,"seq":1},"cts":1}'
SNAP = '{"topic":"orderbook.50.X","type":"snapshot","ts":1,"data":{"s":"X","b":[["1","2"]],"a":[["3","4"]],"u":%d,"seq":1},"cts":1}'


def test_topic_fault_duplicate_gap_reorder_on_the_next_deltas():
    counts = dict.fromkeys(FaultKind, 0)
    st = TopicFault()
    st.pending.extend([FaultKind.DUPLICATE, FaultKind.GAP, FaultKind.REORDER])
    sent = [f for u in range(10, 15) for f in st.on_frame(DELTA % u, counts)]
    us = [orjson.loads(f)["data"]["u"] for f in sent]
    assert us == [10, 10, 13, 12, 14]
    assert counts[FaultKind.DUPLICATE] == counts[FaultKind.GAP] == counts[FaultKind.REORDER] == 1
    assert st.idle()


def test_reset_renumbers_from_1_until_a_snapshot():
    text, st = fault_frame(FaultKind.RESET, SNAP % 40, None)
    assert orjson.loads(text)["data"]["u"] == 1 and st is not None
    counts = dict.fromkeys(FaultKind, 0)
    assert orjson.loads(st.on_frame(DELTA % 41, counts)[0])["data"]["u"] == 2
    st.on_frame(SNAP % 42, counts)
    assert st.idle()


def test_fault_plan_durations_need_a_unit():
    plan = FaultPlan.parse("drop=1.5m,gap=0.5")
    assert plan.every_s == {"drop": 90.0} and plan.per_delta == {"gap": 0.5}
    assert plan.describe() == "drop=90s,gap=0.5"
    with pytest.raises(UsageError):
        FaultPlan.parse("drop=30")  # a bare number is a fraction, and drop takes an interval
