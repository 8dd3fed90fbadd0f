"""``bybitmon watch --all``: discover every instrument over REST, follow them all, rank them.

One :class:`Monitor` and one :class:`LiveFeed` per category (frames carry no category, and a
symbol such as BTCUSDT exists on linear and spot alike); the screen is ``watch``'s own
(:class:`~bybitmon.app.screen.LiveScreen`, every key, the density screen, the ladder) over a
:class:`~bybitmon.app.board.Board` of every category, which labels rows with their category
when more than one is shown. The instrument list is fetched again every ``rediscover_s``
(10 min by default): new listings are subscribed and delisted symbols unsubscribed and
forgotten (their state leaves the Monitor) without a restart. A failed first discovery is an
error (one line, non-zero exit), never a silently partial list; a failed refresh keeps the
current list and says so.

I/O layer: owns the wall clock, the terminal and the sockets; the numbers come from the Monitors.
"""

from __future__ import annotations

import asyncio
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
from ..core.screener import SCREEN_SORTS, ScreenFilter
from ..errors import printable
from ..errors import OutputError, RestError, UsageError
from ..transport.feed import LiveFeed
from ..transport.rest import rest_base
from .discovery import Instrument, diff_symbols, discover
from .emit import AlertSink, JsonEmitter, Output, densities_line, status_line
from .files import check_outputs, open_append
from ..ui.screen import ScreenState
from .board import CATEGORY_TAGS, SORT_KEYS, Board
from .live import LiveOptions, QuietWatch, Refusals, Stop, log_to, row_statuses
from .screen import FrameRate, LiveScreen, WatchScreen

__all__ = ["AllOptions", "run_watch_all", "CATEGORY_TAGS"]

log = logging.getLogger("bybitmon.discovery")


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
        """Subscribe what is new in ``symbols``, unsubscribe what is gone and forget its state:
        ``(listed, delisted)``."""
        listed, delisted = diff_symbols(self.symbols, symbols)
        self.refusals.asked |= set(self.topics(listed))
        if delisted:
            gone = self.topics(delisted)
            self.refusals.asked -= set(gone)
            await self.feed.client.unsubscribe(gone)
        if listed:
            await self.feed.client.subscribe(self.topics(listed))
        self.symbols[:] = sorted(symbols)
        # A frame already in flight when a symbol was unsubscribed makes its state again:
        # whatever is not followed is forgotten at every refresh, not only what was delisted now.
        followed = set(self.symbols)
        for sym in [s for s in self.monitor.states if s not in followed]:
            self.monitor.forget(sym)
        return listed, delisted


class _FollowedEmitter(JsonEmitter):
    """Snapshots of the followed symbols only (a late frame of a delisted one may have made
    its state again until the next refresh forgets it), then the category's density screen
    as one ``{"type":"densities"}`` line, as ``watch --json`` writes it."""

    def __init__(self, market: _Market, interval_ms: int, out: Output | None, alerts: AlertSink | None,
                 density_filter: ScreenFilter = ScreenFilter()) -> None:
        super().__init__(market.monitor, interval_ms, out, alerts)
        self.market = market
        self.density_filter = density_filter

    def emit_all(self) -> None:
        m = self.monitor
        if self.write is not None:
            lines = b"".join(orjson.dumps(m.snapshot(s)) + b"\n" for s in self.market.symbols)
            self.write(lines + densities_line(m, self.density_filter, self.market.symbols))
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


async def run_watch_all(opts: AllOptions, *, stdout: BinaryIO, stderr: TextIO, terminal: TextIO | None = None,
                        console=None, terminal_in: TextIO | None = None) -> int:
    """Run ``bybitmon watch --all`` until Ctrl-C, ``q`` (or ``duration_s``); returns the exit status.

    The screen and its keys are ``watch``'s (:func:`~bybitmon.app.watch.run_watch`), over every
    followed symbol of every category; ``terminal_in``: where keys are read from (default stdin).

    Raises:
        RestError: the first discovery failed (no reply, HTTP error, retCode != 0, bad reply).
        UsageError: no instrument matches the filters.
        OutputError: stdout or the alerts file could not be written.
        SubscriptionError: the server refused subscriptions.
    """
    from rich.console import Console

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
            m.emitter = _FollowedEmitter(m, w.interval_ms, out if w.json else None, m.alerts, w.density_filter)
        markets.append(m)
    board = Board([m.monitor for m in markets])
    console = console or Console(file=terminal)
    rate = FrameRate()
    source = printable(base_url)

    def statuses() -> dict[str, str]:
        res: dict[str, str] = {}
        for m in markets:
            res.update(row_statuses(m.feed, m.refusals, lambda s, mon=m.monitor: board.label(mon, s)))
        return res

    def header():
        now = time.monotonic()
        fps = rate.update(sum(m.feed.frames for m in markets))
        states = []
        for m in markets:
            hs = m.feed.health
            worst = next((s for s in ("reconnecting", "connecting") if any(h.state == s for h in hs)), "connected")
            states.append((f"{m.category} x{len(hs)}", worst, sum(h.reconnects for h in hs)))
        down = any(h.state != "connected" for m in markets for h in m.feed.health)
        recent = [msg for t, msg in messages if down or now - t < 15]
        errs = [printable(e, 300) for m in markets for e in m.feed.errors[-2:]][-2:] + recent[-1:]
        return ui.header(source=source, states=states, frames_per_s=fps, symbols=len(board), errors=errs)

    def firing() -> dict[str, set[str]]:
        return {board.label(m.monitor, s): rules for m in markets if m.alerts is not None
                for s in m.symbols if (rules := m.alerts.engine.firing(s))}

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
                board.follow(m.category, m.symbols)
                if listed or delisted:
                    log.warning("%s instruments: %d listed%s, %d delisted%s", m.category,
                                len(listed), f" ({', '.join(listed[:5])})" if listed else "",
                                len(delisted), f" ({', '.join(delisted[:5])})" if delisted else "")

    def check_fatal() -> None:
        for m in markets:
            if m.feed.fatal is not None:
                stop.fail(m.feed.fatal)  # type: ignore[arg-type]
            m.quiet.check()

    state = ScreenState(SORT_KEYS, w.sort, tuple(SCREEN_SORTS))
    live = LiveScreen(state, terminal_in)
    screen = WatchScreen(board, state, window_ms=w.window_ms, bps=w.bps,
                         interactive=live.interactive(w.interactive, w.json), density_filter=w.density_filter,
                         quote=w.quote_units, top=opts.top)
    n_symbols = sum(len(v) for v in found.values())
    refresh_s = w.refresh_s if n_symbols <= 20 else max(w.refresh_s, 0.5)
    refresher: asyncio.Task | None = None
    stop.install()
    try:
        for m in markets:
            await m.follow([i.symbol for i in found[m.category]])
            board.follow(m.category, m.symbols)
            await m.feed.start()
        refresher = asyncio.create_task(rediscover(), name="bybitmon-rediscover")
        if w.json:
            deadline = time.monotonic() + w.duration_s if w.duration_s else None
            while not stop.is_set and not (deadline and time.monotonic() >= deadline):
                await stop.wait(0.2)
                check_fatal()
        else:
            await live.run(screen, console, stop, header=header, statuses=statuses, firing=firing, tick=check_fatal,
                           refresh_s=refresh_s, duration_s=w.duration_s)
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
