"""What ``bybitmon watch`` draws under its header: the symbol table, the density screen or the
ladder, the help overlay and the footer, sized to the terminal.

I/O layer glue: reads the Monitor, the interactive :class:`~bybitmon.ui.screen.ScreenState`
and the wall clock (for the re-sort hysteresis); the drawing is :mod:`bybitmon.ui`'s.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from rich.console import Group
from rich.text import Text

from .. import ui
from ..core.monitor import Monitor
from ..core.screener import ScreenFilter, screen_densities
from ..ui.densities import density_screen
from ..ui.screen import HELP, ScreenState, footer_keys

__all__ = ["WatchScreen"]

# The table column a sort key orders by: kept on screen however narrow the terminal.
_SORT_COLUMN = {"tps": ("tps",), "tpm": ("tpm",), "spread": ("spread",), "imbalance": ("imb",),
                "vdelta": ("vdelta",), "heat": ("heat",)}


def _lines(text: str, width: int) -> int:
    """Lines ``text`` takes when wrapped at ``width`` (roughly: by cells)."""
    return sum(max(1, -(-len(line) // max(1, width))) for line in text.split("\n"))


class WatchScreen:
    """The body and footer of the live screen.

    Args:
        monitor: the pipeline (read only, besides what a snapshot does).
        state: the interactive state (modes, sort, selection...), also used without a keyboard.
        order: ``order(monitor, symbols, sort_key)``: every symbol in sort order now.
        symbols: the followed symbols.
        window_ms, bps: for the footer and the "window still filling" mark.
        interactive: keys are read (footer lists them); else the footer is as before keys.
        density_filter: the density screen's filters.
        quote: volume delta and depth in quote currency.
        clock: wall seconds, for the re-sort hysteresis (injectable for tests).
    """

    def __init__(self, monitor: Monitor, state: ScreenState, order: Callable[[Monitor, list[str], str], list[str]],
                 symbols: Sequence[str], *, window_ms: int, bps: float, interactive: bool,
                 density_filter: ScreenFilter = ScreenFilter(), quote: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.monitor = monitor
        self.state = state
        self.order = order
        self.symbols = list(symbols)
        self.window_ms = window_ms
        self.bps = bps
        self.interactive = interactive
        self.density_filter = density_filter
        self.quote = quote
        self.clock = clock
        self.first_ms: dict[str, int] = {}   # pipeline ms at which a symbol was first seen
        self._frozen = None                  # the body shown while paused
        self._widths: dict[str, dict[str, int]] = {}  # per view: column widths that only grow
        self._dens_cache: tuple | None = None  # (clock, sort, rows) of the last screener pass
        self.density_every_s = 1.0
        self._width = 0

    def _filling(self, symbols: Sequence[str]) -> set[str]:
        """Symbols whose trade window has not been full yet (seen for less than one window)."""
        m = self.monitor
        now = m.now_ms
        if now is None:
            return set(symbols)
        out = set()
        for s in symbols:
            if s in m.states:
                first = self.first_ms.setdefault(s, now)
                if now - first < self.window_ms:
                    out.add(s)
            else:
                out.add(s)
        return out

    def footer(self, width: int) -> Text:
        st = self.state
        info = f"window {self.window_ms / 1000:g}s  ·  depth ±{self.bps:g} bps"
        filling = st.mode != "densities" and bool(self._filling(self.symbols))
        if not self.interactive:
            if filling:
                info += f"  ·  {self.window_ms / 1000:g}s↑ dim: window still filling"
            return ui.footer(f"Ctrl-C quit  ·  sort: {st.sort}  ·  {info}")
        if width < 120:  # the keys first: the window and band are in the help
            info = ""
        if filling:
            info += ("  ·  " if info else "") + f"{self.window_ms / 1000:g}s↑ dim: window filling"
        text = footer_keys(st) + ("  ·  " + info if info else "")
        return Text(text, style="bold yellow" if st.paused else "dim")

    def body(self, *, width: int, height: int, statuses: dict[str, str], sparks: dict,
             firing: dict[str, set[str]] | None = None):
        """The part between the header and the footer, ``height`` lines at most."""
        st = self.state
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
        return {s: self.monitor.price_decimals(s) for s in symbols}

    def _table(self, width: int, height: int, statuses: dict[str, str], sparks: dict,
               firing: dict[str, set[str]]):
        m = self.monitor
        st = self.state
        fired = [f"{s} {r}" for s, rules in sorted(firing.items()) for r in sorted(rules)]
        alert_line = Text("alerts firing: " + "  ·  ".join(fired), style="bold red", no_wrap=True,
                          overflow="ellipsis") if fired else None
        page = max(1, height - 5 - (1 if alert_line else 0))
        ordered = self.order(m, self.symbols, st.sort)
        view = st.arrange(ordered, self.clock(), page)
        shown = view.shown
        snaps = [m.snapshot(s) for s in shown]
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
                                  latencies={s: m.latency(s) for s in shown}, sparks=sparks,
                                  decimals=self._decimals(shown), firing=set(firing),
                                  n_symbols=n, selected=st.selected if self.interactive else None,
                                  note=note, quote=self.quote, filling=self._filling(shown),
                                  widths=self._widths["table"], promote=_SORT_COLUMN.get(st.sort, ()))
        return Group(alert_line, table) if alert_line else table

    def _densities(self, width: int, height: int):
        m = self.monitor
        st = self.state
        now = self.clock()
        cached = self._dens_cache
        if cached is None or cached[1] != st.density_sort or now - cached[0] >= self.density_every_s:
            # The screener walks every density of every symbol: at most once a second, so a key
            # (a move, a page) redraws from these rows at once.
            cached = self._dens_cache = (now, st.density_sort, screen_densities(m, flt=self.density_filter,
                                                                                  sort=st.density_sort))
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
        m = self.monitor
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
