"""Sans-I/O Bybit v5 public protocol: raw frame text -> one typed event; outgoing JSON builders.

No sockets, no clocks: the caller passes the local receive time ``recv_ns`` with every frame.
A malformed frame never raises: it becomes a :class:`~bybitmon.core.events.BadFrame`.
Protocol reference: https://bybit-exchange.github.io/docs/v5/ws/connect
"""

from __future__ import annotations

import itertools
from typing import Iterable

import orjson

from .limits import CATEGORIES, SPOT_ARGS_PER_REQUEST
from .events import (
    BadFrame,
    BookUpdate,
    Event,
    OtherTopic,
    Pong,
    SubscribeReply,
    Trade,
    TradeBatch,
    UnknownFrame,
)

__all__ = [
    "parse_frame",
    "book_fields",
    "trade_fields",
    "book_topic",
    "trade_topic",
    "topic_symbol",
    "subscribe_message",
    "unsubscribe_message",
    "ping_message",
    "is_pong",
]

_INF = float("inf")
_req_ids = itertools.count(1)
_MISSING: object = object()


def book_topic(symbol: str, depth: int = 50) -> str:
    return f"orderbook.{depth}.{symbol}"


def trade_topic(symbol: str) -> str:
    return f"publicTrade.{symbol}"


def topic_symbol(topic: str) -> str:
    """``orderbook.50.BTCUSDT`` -> ``BTCUSDT``; ``publicTrade.BTCUSDT`` -> ``BTCUSDT``."""
    return topic.rsplit(".", 1)[-1]


def _next_req_id() -> str:
    return f"bm{next(_req_ids)}"


def subscribe_message(topics: Iterable[str], req_id: str | None = None) -> str:
    """A subscribe request; ``req_id`` defaults to a fresh unique id (acks are matched by it)."""
    return orjson.dumps(
        {"req_id": req_id or _next_req_id(), "op": "subscribe", "args": list(topics)}
    ).decode()


def unsubscribe_message(topics: Iterable[str], req_id: str | None = None) -> str:
    return orjson.dumps(
        {"req_id": req_id or _next_req_id(), "op": "unsubscribe", "args": list(topics)}
    ).decode()


def ping_message(req_id: str | None = None) -> str:
    """Bybit's application-level ping: a JSON text frame, not a WebSocket control ping."""
    return orjson.dumps({"req_id": req_id or _next_req_id(), "op": "ping"}).decode()


def is_pong(msg: dict) -> bool:
    """pybit's rule: a pong has ``ret_msg == "pong"`` or ``op == "pong"`` (spot and linear
    answer with ``"op":"ping"``, so never key on ``op`` alone)."""
    return msg.get("ret_msg") == "pong" or msg.get("op") == "pong"


def _excerpt(raw: str | bytes) -> str:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[:120]).decode("utf-8", "replace")
    return raw[:120]


def parse_frame(raw: str | bytes, recv_ns: int) -> Event:
    """Turn one raw frame into one event. Never raises.

    Args:
        raw: the frame text exactly as received.
        recv_ns: local receive time in ns (``time.time_ns()`` at the source).
    """
    try:
        msg = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return BadFrame(recv_ns, "invalid JSON", _excerpt(raw) if isinstance(raw, (str, bytes)) else "")
    if type(msg) is not dict:
        return BadFrame(recv_ns, "not a JSON object", _excerpt(raw))
    topic = msg.get("topic")
    if type(topic) is str:
        try:
            if topic.startswith("orderbook."):
                return _parse_book(msg, topic, recv_ns, raw)
            if topic.startswith("publicTrade."):
                return _parse_trades(msg, topic, recv_ns)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return BadFrame(recv_ns, f"malformed {topic.split('.', 1)[0]} frame: {exc}", _excerpt(raw))
        ts = msg.get("ts")
        return OtherTopic(recv_ns, topic, ts if type(ts) is int else None)
    op = msg.get("op")
    ts = msg.get("ts")
    ts = ts if type(ts) is int else None
    if msg.get("ret_msg") == "pong" or op == "pong":
        return Pong(recv_ns, _str_or_none(msg.get("conn_id")), msg.get("req_id"), ts)
    if op in ("subscribe", "unsubscribe") and "success" in msg:
        return SubscribeReply(
            recv_ns, op, msg.get("success") is True, str(msg.get("ret_msg", "")),
            msg.get("req_id"), _str_or_none(msg.get("conn_id")), ts,
        )
    if msg.get("type") == "COMMAND_RESP":  # option-style ack
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        fail = data.get("failTopics") or []
        return SubscribeReply(
            recv_ns, "subscribe", msg.get("success") is True and not fail,
            ",".join(map(str, fail)), msg.get("req_id"), _str_or_none(msg.get("conn_id")), ts,
        )
    return UnknownFrame(recv_ns, ts)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


# float(str) costs ~0.17 us here, a dict lookup 0.015 us, and the same price and size strings
# come back frame after frame. These caches map a string that was already validated to its
# float; a miss (or anything odd) takes the checked slow path. They are generational so that
# memory stays bounded without dropping the working set: when the young generation is full
# it becomes the old one, and a string found only in the old generation is validated again
# cheaply (a lookup) and moved back to the young one. With hundreds of symbols the strings in
# use at any moment exceed one generation; clearing everything at the cap, as before, sent a
# quarter of all levels down the slow path at 500 symbols. No result depends on the caches.
_PRICES: dict[str, float] = {}
_SIZES: dict[str, float] = {}
_OLD_PRICES: dict[str, float] = {}
_OLD_SIZES: dict[str, float] = {}
_CACHE_MAX = 100_000


def _levels(side: list) -> list[tuple[float, float]]:
    """``[["65114.2", "5.954"], ...]`` -> ``[(65114.2, 5.954), ...]``; raises on any bad level."""
    try:
        return [(_PRICES[p], _SIZES[s]) for p, s in side]
    except (KeyError, TypeError, ValueError):
        return _levels_checked(side)


def _levels_checked(side: list) -> list[tuple[float, float]]:
    global _PRICES, _SIZES, _OLD_PRICES, _OLD_SIZES
    if type(side) is not list:
        raise TypeError("levels are not a list")
    if len(_PRICES) > _CACHE_MAX:
        _OLD_PRICES, _PRICES = _PRICES, {}
    if len(_SIZES) > _CACHE_MAX:
        _OLD_SIZES, _SIZES = _SIZES, {}
    prices, sizes = _PRICES, _SIZES
    out = []
    for p, s in side:
        if type(p) is not str or type(s) is not str:
            raise TypeError("price and size must be strings")
        price = prices.get(p)
        if price is None:
            price = _OLD_PRICES.get(p)
            if price is None:
                price = float(p)
                # NaN fails the comparison, so one test rejects NaN, inf, zero and negatives.
                if not 0.0 < price < _INF:
                    raise ValueError(f"bad level [{p!r}, {s!r}]")
        size = sizes.get(s)
        if size is None:
            size = _OLD_SIZES.get(s)
            if size is None:
                size = float(s)
                if not 0.0 <= size < _INF:
                    raise ValueError(f"bad level [{p!r}, {s!r}]")
        out.append((price, size))
    # Only a side that is valid as a whole is remembered.
    for (p, s), (price, size) in zip(side, out):
        prices[p] = price
        sizes[s] = size
    return out


BookFields = tuple  # (symbol, depth, ts_ms, cts_ms, u, seq, is_snapshot, bids, asks)


_BOOK_TOPICS: dict[str, tuple[str, int] | None] = {}


def _book_topic(topic: str) -> tuple[str, int] | None:
    parts = topic.split(".")
    route = (parts[2], int(parts[1])) if len(parts) == 3 and parts[1].isdigit() else None
    if len(_BOOK_TOPICS) > 100_000:
        _BOOK_TOPICS.clear()
    _BOOK_TOPICS[topic] = route
    return route


def book_fields(msg: dict, topic: str) -> BookFields | None:
    """Validate an ``orderbook.{depth}.{symbol}`` frame; None for book topics we don't interpret
    (``orderbook.rpi.*``, ``orderbook.full.*``).

    Raises:
        KeyError, TypeError, ValueError: the frame is malformed (nothing of it may be applied).
    """
    route = _BOOK_TOPICS.get(topic, _MISSING)
    if route is _MISSING:
        route = _book_topic(topic)
    if route is None:
        return None
    kind = msg["type"]
    if kind == "delta":
        is_snapshot = False
    elif kind == "snapshot":
        is_snapshot = True
    else:
        raise ValueError(f"unknown type {kind!r}")
    ts = msg["ts"]
    data = msg["data"]
    u = data["u"]
    seq = data["seq"]
    if type(ts) is not int or type(u) is not int or type(seq) is not int:
        raise TypeError("ts, u and seq must be integers")
    cts = msg.get("cts")
    return (route[0], route[1], ts, cts if type(cts) is int else None, u, seq, is_snapshot,  # type: ignore[index]
            _levels(data["b"]), _levels(data["a"]))


def _parse_book(msg: dict, topic: str, recv_ns: int, raw: str | bytes) -> Event:
    f = book_fields(msg, topic)
    if f is None:
        ts = msg.get("ts")
        return OtherTopic(recv_ns, topic, ts if type(ts) is int else None)
    symbol, depth, ts, cts, u, seq, is_snapshot, bids, asks = f
    return BookUpdate(topic, symbol, depth, recv_ns, ts, cts, u, seq, is_snapshot, tuple(bids), tuple(asks))


def trade_fields(msg: dict, topic: str) -> tuple[int, list[Trade]]:
    """Validate a ``publicTrade.{symbol}`` frame: (ts_ms, trades).

    Raises:
        KeyError, TypeError, ValueError: the frame is malformed.
    """
    ts = msg["ts"]
    data = msg["data"]
    if type(ts) is not int or type(data) is not list:
        raise TypeError("ts must be an integer and data a list")
    trades = []
    append = trades.append
    for t in data:
        fill_ms = t["T"]
        side = t["S"]
        p = t["p"]
        v = t["v"]
        trade_id = t["i"]
        if type(fill_ms) is not int or type(p) is not str or type(v) is not str or type(trade_id) is not str:
            raise TypeError("trade T must be an integer; p, v and i strings")
        if side == "Buy":
            is_buy = True
        elif side == "Sell":
            is_buy = False
        else:
            raise ValueError(f"unknown side {side!r}")
        price = float(p)
        size = float(v)
        if not (0.0 < price < _INF and 0.0 <= size < _INF):
            raise ValueError(f"bad trade price/size {p!r}/{v!r}")
        append(Trade(fill_ms, is_buy, price, size, v, trade_id, t.get("BT") is True))
    return ts, trades


def _parse_trades(msg: dict, topic: str, recv_ns: int) -> TradeBatch:
    ts, trades = trade_fields(msg, topic)
    return TradeBatch(topic, topic_symbol(topic), recv_ns, ts, tuple(trades))
