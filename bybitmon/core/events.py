"""Typed events produced by :mod:`bybitmon.core.protocol` from raw Bybit frames.

One event per frame. Wire names are translated here once (``"T"`` -> ``ts_ms``,
``"S"`` -> ``is_buy``, ``"v"`` -> ``size``); nothing past the parser indexes a dict
by a one-letter key. Units are in the names: ``_ns`` local receive time
(``time.time_ns()`` at the source, or from a recording), ``_ms`` exchange time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Union

__all__ = [
    "Trade",
    "TradeBatch",
    "BookUpdate",
    "SubscribeReply",
    "Pong",
    "OtherTopic",
    "UnknownFrame",
    "BadFrame",
    "Event",
    "Level",
]

Level = tuple[float, float]
"""(price, size); a size of 0.0 in a delta deletes the level."""


class Trade(NamedTuple):
    """One public trade. A NamedTuple, not a dataclass: it is the hottest type (Rich's Segment
    makes the same choice), and a batch can carry up to 1024 of them."""

    ts_ms: int          # "T": fill time, exchange ms
    is_buy: bool        # "S" == "Buy": the taker bought (lifted the ask)
    price: float        # "p"
    size: float         # "v", base units (contracts for inverse)
    size_str: str       # "v" as sent, kept for exact window sums
    trade_id: str       # "i"
    block: bool = False  # "BT"


# Don't subclass these. Stuff will break.
@dataclass(frozen=True, slots=True)
class TradeBatch:
    """A ``publicTrade.{symbol}`` frame: many trades, sorted by fill time."""

    topic: str
    symbol: str
    recv_ns: int
    ts_ms: int
    trades: tuple[Trade, ...]


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """An ``orderbook.{depth}.{symbol}`` frame."""

    topic: str
    symbol: str
    depth: int
    recv_ns: int
    ts_ms: int              # exchange "ts"
    cts_ms: int | None      # matching-engine time "cts" (comparable with trade ts_ms)
    update_id: int          # "u"; 1 means the exchange restarted the book
    seq: int | None         # cross sequence "seq"
    is_snapshot: bool
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class SubscribeReply:
    """A (un)subscribe acknowledgement; ``success`` False means the whole request was refused."""

    recv_ns: int
    op: str
    success: bool
    ret_msg: str
    req_id: str | int | None
    conn_id: str | None
    ts_ms: int | None = None    # acks carry no "ts" on Bybit; kept if one does


@dataclass(frozen=True, slots=True)
class Pong:
    """An answer to our application-level ``{"op":"ping"}``."""

    recv_ns: int
    conn_id: str | None
    req_id: str | int | None
    ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OtherTopic:
    """A data frame of a topic bybitmon does not interpret (tickers, kline, ...)."""

    recv_ns: int
    topic: str
    ts_ms: int | None


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A well-formed JSON object that is neither data nor a known control frame."""

    recv_ns: int
    ts_ms: int | None


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that could not be parsed; counted, never raised out of the pipeline.

    ``reason`` is one of a closed set (``protocol.BadReason``); ``detail`` says what exactly was
    wrong (it may quote the bad value, so it is kept as a capped sample, never as a key).
    """

    recv_ns: int
    reason: str
    excerpt: str
    detail: str = ""


Event = Union[TradeBatch, BookUpdate, SubscribeReply, Pong, OtherTopic, UnknownFrame, BadFrame]
