"""One client connection of ``bybitmon serve`` as a sans-I/O state machine.

:class:`Session` takes the text of each request (``ping``, ``subscribe``, ``unsubscribe``) and
returns an :class:`Outcome`: the reply frame in the category's shape, and which topics to
start or stop routing. It applies Bybit's rules (10 args per spot request, 21,000 characters
of args per connection, one bad topic fails the whole request) without sockets, so they are
tested with strings in and strings out. Protocol reference:
https://bybit-exchange.github.io/docs/v5/ws/connect
"""

from __future__ import annotations

import os
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..core.limits import ARGS_CHARS_PER_CONN, SPOT_ARGS_PER_REQUEST

__all__ = ["Outcome", "Session", "conn_id", "topic_symbol"]

# Bybit's server is written in Go, whose JSON encoder escapes <, > and & inside strings
# (live spot error ack: "args size \u003e10", yufuquant/rust-bybit issue #24).
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
_MISSING: Any = object()


def conn_id() -> str:
    """A connection id shaped like the live ones (``d8bu1olkndm7crnfs1e0-j6akw``)."""
    head = "0123456789abcdefghijklmnopqrstuv"
    tail = "0123456789abcdefghijklmnopqrstuvwxyz"
    raw = os.urandom(25)
    return "".join(head[b & 31] for b in raw[:20]) + "-" + "".join(tail[b % 36] for b in raw[20:])


def topic_symbol(topic: str) -> str:
    """The symbol a topic names: its last dot-separated part."""
    return topic.rsplit(".", 1)[-1]


@dataclass(slots=True)
class Outcome:
    """What one request asks of the I/O layer.

    Attributes:
        reply: The ack, pong or error frame to send first.
        op: The request's ``op`` (``""`` when it had none or was not JSON).
        subscribed: Topics of an accepted subscribe, in request order without repeats; each book
            topic among them gets a fresh snapshot after the ack (a repeated subscribe is how a
            client resyncs).
        added: Topics among ``subscribed`` that were not subscribed before (start routing them).
        removed: Topics an unsubscribe ended (stop routing them).
        refused: Why a request was refused, for the server's log; None when it was not.
    """

    reply: str
    op: str = ""
    subscribed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: str | None = None


class Session:
    """The protocol state of one connection on ``/v5/public/{category}``.

    Args:
        category: ``spot``, ``linear`` or ``inverse`` (reply shapes differ).
        serves: ``serves(category, topic)``: whether the source publishes ``topic``.
        rejected: Symbols whose subscriptions fail (the ``reject`` fault).
        cid: Connection id; a random live-shaped one by default.
        allow_resends: ``allow_resends(n)``: whether a subscribe may resend ``n`` book snapshots
            (book topics already subscribed); when it says no, the whole request is refused.
            None allows every resend.
    """

    __slots__ = ("category", "conn_id", "topics", "args_chars", "_serves", "_rejected", "_allow_resends")

    def __init__(self, category: str, serves: Callable[[str, str], bool], rejected: Container[str] = (),
                 cid: str | None = None, allow_resends: Callable[[int], bool] | None = None) -> None:
        self.category = category
        self.conn_id = cid or conn_id()
        #: Subscribed topics, in subscription order.
        self.topics: dict[str, None] = {}
        #: Total length of the subscribed topics (Bybit's 21,000-character budget).
        self.args_chars = 0
        self._serves = serves
        self._rejected = rejected
        self._allow_resends = allow_resends

    def reply(self, success: bool, ret_msg: str, req_id: Any, op: str) -> str:
        """An ack or pong in the category's shape.

        Spot: ``{"success","ret_msg","conn_id",["req_id"],"op"}``, ``req_id`` only when sent;
        linear/inverse: ``req_id`` always, ``""`` when none was sent (live capture
        ``cryptofeed_linear_*.ndjson`` and the docs' examples).
        """
        msg: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": self.conn_id}
        if req_id is not _MISSING:
            msg["req_id"] = req_id
        elif self.category != "spot":
            msg["req_id"] = ""
        msg["op"] = op
        return orjson.dumps(msg).decode().translate(_GO_ESCAPES)

    def receive(self, text: str) -> Outcome:
        """Handle one request frame and say what to send and route."""
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if type(msg) is not dict:
            # Bad requests get an error frame and the connection stays open.
            why = "error:request is not a JSON object"
            return Outcome(orjson.dumps({"success": False, "ret_msg": why, "conn_id": self.conn_id,
                                         "op": ""}).decode(), refused=why)
        op = msg.get("op")
        req_id = msg.get("req_id", _MISSING)
        if op == "ping":
            return Outcome(self.reply(True, "pong", req_id, "ping"), op="ping")
        if op == "subscribe":
            return self._subscribe(msg.get("args"), req_id)
        if op == "unsubscribe":
            return self._unsubscribe(msg.get("args"), req_id)
        why = f"error:unsupported op {op!r}" if isinstance(op, str) else "error:missing op"
        name = op if isinstance(op, str) else ""
        return Outcome(self.reply(False, why, req_id, name), op=name, refused=why)

    def _refuse(self, why: str, req_id: Any, op: str) -> Outcome:
        return Outcome(self.reply(False, why, req_id, op), op=op, refused=why)

    def _subscribe(self, args: Any, req_id: Any) -> Outcome:
        category = self.category
        if type(args) is not list or not all(type(a) is str for a in args):
            return self._refuse("error:args must be a list of topic strings", req_id, "subscribe")
        if category == "spot" and len(args) > SPOT_ARGS_PER_REQUEST:
            # "Spot can input up to 10 args for each subscription request"; live reply:
            # {"success":false,"ret_msg":"args size \u003e10",...} (whole request refused).
            return self._refuse(f"args size >{SPOT_ARGS_PER_REQUEST}", req_id, "subscribe")
        serves = self._serves
        rejected = self._rejected
        for topic in args:
            if topic_symbol(topic) in rejected or not serves(category, topic):
                # One bad topic fails the whole request (pybit PR #373 repro: "error:handler not found").
                return self._refuse(f"error:handler not found,topic:{topic}", req_id, "subscribe")
        wanted = list(dict.fromkeys(args))
        new = [t for t in wanted if t not in self.topics]
        chars = self.args_chars + sum(len(t) for t in new)
        if chars > ARGS_CHARS_PER_CONN:
            return self._refuse(f"error:args length {chars} >{ARGS_CHARS_PER_CONN} on this connection",
                                req_id, "subscribe")
        resends = sum(1 for t in wanted if t in self.topics and t.startswith("orderbook."))
        if resends and self._allow_resends is not None and not self._allow_resends(resends):
            return self._refuse("error:too many snapshot requests, retry later", req_id, "subscribe")
        self.args_chars = chars
        for topic in new:
            self.topics[topic] = None
        return Outcome(self.reply(True, "subscribe" if category == "spot" else "", req_id, "subscribe"),
                       op="subscribe", subscribed=wanted, added=new)

    def _unsubscribe(self, args: Any, req_id: Any) -> Outcome:
        if type(args) is not list or not all(type(a) is str for a in args):
            return self._refuse("error:args must be a list of topic strings", req_id, "unsubscribe")
        removed = []
        for topic in dict.fromkeys(args):
            if topic in self.topics:
                del self.topics[topic]
                self.args_chars -= len(topic)
                removed.append(topic)
        return Outcome(self.reply(True, "unsubscribe" if self.category == "spot" else "", req_id, "unsubscribe"),
                       op="unsubscribe", removed=removed)
