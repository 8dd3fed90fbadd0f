"""Fault injection for :class:`~bybitmon.testserver.app.BybitServer`: the ``drop``, ``stall``,
``reject`` and ``inject`` calls, fault plans, and delivery of a topic's frames to a connection
whose stream is being corrupted. A mixin: the wire corruption itself is the sans-I/O
:class:`~bybitmon.testserver.faults.TopicFault`; this part decides who gets which frames.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

from ..core.limits import SERVED_CATEGORIES
from ..errors import UsageError
from .faults import INJECT_KINDS, NEXT_DELTA_KINDS, FaultKind, FaultPlan, TopicFault, fault_frame, plan_cumulative

if TYPE_CHECKING:
    from .app import _Connection

__all__ = ["FaultInjection"]


class FaultInjection:
    """Faults on demand and on a plan; mixed into ``BybitServer`` (uses its routes and sends)."""

    _routes: dict[str, dict[str, set[Any]]]
    _special: dict[str, dict[str, set[Any]]]
    _conns: dict[str, set[Any]]
    _tasks: list[asyncio.Task[Any]]
    fault_counts: dict[FaultKind, int]

    def _deliver_faulty(self, conn: _Connection, topic: str, raw: str) -> None:
        st = conn.faults.get(topic)
        if st is None:
            self._send(conn, raw)
            return
        for text in st.on_frame(raw, self.fault_counts):
            self._send(conn, text)
        if st.idle():
            self._clear_fault(conn, topic)

    def _fault_state(self, conn: _Connection, topic: str) -> TopicFault:
        st = conn.faults.get(topic)
        if st is None:
            st = conn.faults[topic] = TopicFault()
            self._special[conn.category].setdefault(topic, set()).add(conn)
        return st

    def _clear_fault(self, conn: _Connection, topic: str) -> None:
        if conn.faults.pop(topic, None) is None:
            return
        special = self._special[conn.category]
        odd = special.get(topic)
        if odd is not None:
            odd.discard(conn)
            if not odd:
                del special[topic]

    # -- faults ---------------------------------------------------------------------------

    async def drop(self, category: str | None = None) -> int:
        """Abruptly drop every connection (of one category, or all): TCP abort, no close frame.

        Returns:
            How many connections were dropped.
        """
        n = 0
        for cat in (SERVED_CATEGORIES if category is None else (category,)):
            for conn in list(self._conns[cat]):
                self._abort(conn)
                n += 1
        self.fault_counts["drop"] += n
        self._log(f"fault drop: {n} connection(s) aborted")
        await asyncio.sleep(0)
        return n

    def stall(self, category: str | None = None) -> int:
        """Existing connections (of one category, or all) get nothing from now on: no data, no
        pong, no ack. They stay open; new connections are served normally.

        Returns:
            How many connections were stalled.
        """
        n = 0
        for cat in (SERVED_CATEGORIES if category is None else (category,)):
            for conn in self._conns[cat]:
                if not conn.stalled:
                    conn.stalled = True
                    self._unroute(conn)
                    n += 1
        self.fault_counts["stall"] += n
        self._log(f"fault stall: {n} connection(s) get nothing more")
        return n

    def reject(self, symbol: str) -> None:
        """From now on, subscriptions naming ``symbol`` (any category) get a failure ack."""
        self._rejected.add(symbol)
        self.fault_counts["reject"] += 1
        self._log(f"fault reject: subscriptions to {symbol} fail from now on")

    def inject(self, kind: str, symbol: str, category: str = "linear") -> int:
        """Corrupt the wire stream of ``symbol``'s book topics (every depth) for every current subscriber.

        Kinds: ``duplicate`` (the next delta is sent twice), ``gap`` (the next delta is not
        sent), ``reorder`` (the next two deltas swap places), ``crossed`` (a delta with the
        next ``u`` whose best bid >= best ask, now), ``reset`` (the true book as a snapshot with
        ``u=1`` now; the topic's following deltas on that connection are renumbered 2, 3, ...
        until it resubscribes), ``resend_snapshot`` (a snapshot of the true book with the
        current ``u``, now), ``malformed`` (a frame of broken JSON, now). The true book never
        changes.

        Returns:
            How many connections it was applied or scheduled on.

        Raises:
            UsageError: unknown kind, or a symbol with no book on ``category``.
        """
        if kind not in INJECT_KINDS:
            raise UsageError(f"unknown fault {kind!r}: use one of {', '.join(INJECT_KINDS)}")
        if category not in SERVED_CATEGORIES:
            raise UsageError(f"bad category {category!r}: use {', '.join(SERVED_CATEGORIES)}")
        topics = self.source.book_topics(category, symbol)
        if not topics:
            raise UsageError(f"no book of {symbol!r} on {category} to corrupt")
        return sum(self._inject_topic(category, topic, FaultKind(kind)) for topic in topics)

    def _inject_topic(self, category: str, topic: str, kind: FaultKind) -> int:
        subs = self._routes[category].get(topic)
        if not subs:
            return 0
        if kind in NEXT_DELTA_KINDS:
            for conn in subs:
                self._fault_state(conn, topic).pending.append(kind)
            self._log(f"fault {kind} on the next delta of {category} {topic} ({len(subs)} connection(s))")
            return len(subs)
        snap = self.source.snapshot_frame(category, topic)
        if snap is None:
            return 0
        n = 0
        for conn in list(subs):
            st = conn.faults.get(topic)
            text, after = fault_frame(kind, snap, st)
            if after is None and st is not None:
                self._clear_fault(conn, topic)
            elif after is not None and st is None:
                conn.faults[topic] = after
                self._special[category].setdefault(topic, set()).add(conn)
            self._send(conn, text)
            self.fault_counts[kind] += 1
            n += 1
        self._log(f"fault {kind} sent on {category} {topic} ({n} connection(s))")
        return n

    def apply_plan(self, plan: FaultPlan | None) -> None:
        """Run a :class:`FaultPlan` from now on (replacing any earlier one; None stops it)."""
        for task in [t for t in self._tasks if t.get_name().startswith("bybitmon-plan")]:
            task.cancel()
            self._tasks.remove(task)
        self._plan = plan
        self._plan_cum = []
        self._plan_total = 0.0
        if plan is None:
            return
        self._plan_rng = random.Random(f"bybitmon.faults:{plan.seed}")
        self._plan_cum, self._plan_total = plan_cumulative(plan.per_delta)
        for kind, every in plan.every_s.items():
            rng = random.Random(f"bybitmon.faults:{plan.seed}:{kind}")
            self._tasks.append(asyncio.create_task(self._timed_fault(kind, every, rng),
                                                   name=f"bybitmon-plan-{kind}"))

    async def _timed_fault(self, kind: str, every_s: float, rng: random.Random) -> None:
        while True:
            await asyncio.sleep(rng.expovariate(1.0 / every_s))
            if kind == "drop":
                await self.drop()
            elif kind == "stall":
                self.stall()
            else:
                book_topics = [(cat, t) for cat in SERVED_CATEGORIES
                               for t in self._routes[cat] if t.startswith("orderbook.")]
                if book_topics:
                    cat, topic = rng.choice(sorted(book_topics))
                    self._inject_topic(cat, topic, kind)
