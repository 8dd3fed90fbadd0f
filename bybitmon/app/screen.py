"""The live screen of ``bybitmon watch`` and ``watch --all``: what it draws under its header
(the symbol table, the density screen or the ladder, the help overlay and the footer, sized to
the terminal) and the one loop that draws it and answers keys.

I/O layer glue: reads the Monitors through a :class:`~bybitmon.app.board.Board`, the
interactive :class:`~bybitmon.ui.screen.ScreenState`, the keyboard and the wall clock (for the
re-sort hysteresis); the drawing is :mod:`bybitmon.ui`'s.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from typing import TYPE_CHECKING, Callable, Sequence, TextIO

from rich.console import Group
from rich.text import Text

from .. import ui
from ..core.screener import ScreenFilter, sort_rows
from ..ui.densities import density_screen
from ..ui.screen import HELP, ScreenState, footer_keys
from .board import Board
from .keyboard import Keyboard

if TYPE_CHECKING:
    from .live import Stop

__all__ = ["WatchScreen", "LiveScreen", "FrameRate", "SPARK_SAMPLES"]

SPARK_SAMPLES = 180  # TPS sparkline history: one sample a second, 3 minutes

# While the screen runs, full (generation 2) collections are made rare: one walks every live
# container, and at 500 symbols (~120k objects, ~2M list slots: books, trade heaps, densities)
# it stopped the loop for 90-160 ms several times a minute, a stall of keys and drawing
# (bench/scale.py --watch-all, "GC" rows in BENCHMARKS.md). The young generations are still
# collected (less often: their pauses stay under ~40 ms); a full one comes after 2,000 young
# ones, hours apart at 500 symbols. Nearly everything the pipeline drops is freed by reference
# counting, not by the collector.
_SCREEN_GC_THRESHOLD = (700, 10, 10_000)

# The table column a sort key orders by: kept on screen however narrow the terminal.
_SORT_COLUMN = {"tps": ("tps",), "tpm": ("tpm",), "spread": ("spread",), "imbalance": ("imb",),
                "vdelta": ("vdelta",), "heat": ("heat",)}


class WatchScreen:
    """The body and footer of the live screen.

    Args:
        board: the followed rows (read only, besides what a snapshot does); its labels may
            change while the screen runs (``watch --all`` follows listings and delistings).
        state: the interactive state (modes, sort, selection...), also used without a keyboard.
        window_ms, bps: for the footer and the "window still filling" mark.
        interactive: keys are read (footer lists them); else the footer is as before keys.
        density_filter: the density screen's filters.
        quote: volume delta and depth in quote currency.
        top: draw at most this many table rows (``--top``; the others scroll into view).
        clock: wall seconds, for the re-sort hysteresis (injectable for tests).
    """

    def __init__(self, board: Board, state: ScreenState, *, window_ms: int, bps: float, interactive: bool,
                 density_filter: ScreenFilter = ScreenFilter(), quote: bool = False, top: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.board = board
        self.state = state
        self.top = top
        self.window_ms = window_ms
        self.bps = bps
        self.interactive = interactive
        self.density_filter = density_filter
        self.quote = quote
        self.clock = clock
        self.first_ms: dict[str, int] = {}   # pipeline ms at which a row's symbol was first seen
        self.sparks: dict[str, deque] = {}   # TPS samples per row, one a second (see sample())
        self._sampled_version = -1
        self._frozen = None                  # the body shown while paused
        self._widths: dict[str, dict[str, int]] = {}  # per view: column widths that only grow
        self._dens_cache: tuple | None = None  # (clock, sort, rows) of the last screener pass
        self._ranked: tuple | None = None      # (sort, board version, labels) of the last ranking
        self._rows: dict[str, tuple] = {}      # label -> (clock, snapshot, latency) of the rows drawn
        self.reuse_s = 0.2
        self.density_every_s = 1.0
        self._width = 0

    @property
    def symbols(self) -> list[str]:
        """The labels of every followed row."""
        return self.board.labels

    def sample(self) -> None:
        """One TPS sample per followed row for its sparkline (the loop calls it once a second);
        rows no longer followed lose their history."""
        board = self.board
        sparks = self.sparks
        if self._sampled_version != board.version:
            self._sampled_version = board.version
            keep = set(board.labels)
            for label in [k for k in sparks if k not in keep]:
                del sparks[label]
                self.first_ms.pop(label, None)
        for label in board.labels:
            d = sparks.get(label)
            if d is None:
                d = sparks[label] = deque(maxlen=SPARK_SAMPLES)
            d.append(board.tps(label))

    def _filling(self, symbols: Sequence[str]) -> set[str]:
        """Rows whose trade window has not been full yet (seen for less than one window)."""
        board = self.board
        now = board.now_ms
        if now is None:
            return set(symbols)
        out = set()
        first_ms = self.first_ms
        for s in symbols:
            first = first_ms.get(s)
            if first is None:
                if not board.has_data(s):
                    out.add(s)
                    continue
                first = first_ms[s] = now
            if now - first < self.window_ms:
                out.add(s)
        return out

    def footer(self, width: int) -> Text:
        st = self.state
        info = f"window {self.window_ms / 1000:g}s  ·  depth ±{self.bps:g} bps"
        filling = st.mode != "densities" and bool(self._filling(self.symbols))
        if not self.interactive:
            if filling:
                info += f"  ·  {self.window_ms / 1000:g}s↑ dim: window still filling"
            top = f"  ·  top {self.top}" if self.top is not None else ""
            return ui.footer(f"Ctrl-C quit  ·  sort: {st.sort}{top}  ·  {info}")
        if width < 120:  # the keys first: the window and band are in the help
            info = ""
        if filling:
            info += ("  ·  " if info else "") + f"{self.window_ms / 1000:g}s↑ dim: window filling"
        text = footer_keys(st) + ("  ·  " + info if info else "")
        return Text(text, style="bold yellow" if st.paused else "dim")

    def body(self, *, width: int, height: int, statuses: dict[str, str], sparks: dict | None = None,
             firing: dict[str, set[str]] | None = None):
        """The part between the header and the footer, ``height`` lines at most (rows keyed
        by label in ``statuses``, ``sparks`` (default: :meth:`sample`'s) and ``firing``)."""
        st = self.state
        if sparks is None:
            sparks = self.sparks
        if st.paused and self._frozen is not None:
            return self._frozen
        if width != self._width:  # a resized terminal lays the columns out afresh
            self._width = width
            self._widths = {"table": {}, "densities": {}, "ladder": {}}
        if st.help:
            body = Text(HELP, no_wrap=True, overflow="crop")
        elif st.mode == "densities":
            body = self._densities(width, height)
        elif st.mode == "ladder" and st.ladder_symbol is not None:
            body = self._ladder(width, height, statuses, sparks)
        else:
            body = self._table(width, height, statuses, sparks, firing or {})
        self._frozen = body if st.paused else None
        return body

    def _decimals(self, symbols) -> dict[str, int | None]:
        return {s: self.board.price_decimals(s) for s in symbols}

    def _table(self, width: int, height: int, statuses: dict[str, str], sparks: dict,
               firing: dict[str, set[str]]):
        m = self.board
        st = self.state
        fired = [f"{s} {r}" for s, rules in sorted(firing.items()) for r in sorted(rules)]
        alert_line = Text("alerts firing: " + "  ·  ".join(fired), style="bold red", no_wrap=True,
                          overflow="ellipsis") if fired else None
        page = max(1, height - 5 - (1 if alert_line else 0))
        if self.top is not None:
            page = min(page, self.top)
        now = self.clock()
        # Ranking reads every row's sort value (~10 ms at 500 rows); the held order only takes
        # it at a re-sort, or to slot in rows listed since.
        ranked = self._ranked
        if ranked is None or ranked[0] != st.sort or ranked[1] != m.version or st.resort_due(now):
            ranked = self._ranked = (st.sort, m.version, m.order(st.sort))
        view = st.arrange(ranked[2], now, page)
        shown = view.shown
        # A key redraws at once: rows read less than reuse_s ago are drawn from that reading
        # (a snapshot is most of a refresh's cost), timed refreshes read every row afresh.
        cache, rows = self._rows, {}
        for s in shown:
            hit = cache.get(s)
            rows[s] = hit if hit is not None and now - hit[0] < self.reuse_s else (now, m.snapshot(s), m.latency(s))
        self._rows = rows
        snaps = [rows[s][1] for s in shown]
        n = len(view.rows)
        note = None
        if self.interactive:
            if n < len(self.symbols) or view.start > 0 or view.stop < n:
                note = f"rows {view.start + 1 if n else 0}-{view.stop} of {n}"
                if n < len(self.symbols):
                    note += f" ({len(self.symbols) - n} filtered out)"
                if view.stop < n or view.start > 0:
                    note += "  (PgUp/PgDn)"
        table = ui.activity_table(snaps, width=width, statuses=statuses,
                                  latencies={s: rows[s][2] for s in shown}, sparks=sparks,
                                  decimals=self._decimals(shown), firing=set(firing),
                                  n_symbols=n, selected=st.selected if self.interactive else None,
                                  note=note, quote=self.quote, filling=self._filling(shown),
                                  widths=self._widths["table"], promote=_SORT_COLUMN.get(st.sort, ()))
        return Group(alert_line, table) if alert_line else table

    def _densities(self, width: int, height: int):
        st = self.state
        now = self.clock()
        cached = self._dens_cache
        if cached is None or now - cached[0] >= self.density_every_s:
            # The screener walks every density of every symbol: at most once a second, so a key
            # (a move, a page, another sort) redraws from these rows at once.
            cached = self._dens_cache = (now, st.density_sort, self.board.densities(self.density_filter,
                                                                                      st.density_sort))
        elif cached[1] != st.density_sort:
            rows = cached[2]
            n_live = sum(1 for r in rows if r.state in ("active", "ending"))  # live rows come first
            cached = self._dens_cache = (cached[0], st.density_sort,
                                         sort_rows(rows[:n_live], st.density_sort) + rows[n_live:])
        rows = cached[2]
        page = max(1, height - 6)
        view = st.arrange_densities(rows, now, page)
        live = sum(1 for r in view.rows if r.state in ("active", "ending"))
        f = self.density_filter
        parts = [f"densities: {live} live, {len(view.rows) - live} ended in the last {f.ended_ms / 1000:g}s",
                 f"sort {st.density_sort}"]
        if f.min_notional:
            parts.append(f"notional >= {f.min_notional:g}")
        if f.auto_notional is not None:
            parts.append(f"notional >= {f.auto_notional:g} x window turnover")
        if f.max_distance_pct is not None:
            parts.append(f"dist <= {f.max_distance_pct:g}%")
        if f.min_lifetime_ms:
            parts.append(f"life >= {f.min_lifetime_ms / 1000:g}s")
        return density_screen(view.rows, width=width, start=view.start, stop=view.stop,
                              selected=view.selected if self.interactive else None,
                              decimals=self._decimals({r.symbol for r in view.shown}),
                              title="  ·  ".join(parts), widths=self._widths["densities"])

    def _ladder(self, width: int, height: int, statuses: dict[str, str], sparks: dict):
        m = self.board
        st = self.state
        sym = st.ladder_symbol
        snap = m.snapshot(sym)  # type: ignore[arg-type]
        dp = m.price_decimals(sym)  # type: ignore[arg-type]
        row = ui.activity_table([snap], width=width, statuses=statuses, latencies={sym: m.latency(sym)},
                                sparks=sparks, decimals={sym: dp}, quote=self.quote,
                                filling=self._filling([sym]), widths=self._widths["ladder"])  # type: ignore[list-item]
        avail = height - 5
        # The recent fates below the ladder only when the ladder keeps 8+ levels a side.
        show_fates = ui.ladder_rows(avail - 10) >= 8
        rows = ui.ladder_rows(avail - (10 if show_fates else 0))
        depth = rows
        if st.ladder_price is not None:
            depth = 1000  # the focus may be deeper than the rows shown: pass the whole side
        levels = m.ladder_levels(sym, depth)  # type: ignore[arg-type]
        parts = [row, ui.ladder(sym, snap, levels, rows=rows, width=width, dp=dp, focus=st.ladder_price)]  # type: ignore[arg-type]
        if show_fates:
            parts.append(ui.fates(snap, dp=dp))
        return Group(*parts)


class FrameRate:
    """Frames per second of a frame counter, over at least ``min_s`` between readings (a key
    redraws at once: two draws a few ms apart would show a rate of 0 or of a burst)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, min_s: float = 0.5) -> None:
        self.clock = clock
        self.min_s = min_s
        self._last: tuple[float, int] | None = None
        self.per_s = 0.0

    def update(self, frames: int) -> float:
        now = self.clock()
        if self._last is None:
            self._last = (now, frames)
        elif now - self._last[0] >= self.min_s:
            self.per_s = (frames - self._last[1]) / (now - self._last[0])
            self._last = (now, frames)
        return self.per_s


class LiveScreen:
    """The loop that draws a :class:`WatchScreen` and answers keys, for ``watch`` and
    ``watch --all`` alike.

    Keys are applied to the state, and the screen redrawn, in the callback that read them (the
    keyboard reads stdin from the event loop), so a key waits for no other task: at 500 symbols
    a loop iteration can hold thousands of buffered frames, and waking the drawing task took
    several iterations. Otherwise the screen is redrawn every ``refresh_s``. Each TPS sparkline
    takes one sample a second.

    Args:
        state: the interactive state the keys change.
        terminal_in: where keys are read from (default stdin; keys only from a terminal).
    """

    def __init__(self, state: ScreenState, terminal_in: TextIO | None = None) -> None:
        self.state = state
        self.key = asyncio.Event()
        self.keyboard = Keyboard(self._on_key, terminal_in, after_keys=self._after_keys)
        self.stale = False                                # a key changed the state since the last draw
        self._draw: Callable[[], None] | None = None    # while run() shows the screen

    def _on_key(self, key: str) -> None:
        before = self.state.changes
        self.state.handle(key)
        if self.state.changes != before:
            self.stale = True
        self.key.set()  # wakes run(): to quit, or to redraw if not drawn below

    def _after_keys(self) -> None:
        if self._draw is not None and self.stale and not self.state.quit:
            self._draw()

    def interactive(self, asked: bool | None, json: bool) -> bool:
        """Whether keys are read: as ``asked``, else when not ``json`` and stdin is a terminal."""
        if asked is not None:
            return asked
        return not json and self.keyboard.is_terminal()

    async def run(self, screen: WatchScreen, console, stop: Stop, *, header: Callable[[], Text],
                  statuses: Callable[[], dict[str, str]] = dict,
                  firing: Callable[[], dict[str, set[str]]] = dict,
                  tick: Callable[[], None] = lambda: None, refresh_s: float = 0.25,
                  duration_s: float | None = None) -> None:
        """Draw until ``stop``, ``q`` or ``duration_s``; the terminal is restored on every exit.

        Args:
            header: the lines above the body (source, connections, frames/s, warnings).
            statuses: per row label, a health text that overrides the row's own.
            firing: per row label, the alert rules firing.
            tick: called at every wake-up before drawing (recording flushes, health checks).
        """
        from rich.live import Live

        def render():
            head = header()
            width = console.width
            foot = screen.footer(width)
            height = console.height - len(head.wrap(console, width)) - len(foot.wrap(console, width))
            body = screen.body(width=width, height=height, statuses=statuses(), firing=firing())
            return Group(head, body, foot)

        state = self.state
        deadline = time.monotonic() + duration_s if duration_s else None
        next_sample = time.monotonic() + 1.0
        if screen.interactive:
            self.keyboard.start()
        gc_threshold = gc.get_threshold()
        gc.set_threshold(*_SCREEN_GC_THRESHOLD)
        try:
            with Live(render(), console=console, auto_refresh=False, screen=False, transient=False) as live:

                def draw() -> None:
                    self.stale = False
                    live.update(render(), refresh=True)

                self._draw = draw
                next_draw = time.monotonic()
                while not stop.is_set and not state.quit:
                    if deadline and time.monotonic() >= deadline:
                        break
                    await _wait_key(stop, self.key, max(0.0, next_draw - time.monotonic()))
                    self.key.clear()
                    if state.quit:
                        break
                    tick()
                    if stop.is_set:
                        break
                    if time.monotonic() >= next_sample:
                        next_sample += 1.0
                        screen.sample()
                    if self.stale or time.monotonic() >= next_draw:
                        draw()
                        if time.monotonic() >= next_draw:
                            next_draw = time.monotonic() + refresh_s
        finally:
            self._draw = None
            gc.set_threshold(*gc_threshold)
            self.keyboard.stop()


async def _wait_key(stop: Stop, key: asyncio.Event, seconds: float) -> None:
    """Until a reason to stop or a key arrives, or ``seconds`` pass."""
    if stop.is_set or key.is_set():
        return
    waits = [asyncio.ensure_future(stop.event.wait()), asyncio.ensure_future(key.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
