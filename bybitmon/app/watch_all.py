"""``bybitmon watch --all``: discover every instrument over REST, follow them all, rank them.

One :class:`Monitor` and one :class:`LiveFeed` per category (frames carry no category, and a
symbol such as BTCUSDT exists on linear and spot alike); the table merges their rows and labels
each with its category when more than one is shown. The instrument list is fetched again every
``rediscover_s`` (10 min by default): new listings are subscribed and delisted symbols dropped
without a restart. A failed first discovery is an error (one line, non-zero exit), never a
silently partial list; a failed refresh keeps the current list and says so.

I/O layer: owns the wall clock, the terminal and the sockets; the numbers come from the Monitors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

import orjson

from .. import ui
from ..core.monitor import Monitor
from ..core.protocol import book_topic, topic_symbol, trade_topic
from ..errors import printable
from ..errors import OutputError, RestError, UsageError
from ..transport.feed import LiveFeed
from ..transport.rest import rest_base
from .discovery import Instrument, diff_symbols, discover
from .emit import AlertSink, JsonEmitter, Output, status_line
from .files import check_outputs, open_append
from .live import LiveOptions, QuietWatch, Refusals, Stop, log_to
from .watch import _SORT_VALUES

__all__ = ["AllOptions", "run_watch_all", "order_rows", "CATEGORY_TAGS"]

log = logging.getLogger("bybitmon.discovery")

#: Row label suffix per category when several categories are shown: ``BTCUSDT/spot``.
CATEGORY_TAGS = {"linear": "lin", "spot": "spot", "inverse": "inv"}


@dataclass
class AllOptions:
    """What ``watch --all`` adds to :class:`LiveOptions` (whose ``symbols`` it ignores)."""

    base: LiveOptions
    categories: list[str] = field(default_factory=lambda: ["linear"])
    quote: str | None = None
    min_turnover: float | None = None
    top: int | None = None              # rows drawn at most (the table); --json emits everything
    rediscover_s: float = 600.0         # instrument list refresh period
    rest_timeout_s: float = 10.0
    rest_url: str | None = None         # REST base; None: derived from the WebSocket URL


class _Market:
    """One category: its Monitor, its feed, the symbols followed and what the server refused."""

    def __init__(self, category: str, opts: LiveOptions, stop: Stop, out: Output | None) -> None:
        self.category = category
        self.depth = opts.depth
        self.stop = stop
        self.out = out
        self.monitor = Monitor(category, opts.window_ms, opts.bps, opts.density_x, opts.min_notional)
        self.symbols: list[str] = []      # sorted; the same list object for the market's life
        self.emitter: JsonEmitter | None = None
        self.alerts: AlertSink | None = None
        self.refusals = Refusals([], stop, self._on_refused)
        self.feed = LiveFeed(self.monitor, url=opts.url, testnet=opts.testnet, depth=opts.depth,
                             on_frame=self._on_frame, on_subscribe_error=self.refusals, **opts.client_kwargs)
        self.quiet = QuietWatch(self.monitor, self.feed, self.symbols, opts.quiet_warn_s)

    def topics(self, symbols: list[str]) -> list[str]:
        return [t for s in symbols for t in (book_topic(s, self.depth), trade_topic(s))]

    def _on_frame(self, recv_ns: int, conn: str, raw: str) -> None:
        # Output errors are ours, not the network's: they end the command here.
        if self.emitter is not None and self.stop.error is None:
            try:
                self.emitter.maybe_emit()
            except OutputError as exc:
                self.stop.fail(exc)

    def _on_refused(self, topic: str, why: str) -> None:
        if self.out is not None and self.stop.error is None:
            try:
                self.out.write(status_line(topic_symbol(topic), topic, "refused", why, self.monitor.now_ms))
            except OutputError as exc:
                self.stop.fail(exc)

    async def follow(self, symbols: list[str]) -> tuple[list[str], list[str]]:
        """Subscribe what is new in ``symbols``, unsubscribe what is gone: ``(listed, delisted)``."""
        listed, delisted = diff_symbols(self.symbols, symbols)
        self.refusals.asked |= set(self.topics(listed))
        if delisted:
            gone = self.topics(delisted)
            self.refusals.asked -= set(gone)
            await self.feed.client.unsubscribe(gone)
        if listed:
            await self.feed.client.subscribe(self.topics(listed))
        self.symbols[:] = sorted(symbols)
        return listed, delisted


class _FollowedEmitter(JsonEmitter):
    """Snapshots of the followed symbols only (a delisted one's state stays in the Monitor)."""

    def __init__(self, market: _Market, interval_ms: int, out: Output | None, alerts: AlertSink | None) -> None:
        super().__init__(market.monitor, interval_ms, out, alerts)
        self.market = market

    def emit_all(self) -> None:
        m = self.monitor
        if self.write is not None:
            self.write(b"".join(orjson.dumps(m.snapshot(s)) + b"\n" for s in self.market.symbols))
        if self.alerts is not None:
            self.alerts.check(m)


def _relabel(snap, label: str):
    """``snap`` shown under ``label`` (the symbol with its category) in the table."""
    if dataclasses.is_dataclass(snap):
        return dataclasses.replace(snap, symbol=label)
    return dict(snap, symbol=label)


async def _discover_all(opts: AllOptions, base_url: str) -> dict[str, list[Instrument]]:
    found: dict[str, list[Instrument]] = {}
    for cat in opts.categories:
        found[cat] = await discover(cat, base_url, opts.quote, opts.min_turnover, timeout_s=opts.rest_timeout_s)
    return found


def _describe_filters(opts: AllOptions) -> str:
    parts = [f"quote {opts.quote}"] if opts.quote else []
    if opts.min_turnover is not None:
        parts.append(f"24h turnover >= {opts.min_turnover:g}")
    return f" with {' and '.join(parts)}" if parts else ""


def order_rows(markets: list[_Market], key: str) -> list[tuple[_Market, str]]:
    """Every followed (market, symbol) in row order for ``--sort key``: largest value first."""
    rows = [(m, s) for m in markets for s in m.symbols]
    if key == "symbol":
        return sorted(rows, key=lambda r: (r[1], r[0].category))
    value = _SORT_VALUES[key]
    return sorted(rows, key=lambda r: (-value(r[0].monitor, r[1]), r[1], r[0].category))


async def run_watch_all(opts: AllOptions, *, stdout: BinaryIO, stderr: TextIO, terminal: TextIO | None = None,
                        console=None) -> int:
    """Run ``bybitmon watch --all`` until Ctrl-C (or ``duration_s``); returns the exit status.

    Raises:
        RestError: the first discovery failed (no reply, HTTP error, retCode != 0, bad reply).
        UsageError: no instrument matches the filters.
        OutputError: stdout or the alerts file could not be written.
        SubscriptionError: the server refused subscriptions.
    """
    from rich.console import Console, Group
    from rich.live import Live

    w = opts.base
    check_outputs([("--alerts-out", w.alerts_out)], force=w.force, append=["--alerts-out"])
    base_url = opts.rest_url or rest_base(w.url or os.environ.get("BYBITMON_URL") or None, w.testnet)
    found = await _discover_all(opts, base_url)
    if not any(found.values()):
        raise UsageError(f"no {'/'.join(opts.categories)} instrument is trading{_describe_filters(opts)} "
                         f"at {printable(base_url)}")
    stop = Stop()
    out = Output(stdout, "stdout", flush=True)
    messages: deque[tuple[float, str]] = deque(maxlen=5)
    handler = log_to(stderr) if w.json else log_to(None, messages)
    alerts_file = Output(open_append(w.alerts_out), printable(w.alerts_out), flush=True) if w.alerts and w.alerts_out else None
    markets: list[_Market] = []
    for cat in opts.categories:
        if not found[cat]:
            log.warning("no %s instrument is trading%s; %s is not followed", cat, _describe_filters(opts), cat)
            continue
        m = _Market(cat, w, stop, out if w.json else None)
        if w.alerts:
            bell = stderr if w.bell and stderr.isatty() else None
            m.alerts = AlertSink(w.alerts, file=alerts_file, stdout=out if w.json else None, bell=bell)
        if w.json or m.alerts is not None:
            m.emitter = _FollowedEmitter(m, w.interval_ms, out if w.json else None, m.alerts)
        markets.append(m)
    several = len(markets) > 1
    console = console or Console(file=terminal)
    sparks: dict[tuple[str, str], deque] = {}
    rate: deque = deque(maxlen=2)
    source = printable(base_url)

    def label(m: _Market, sym: str) -> str:
        return f"{sym}/{CATEGORY_TAGS.get(m.category, m.category)}" if several else sym

    def statuses(m: _Market) -> dict[str, str]:
        res: dict[str, str] = {}
        for c in m.feed.client.conns:
            h = c.health
            if h.state in ("reconnecting", "connecting"):
                text = f"reconnecting {h.reconnects}" if h.state == "reconnecting" else "connecting"
                for t in c.topics:
                    res[label(m, topic_symbol(t))] = text
        for sym, text in m.refusals.symbol_errors().items():
            res[label(m, sym)] = text
        return res

    def render():
        now = time.monotonic()
        frames = sum(m.feed.frames for m in markets)
        rate.append((now, frames))
        fps = (rate[-1][1] - rate[0][1]) / (rate[-1][0] - rate[0][0]) if len(rate) == 2 and rate[-1][0] > rate[0][0] else 0.0
        states = []
        for m in markets:
            hs = m.feed.health
            worst = next((s for s in ("reconnecting", "connecting") if any(h.state == s for h in hs)), "connected")
            states.append((f"{m.category} x{len(hs)}", worst, sum(h.reconnects for h in hs)))
        down = any(h.state != "connected" for m in markets for h in m.feed.health)
        recent = [msg for t, msg in messages if down or now - t < 15]
        errs = [printable(e, 300) for m in markets for e in m.feed.errors[-2:]][-2:] + recent[-1:]
        n = sum(len(m.symbols) for m in markets)
        head = ui.header(source=source, states=states, frames_per_s=fps, symbols=n, errors=errs)
        max_rows = max(1, console.height - 8)
        if opts.top is not None:
            max_rows = min(max_rows, opts.top)
        rows = order_rows(markets, w.sort)[:max_rows]
        drawn, lat, dps, st, sp = [], {}, {}, {}, {}
        firing: set[str] = set()
        for m in markets:
            st.update(statuses(m))
        for m, s in rows:
            key = label(m, s)
            snap = m.monitor.snapshot(s)
            drawn.append(_relabel(snap, key) if several else snap)
            lat[key] = m.monitor.latency(s)
            dps[key] = m.monitor.price_decimals(s)
            sp[key] = sparks.get((m.category, s), ())
            if m.alerts is not None and m.alerts.engine.firing(s):
                firing.add(key)
        body = ui.activity_table(drawn, width=console.width, statuses=st, latencies=lat, sparks=sp,
                                 decimals=dps, firing=firing or None, max_rows=max_rows, n_symbols=n,
                                 promote=("heat",) if w.sort == "heat" else ())
        top = f"  ·  top {opts.top}" if opts.top is not None else ""
        return Group(head, body, ui.footer(f"Ctrl-C quit  ·  sort: {w.sort}{top}  ·  window {w.window_ms / 1000:g}s"
                                           f"  ·  depth ±{w.bps:g} bps"))

    async def rediscover() -> None:
        while True:
            await asyncio.sleep(opts.rediscover_s)
            try:
                again = await _discover_all(opts, base_url)
            except RestError as exc:
                log.warning("instrument refresh failed, keeping the current list: %s", exc)
                continue
            for m in markets:
                listed, delisted = await m.follow([i.symbol for i in again.get(m.category, [])])
                for s in delisted:
                    sparks.pop((m.category, s), None)
                if listed or delisted:
                    log.warning("%s instruments: %d listed%s, %d delisted%s", m.category,
                                len(listed), f" ({', '.join(listed[:5])})" if listed else "",
                                len(delisted), f" ({', '.join(delisted[:5])})" if delisted else "")

    def check_fatal() -> None:
        for m in markets:
            if m.feed.fatal is not None:
                stop.fail(m.feed.fatal)  # type: ignore[arg-type]
            m.quiet.check()

    n_symbols = sum(len(v) for v in found.values())
    refresh_s = w.refresh_s if n_symbols <= 20 else max(w.refresh_s, 0.5)
    refresher: asyncio.Task | None = None
    stop.install()
    try:
        for m in markets:
            await m.follow([i.symbol for i in found[m.category]])
            await m.feed.start()
        refresher = asyncio.create_task(rediscover(), name="bybitmon-rediscover")
        deadline = time.monotonic() + w.duration_s if w.duration_s else None
        next_sample = time.monotonic() + 1.0
        if w.json:
            while not stop.is_set and not (deadline and time.monotonic() >= deadline):
                await stop.wait(0.2)
                check_fatal()
        else:
            with Live(render(), console=console, auto_refresh=False, screen=False, transient=False) as live:
                while not stop.is_set and not (deadline and time.monotonic() >= deadline):
                    await stop.wait(refresh_s)
                    check_fatal()
                    if time.monotonic() >= next_sample:
                        next_sample += 1.0
                        for m in markets:
                            for s in m.symbols:
                                ts = m.monitor.trade_stats(s)
                                sparks.setdefault((m.category, s), deque(maxlen=180)).append(ts.tps if ts else 0.0)
                    live.update(render(), refresh=True)
    finally:
        stop.uninstall()
        if refresher is not None:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        for m in markets:
            await m.feed.stop()
        logging.getLogger("bybitmon").removeHandler(handler)
        for m in markets:
            if m.emitter is not None and w.json and stop.error is None:
                try:
                    m.emitter.emit_all()
                except OutputError as exc:
                    stop.fail(exc)
        if alerts_file is not None:
            try:
                alerts_file.close()
            except OutputError as exc:
                stop.fail(exc)
    return stop.outcome(*(m.refusals for m in markets))
