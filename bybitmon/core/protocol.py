"""Sans-I/O Bybit v5 public protocol: raw frame text -> one typed event; outgoing JSON builders.

No sockets, no clocks: the caller passes the local receive time ``recv_ns`` with every frame.
A malformed frame never raises: it becomes a :class:`~bybitmon.core.events.BadFrame`.
Protocol reference: https://bybit-exchange.github.io/docs/v5/ws/connect
"""

from __future__ import annotations

import enum
import itertools
import re
from typing import Iterable, NamedTuple

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
    "route",
    "BookFields",
    "TradesFields",
    "BadReason",
    "TS_MIN_MS",
    "TS_MAX_MS",
    "MAX_PRICE",
    "MAX_SIZE",
    "MAX_ID",
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

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)

# Range checks at the edge (issue: "no OverflowError possible anywhere downstream"). A frame with
# a number outside these bounds is a bad frame: nothing of it is applied.
TS_MIN_MS = 0                   # exchange times (ts, T, cts) are ms since the epoch ...
TS_MAX_MS = 7_258_118_400_000   # ... before 2200-01-01
MAX_ID = 2**63 - 1              # u and seq fit a signed 64-bit integer (Parquet, JSON readers)
MAX_PRICE = 1e12                # quote units; the dearest instrument is ~1e5 ...
MAX_SIZE = 1e15                 # ... and sums of 1e5 such sizes or notionals stay far from float's range
_MAX_NUM_CHARS = 64             # a price or size string longer than this is not a number Bybit sends
_MAX_TRADE_ID_CHARS = 128
# Symbols as Bybit names them (BTCUSDT, 1000PEPEUSDT, BTC-27DEC24-100000-C): nothing that could
# carry a terminal escape or a path.
_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}\Z")


class BadReason(enum.StrEnum):
    """Why a frame is bad: a closed set, so counts keyed by reason stay bounded."""

    INVALID_JSON = "invalid JSON"
    NOT_OBJECT = "not a JSON object"
    MALFORMED_BOOK = "malformed orderbook frame"
    MALFORMED_TRADE = "malformed publicTrade frame"
    OUT_OF_RANGE = "number out of range"
    BAD_SYMBOL = "bad symbol in topic"
    UNKNOWN_SYMBOL = "symbol over the limit"   # set by the Monitor (max_symbols)


class _OutOfRange(ValueError):
    pass


class _BadSymbol(ValueError):
    pass


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


class TradesFields(NamedTuple):
    """A validated ``publicTrade.{symbol}`` frame, before it becomes a :class:`TradeBatch`."""

    symbol: str
    ts_ms: int
    trades: list[Trade]


def route(raw: str | bytes, recv_ns: int) -> BookFields | TradesFields | Event:
    """The one dispatch of a raw frame, shared by :func:`parse_frame` and ``Monitor.feed``.

    Book and trade frames come out as validated fields (:class:`BookFields`,
    :class:`TradesFields`), so the Monitor's hot path builds no event; everything else comes
    out as its event. Never raises: a malformed frame is a :class:`BadFrame` whose ``reason`` is
    one of :class:`BadReason` (the offending value is in ``detail``, never in ``reason``).
    """
    try:
        msg = _loads(raw)
    except (_JSONDecodeError, TypeError):
        return BadFrame(recv_ns, BadReason.INVALID_JSON, _excerpt(raw) if isinstance(raw, (str, bytes)) else "")
    if type(msg) is not dict:
        return BadFrame(recv_ns, BadReason.NOT_OBJECT, _excerpt(raw))
    topic = msg.get("topic")
    ts = msg.get("ts")
    if type(topic) is str:
        try:
            if topic.startswith("orderbook."):
                f = book_fields(msg, topic)
                if f is not None:
                    return f
            elif topic.startswith("publicTrade."):
                ts, trades = trade_fields(msg, topic)
                return TradesFields(_trade_symbol(topic), ts, trades)
            if type(ts) is int and not TS_MIN_MS <= ts < TS_MAX_MS:
                raise _OutOfRange(f"ts {ts} out of range")
        except _OutOfRange as exc:
            return BadFrame(recv_ns, BadReason.OUT_OF_RANGE, _excerpt(raw), _detail(exc))
        except _BadSymbol as exc:
            return BadFrame(recv_ns, BadReason.BAD_SYMBOL, _excerpt(raw), _detail(exc))
        except _MALFORMED as exc:
            reason = BadReason.MALFORMED_BOOK if topic.startswith("orderbook.") else BadReason.MALFORMED_TRADE
            return BadFrame(recv_ns, reason, _excerpt(raw), _detail(exc))
        return OtherTopic(recv_ns, topic, ts if type(ts) is int else None)
    op = msg.get("op")
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


def parse_frame(raw: str | bytes, recv_ns: int) -> Event:
    """Turn one raw frame into one event. Never raises.

    Args:
        raw: the frame text exactly as received.
        recv_ns: local receive time in ns (``time.time_ns()`` at the source).
    """
    r = route(raw, recv_ns)
    cls = type(r)
    if cls is BookFields:
        symbol, depth, ts, cts, u, seq, is_snapshot, bids, asks = r  # type: ignore[misc]
        return BookUpdate(book_topic(symbol, depth), symbol, depth, recv_ns, ts, cts, u, seq, is_snapshot,
                          tuple(bids), tuple(asks))
    if cls is TradesFields:
        return TradeBatch(trade_topic(r.symbol), r.symbol, recv_ns, r.ts_ms, tuple(r.trades))  # type: ignore[union-attr]
    return r  # type: ignore[return-value]


def _detail(exc: BaseException) -> str:
    return str(exc)[:200]


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
    for level in side:
        # Checked before unpacking: the compiled core words unpacking errors differently.
        if type(level) is not list or len(level) != 2:
            raise TypeError("a level is not a [price, size] pair")
        p, s = level
        if type(p) is not str or type(s) is not str:
            raise TypeError("price and size must be strings")
        price = prices.get(p)
        if price is None:
            price = _checked_number(p, _OLD_PRICES, "price", MAX_PRICE)
        size = sizes.get(s)
        if size is None:
            size = _checked_number(s, _OLD_SIZES, "size", MAX_SIZE)
        out.append((price, size))
    # Only a side that is valid as a whole is remembered.
    for (p, s), (price, size) in zip(side, out):
        prices[p] = price
        sizes[s] = size
    return out


def _checked_number(text: str, old: dict[str, float], what: str, limit: float) -> float:
    """A price (``0 < x <= limit``) or size (``0 <= x <= limit``) string as a float: from the
    old cache generation when it is there, else parsed and range-checked.

    Raises:
        ValueError: not a number, or longer than ``_MAX_NUM_CHARS``.
        _OutOfRange: outside its range.
    """
    value = old.get(text)
    if value is None:
        if len(text) > _MAX_NUM_CHARS:
            raise ValueError(f"{what} string too long")
        value = float(text)
        # NaN fails the comparisons, so one test rejects NaN, inf, negatives, 1e308 and (for a
        # price) zero.
        if not (0.0 < value if what == "price" else 0.0 <= value) or not value <= limit:
            raise _OutOfRange(f"{what} {text[:40]!r} out of range")
    return value


class BookFields(NamedTuple):
    """A validated ``orderbook.{depth}.{symbol}`` frame, before it becomes a :class:`BookUpdate`."""

    symbol: str
    depth: int
    ts_ms: int
    cts_ms: int | None
    update_id: int
    seq: int
    is_snapshot: bool
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


_BOOK_TOPICS: dict[str, tuple[str, int] | None] = {}


def _book_topic(topic: str) -> tuple[str, int] | None:
    """(symbol, depth) of a book topic we interpret; None for others (``orderbook.rpi.X``).

    Raises:
        ValueError: the symbol is not one (see ``_SYMBOL_RE``); such topics are not cached.
    """
    parts = topic.split(".")
    if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()) or parts[1] != str(int(parts[1])):
        route = None
    else:
        if not _SYMBOL_RE.match(parts[2]):
            raise _BadSymbol(f"bad symbol {parts[2][:40]!r}")
        route = (parts[2], int(parts[1]))
    if len(_BOOK_TOPICS) > 100_000:
        _BOOK_TOPICS.clear()
    _BOOK_TOPICS[topic] = route
    return route


def _trade_symbol(topic: str) -> str:
    symbol = topic[12:]  # after "publicTrade."
    if not _SYMBOL_RE.match(symbol):
        raise _BadSymbol(f"bad symbol {symbol[:40]!r}")
    return symbol


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
    if type(cts) is not int:
        cts = None
    elif not TS_MIN_MS <= cts < TS_MAX_MS:
        raise _OutOfRange(f"cts {cts} out of range")
    if not (TS_MIN_MS <= ts < TS_MAX_MS and 0 <= u <= MAX_ID and 0 <= seq <= MAX_ID):
        raise _OutOfRange(f"ts/u/seq {ts}/{u}/{seq} out of range")
    return BookFields(route[0], route[1], ts, cts, u, seq, is_snapshot,  # type: ignore[index]
                      _levels(data["b"]), _levels(data["a"]))


def trade_fields(msg: dict, topic: str) -> tuple[int, list[Trade]]:
    """Validate a ``publicTrade.{symbol}`` frame: (ts_ms, trades).

    Raises:
        KeyError, TypeError, ValueError: the frame is malformed.
    """
    ts = msg["ts"]
    data = msg["data"]
    if type(ts) is not int or type(data) is not list:
        raise TypeError("ts must be an integer and data a list")
    if not TS_MIN_MS <= ts < TS_MAX_MS:
        raise _OutOfRange(f"ts {ts} out of range")
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
        if len(p) > _MAX_NUM_CHARS or len(v) > _MAX_NUM_CHARS or len(trade_id) > _MAX_TRADE_ID_CHARS:
            raise ValueError("trade field too long")
        if side == "Buy":
            is_buy = True
        elif side == "Sell":
            is_buy = False
        else:
            raise ValueError(f"unknown side {side!r}")
        price = float(p)
        size = float(v)
        if not (0.0 < price <= MAX_PRICE and 0.0 <= size <= MAX_SIZE and TS_MIN_MS <= fill_ms < TS_MAX_MS):
            raise _OutOfRange(f"trade T/p/v {fill_ms}/{p!r}/{v!r} out of range")
        append(Trade(fill_ms, is_buy, price, size, v, trade_id, t.get("BT") is True))
    return ts, trades
