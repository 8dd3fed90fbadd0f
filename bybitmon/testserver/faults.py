"""Faults of ``bybitmon serve``: the closed set of kinds, the plan grammar, and the sans-I/O
state machine that corrupts one connection's stream of one book topic.

Nothing here touches a socket or a clock: :class:`TopicFault` turns each source frame into the
frames a faulty server would put on the wire, and :func:`fault_frame` builds the frames sent
at once by ``crossed``, ``reset``, ``resend_snapshot`` and ``malformed``. The true book is never
changed by a fault.
"""

from __future__ import annotations

import enum
import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..core.activity import parse_window
from ..errors import UsageError

__all__ = [
    "FaultKind",
    "INJECT_KINDS",
    "FAULT_KINDS",
    "NEXT_DELTA_KINDS",
    "FaultPlan",
    "TopicFault",
    "fault_frame",
    "plan_cumulative",
    "book_frame",
    "is_delta",
    "renumber",
]


class FaultKind(enum.StrEnum):
    """Every fault ``serve`` can put on the wire (members compare equal to their names)."""

    DROP = "drop"                        # abort every connection: TCP reset, no close frame
    STALL = "stall"                      # existing connections get nothing more, stay open
    REJECT = "reject"                    # subscriptions naming a symbol fail from now on
    DUPLICATE = "duplicate"              # the next delta is sent twice
    GAP = "gap"                          # the next delta is not sent
    REORDER = "reorder"                  # the next two deltas swap places
    CROSSED = "crossed"                  # a delta with the next u whose best bid >= best ask
    RESET = "reset"                      # the true book as a u=1 snapshot, deltas renumbered
    RESEND_SNAPSHOT = "resend_snapshot"  # a snapshot of the true book with the current u
    MALFORMED = "malformed"              # a frame of broken JSON


#: Kinds accepted by ``BybitServer.inject``.
INJECT_KINDS: tuple[FaultKind, ...] = (
    FaultKind.DUPLICATE, FaultKind.GAP, FaultKind.REORDER, FaultKind.CROSSED, FaultKind.RESET,
    FaultKind.RESEND_SNAPSHOT, FaultKind.MALFORMED)
#: Every key of ``BybitServer.fault_counts``.
FAULT_KINDS: tuple[FaultKind, ...] = (FaultKind.DROP, FaultKind.STALL, FaultKind.REJECT, *INJECT_KINDS)
#: Kinds that act on the next delta(s) of a topic rather than at once.
NEXT_DELTA_KINDS = frozenset((FaultKind.DUPLICATE, FaultKind.GAP, FaultKind.REORDER))
_TIMED_ONLY = (FaultKind.DROP, FaultKind.STALL)
_PLAN_KINDS = (FaultKind.DROP, FaultKind.STALL, *INJECT_KINDS)
_DELTA_MARK = '"type":"delta"'
# A duration ends with its unit; a bare number is a fraction (probability per delta).
_HAS_UNIT = re.compile(r"(ms|s|m|h)\s*$")


def is_delta(raw: str) -> bool:
    """Whether a book frame is a ``delta`` (``type`` sits within the first ~120 characters)."""
    return raw.find(_DELTA_MARK, 0, 160) != -1


def renumber(raw: str, offset: int) -> str:
    """``raw`` with its book ``"u":N`` replaced by ``N - offset`` (the only ``"u":`` key)."""
    i = raw.find('"u":')
    if i < 0:
        return raw
    j = k = i + 4
    while raw[k].isdigit():
        k += 1
    return f"{raw[:j]}{int(raw[j:k]) - offset}{raw[k:]}"


def book_frame(topic: str, kind: str, ts: int, symbol: str, bids: list[list[str]],
               asks: list[list[str]], u: int, seq: int | None, cts: int | None, ts_first: bool) -> str:
    """A book frame in Bybit's key order: spot and level 1 put ``ts`` before ``type``."""
    data: dict[str, Any] = {"s": symbol, "b": bids, "a": asks, "u": u}
    if seq is not None:
        data["seq"] = seq
    if ts_first:
        frame: dict[str, Any] = {"topic": topic, "ts": ts, "type": kind, "data": data}
    else:
        frame = {"topic": topic, "type": kind, "ts": ts, "data": data}
    if cts is not None:
        frame["cts"] = cts
    return orjson.dumps(frame).decode()


@dataclass(slots=True)
class FaultPlan:
    """A seeded random fault schedule for soak runs.

    Grammar (comma-separated, each kind at most once)::

        spec     := item ("," item)*
        item     := kind "=" value
        kind     := drop | stall | duplicate | gap | reorder | crossed | reset
                    | resend_snapshot | malformed
        value    := duration | fraction
        duration := number ("ms" | "s" | "m" | "h")     e.g. 30s, 1.5m, 500ms
        fraction := number in [0, 1] without a unit     e.g. 0.01

    Durations go through :func:`bybitmon.core.activity.parse_window` (the one duration grammar
    of bybitmon), but only when they carry a unit: here a bare number is a fraction.
    A duration means "on average every that long" (exponential gaps): ``drop`` and ``stall``
    hit every connection, the other kinds one randomly chosen subscribed book topic. A
    fraction means "probability per delta frame" (each delta of a subscribed book topic draws
    once); ``drop`` and ``stall`` take durations only. The fractions may sum to at most 1.

    Attributes:
        every_s: kind -> mean interval, s.
        per_delta: kind -> probability per delta frame.
        seed: Seed of every random draw.
    """

    every_s: dict[FaultKind, float] = field(default_factory=dict)
    per_delta: dict[FaultKind, float] = field(default_factory=dict)
    seed: int = 1

    @classmethod
    def parse(cls, spec: str, seed: int = 1) -> FaultPlan:
        """Parse a plan such as ``"drop=30s,gap=0.01"``.

        Raises:
            UsageError: an unknown kind, a repeated kind or a bad value (one-line message).
        """
        plan = cls(seed=seed)
        if not spec.strip():
            raise UsageError("empty fault plan: use e.g. 'drop=30s,gap=0.01'")
        for item in (s.strip() for s in spec.split(",")):
            name, eq, value = item.partition("=")
            name, value = name.strip(), value.strip()
            if not eq or not name or not value:
                raise UsageError(f"bad fault {item!r}: use kind=value, e.g. gap=0.01 or drop=30s")
            try:
                kind = FaultKind(name)
            except ValueError:
                kind = None
            if kind not in _PLAN_KINDS:
                raise UsageError(f"unknown fault {name!r}: use one of {', '.join(_PLAN_KINDS)}")
            assert kind is not None
            if kind in plan.every_s or kind in plan.per_delta:
                raise UsageError(f"fault {name!r} given twice")
            if _HAS_UNIT.search(value):
                try:
                    plan.every_s[kind] = parse_window(value) / 1000.0
                except UsageError:
                    raise UsageError(f"bad fault {item!r}: use an interval > 0 such as 500ms, 30s or 2m") from None
                continue
            if kind in _TIMED_ONLY:
                raise UsageError(f"bad fault {item!r}: {name} takes an interval such as 30s or 2m")
            try:
                p = float(value)
            except ValueError:
                p = math.nan
            if not 0.0 <= p <= 1.0:
                raise UsageError(f"bad fault {item!r}: use an interval such as 30s or a probability in [0, 1]")
            if p > 0.0:
                plan.per_delta[kind] = p
        if sum(plan.per_delta.values()) > 1.0:
            raise UsageError("fault probabilities add up to more than 1")
        return plan

    def describe(self) -> str:
        """The plan in its own grammar, e.g. ``drop=30s,gap=0.01`` (for the banner)."""
        parts = [f"{k}={_fmt_s(s)}" for k, s in self.every_s.items()]
        parts += [f"{k}={p:g}" for k, p in self.per_delta.items()]
        return ",".join(parts)


def _fmt_s(seconds: float) -> str:
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms"
    return f"{ms // 1000}s"


class TopicFault:
    """Wire corruption pending or active on one (connection, book topic). Sans-I/O.

    :meth:`on_frame` takes each source frame of the topic and returns what goes on the wire,
    adding what it did to ``counts``.
    """

    __slots__ = ("pending", "held", "offset")

    def __init__(self) -> None:
        self.pending: deque[FaultKind] = deque()  # duplicate / gap / reorder, for the next deltas
        self.held: str | None = None  # a delta held back by "reorder"
        self.offset: int | None = None  # "reset": u sent = true u - offset

    def idle(self) -> bool:
        """Nothing pending or active: the connection can go back to the plain fan-out."""
        return not self.pending and self.held is None and self.offset is None

    def on_frame(self, raw: str, counts: dict[FaultKind, int]) -> list[str]:
        """The frames to send for source frame ``raw`` of this topic, in order."""
        if not is_delta(raw):
            # A source snapshot replaces the client's book: renumbering ends, a held delta
            # (older than the snapshot) goes out first.
            out = [] if self.held is None else [self.held]
            self.held = None
            self.offset = None
            out.append(raw)
            return out
        if self.offset is not None:
            raw = renumber(raw, self.offset)
        if self.held is not None:
            out = [raw, self.held]
            self.held = None
            counts[FaultKind.REORDER] += 1
            return out
        if not self.pending:
            return [raw]
        kind = self.pending.popleft()
        if kind is FaultKind.REORDER:
            self.held = raw  # sent after the next delta, counted then
            return []
        counts[kind] += 1
        if kind is FaultKind.DUPLICATE:
            return [raw, raw]
        return []  # gap: never sent, the client sees u jump by 2

    def resynced(self) -> None:
        """A snapshot with the true ``u`` went out: renumbering ends, a held delta is void."""
        self.held = None
        self.offset = None


def fault_frame(kind: FaultKind, snap: str, st: TopicFault | None) -> tuple[str, TopicFault | None]:
    """The frame a ``crossed``/``reset``/``resend_snapshot``/``malformed`` fault sends at once.

    Args:
        kind: One of the four kinds above.
        snap: A snapshot of the true book with the current ``u``.
        st: The connection's fault state of the topic, if any.

    Returns:
        ``(frame, state)``: the state to keep for the topic (``reset`` creates one; None means
        no state is needed).
    """
    offset = st.offset if st is not None and st.offset is not None else 0
    if kind is FaultKind.CROSSED:
        msg = orjson.loads(snap)
        data = msg["data"]
        # A bid at the best ask (or an ask at the best bid): bid >= ask.
        if data["a"]:
            b, a = [[data["a"][0][0], data["a"][0][1]]], []
        elif data["b"]:
            b, a = [], [[data["b"][0][0], data["b"][0][1]]]
        else:
            b, a = [["2", "1"]], [["1", "1"]]
        text = book_frame(msg["topic"], "delta", msg["ts"], data["s"], b, a, data["u"] + 1 - offset,
                          data.get("seq"), msg.get("cts"), ts_first=snap.find('"ts"') < snap.find('"type"'))
        return text, st
    if kind is FaultKind.RESET:
        # "u == 1 means the service restarted": the client must replace its book.
        u = orjson.loads(snap)["data"]["u"]
        st = st or TopicFault()
        st.held = None
        st.offset = u - 1
        return renumber(snap, u - 1), st
    if kind is FaultKind.RESEND_SNAPSHOT:
        # "A snapshot may arrive at any time": true u, so renumbering ends.
        if st is not None:
            st.resynced()
            if st.idle():
                st = None
        return snap, st
    if kind is FaultKind.MALFORMED:
        return snap[: max(20, len(snap) // 3)], st  # a frame cut off mid-way
    raise ValueError(f"{kind} is not sent at once")


def plan_cumulative(per_delta: dict[FaultKind, float]) -> tuple[list[tuple[float, FaultKind]], float]:
    """Cumulative probability edges of a plan's per-delta kinds, and their total."""
    out: list[tuple[float, FaultKind]] = []
    total = 0.0
    for kind, p in per_delta.items():
        total += p
        out.append((total, kind))
    return out, total

