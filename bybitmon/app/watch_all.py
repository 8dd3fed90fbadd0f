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
import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import orjson

from .. import ui
from ..core.monitor import Monitor
from ..core.protocol import topic_symbol
from ..errors import RestError, UsageError
from ..transport.feed import LiveFeed
from ..transport.rest import rest_base
from .discovery import Instrument, diff_symbols, discover
from .watch import _SORT_VALUES, AlertSink, JsonEmitter, WatchOptions, _install_stop, _ListHandler, _wait

__all__ = ["AllOptions", "run_watch_all", "CATEGORY_TAGS"]

log = logging.getLogger("bybitmon.discovery")

#: Row label suffix per category when several categories are shown: ``BTCUSDT/spot``.
CATEGORY_TAGS = {"linear": "lin", "spot": "spot", "inverse": "inv"}


@dataclass
class AllOptions:
    """What ``watch --all`` adds to :class:`WatchOptions` (whose ``symbols`` it ignores)."""

    base: WatchOptions
    categories: list[str] = field(default_factory=lambda: ["linear"])
    quote: str | None = None
    min_turnover: float | None = None
    top: int | None = None              # rows drawn at most (the table); --json emits everything
    rediscover_s: float = 600.0         # instrument list refresh period
    rest_timeout_s: float = 10.0
    rest_url: str | None = None         # REST base; None: derived from the WebSocket URL


class _Market:
    """One category: its Monitor, its feed and the symbols followed."""

    def __init__(self, category: str, opts: WatchOptions, on_frame) -> None:
        self.category = category
        self.monitor = Monitor(category, opts.window_ms, opts.bps, opts.density_x, opts.min_notional)
        self.feed = LiveFeed(self.monitor, url=opts.url, testnet=opts.testnet, depth=opts.depth,
                             on_frame=on_frame, **opts.client_kwargs)
        self.symbols: list[str] = []
        self.emitter: JsonEmitter | None = None
        self.alerts: AlertSink | None = None

    async def follow(self, symbols: list[str]) -> tuple[list[str], list[str]]:
        """Subscribe what is new in ``symbols``, unsubscribe what is gone: ``(listed, delisted)``."""
        listed, delisted = diff_symbols(self.symbols, symbols)
        if delisted:
            await self.feed.client.unsubscribe(self.feed.topics_for(delisted))
        if listed:
            await self.feed.client.subscribe(self.feed.topics_for(listed))
        self.symbols = sorted(symbols)
        return listed, delisted


class _FollowedEmitter(JsonEmitter):
    """Snapshots of the followed symbols only (a delisted one's state stays in the Monitor)."""

    def __init__(self, market: _Market, interval_ms: int, out, alerts: AlertSink | None) -> None:
        super().__init__(market.monitor, interval_ms, out, alerts)
        self.market = market

    def emit_all(self) -> None:
        m = self.monitor
        if self.out is not None:
            self.out(b"".join(orjson.dumps(m.snapshot(s)) + b"\n" for s in self.market.symbols))
        if self.alerts is not None:
            self.alerts.check(m)


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


async def run_watch_all(opts: AllOptions, *, console=None) -> int:
    """Run ``bybitmon watch --all`` until Ctrl-C (or ``duration_s``); returns the exit status.

    Raises:
        RestError: the first discovery failed (no reply, HTTP error, retCode != 0, bad reply).
        UsageError: no instrument matches the filters.
    """
    from rich.console import Console, Group
    from rich.live import Live

    w = opts.base
    base_url = opts.rest_url or rest_base(w.url or _env_url(), w.testnet)
    found = await _discover_all(opts, base_url)
    if not any(found.values()):
        raise UsageError(f"no {'/'.join(opts.categories)} instrument is trading{_describe_filters(opts)} at {base_url}")
    stop = asyncio.Event()
    _install_stop(stop)
    messages: deque[tuple[float, str]] = deque(maxlen=5)
    handler: logging.Handler = _ListHandler(messages)
    if w.json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logging.getLogger("bybitmon").addHandler(handler)
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    markets: list[_Market] = []
    for cat in opts.categories:
        if not found[cat]:
            log.warning("no %s instrument is trading%s; %s is not followed", cat, _describe_filters(opts), cat)
            continue
        holder: list[_Market] = []
        m = _Market(cat, w, lambda *_, h=holder: h[0].emitter.maybe_emit() if h[0].emitter else None)
        holder.append(m)
        if w.alerts:
            m.alerts = AlertSink(w.alerts, path=w.alerts_out, to_stdout=w.json, bell=w.bell)
        if w.json or m.alerts is not None:
            m.emitter = _FollowedEmitter(m, w.interval_ms, write if w.json else None, m.alerts)
        markets.append(m)
    several = len(markets) > 1
    console = console or Console()
    sparks: dict[tuple[str, str], deque] = {}
    rate: deque = deque(maxlen=2)

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
        for t in m.feed.client.failed:
            res[label(m, topic_symbol(t))] = "error: refused"
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
        errs = [e for m in markets for e in m.feed.errors[-2:]][-2:] + recent[-1:]
        n = sum(len(m.symbols) for m in markets)
        head = ui.header(source=base_url, states=states, frames_per_s=fps, symbols=n, errors=errs)
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
            drawn.append(dict(snap, symbol=key) if several else snap)
            lat[key] = m.monitor.latency(s)
            dps[key] = m.monitor.price_decimals(s)
            sp[key] = sparks.get((m.category, s), ())
            if m.alerts is not None and m.alerts.engine.firing(s):
                firing.add(key)
        body = ui.activity_table(drawn, width=console.width, statuses=st, latencies=lat, sparks=sp,
                                 decimals=dps, firing=firing or None, max_rows=max_rows, n_symbols=n)
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

    n_symbols = sum(len(v) for v in found.values())
    refresh_s = w.refresh_s if n_symbols <= 20 else max(w.refresh_s, 0.5)
    refresher: asyncio.Task | None = None
    try:
        for m in markets:
            m.symbols = sorted(i.symbol for i in found[m.category])
            await m.feed.start(m.symbols)
        refresher = asyncio.create_task(rediscover(), name="bybitmon-rediscover")
        deadline = time.monotonic() + w.duration_s if w.duration_s else None
        next_sample = time.monotonic() + 1.0

        def running() -> bool:
            if stop.is_set() or any(m.feed.failed.is_set() for m in markets):
                return False
            return not (deadline and time.monotonic() >= deadline)

        if w.json:
            while running():
                await _wait(stop, markets[0].feed, 0.2)
        else:
            with Live(render(), console=console, auto_refresh=False, screen=False, transient=False) as live:
                while running():
                    await _wait(stop, markets[0].feed, refresh_s)
                    if time.monotonic() >= next_sample:
                        next_sample += 1.0
                        for m in markets:
                            for s in m.symbols:
                                ts = m.monitor.trade_stats(s)
                                sparks.setdefault((m.category, s), deque(maxlen=180)).append(ts.tps if ts else 0.0)
                    live.update(render(), refresh=True)
    finally:
        if refresher is not None:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        for m in markets:
            await m.feed.stop()
        logging.getLogger("bybitmon").removeHandler(handler)
    for m in markets:
        if m.emitter is not None and w.json:
            m.emitter.emit_all()
        if m.alerts is not None:
            m.alerts.close()
    for m in markets:
        if m.feed.fatal is not None:
            raise m.feed.fatal
    return 0


def _env_url() -> str | None:
    import os

    return os.environ.get("BYBITMON_URL") or None
