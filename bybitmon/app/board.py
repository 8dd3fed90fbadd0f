"""What the live screen reads: the followed symbols of one Monitor or of several (one per
category), keyed by the row label the screen shows.

``watch SYMBOLS`` follows one category: a row's label is its symbol. ``watch --all
--category linear,spot`` follows several, each in its own :class:`Monitor` (frames carry no
category, and BTCUSDT exists on linear and spot alike): a row's label is ``BTCUSDT/lin``,
``BTCUSDT/spot``. :class:`Board` is a read-only view over them by label, offering what
:class:`~bybitmon.app.screen.WatchScreen` draws from: row order for a sort key, snapshots,
latencies, tick decimals, ladder levels and the density screen's rows.

I/O layer helper: it reads the Monitors (a snapshot is a pure read) and never feeds them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from ..core.monitor import Monitor
from ..core.screener import DensityRow, ScreenFilter, screen_densities, sort_rows
from ..core.snapshot import Snapshot

__all__ = ["Board", "CATEGORY_TAGS", "SORT_KEYS"]

#: Row label suffix per category when several categories are shown: ``BTCUSDT/spot``.
CATEGORY_TAGS = {"linear": "lin", "spot": "spot", "inverse": "inv"}

SORT_KEYS = ("tps", "tpm", "symbol", "spread", "imbalance", "vdelta", "volume", "heat")
_LIVE = ("active", "ending")


def _trade_value(pick):
    def value(monitor: Monitor, symbol: str) -> float:
        st = monitor.trade_stats(symbol)
        return pick(st) if st is not None else 0.0
    return value


def _book_value(pick):
    def value(monitor: Monitor, symbol: str) -> float:
        st = monitor.states.get(symbol)
        book = st.book if st is not None else None
        if book is None or not book.ready or book.mid is None:
            return -1.0  # not ready: shown as "-", sorted last
        v = pick(book, monitor.bps)
        return -1.0 if v is None else v
    return value


# What each --sort key orders by (largest first), read from the pipeline directly: the table
# sorts every symbol at every refresh, and a whole snapshot per symbol cost 60+ ms at 500 symbols.
# The values are the ones the snapshot shows (tests/test_ui.py checks the order against them).
_SORT_VALUES: dict[str, Callable[[Monitor, str], float]] = {
    "tps": _trade_value(lambda st: st.tps),
    "tpm": _trade_value(lambda st: st.tpm),
    "vdelta": _trade_value(lambda st: abs(st.volume_delta)),
    "volume": _trade_value(lambda st: st.buy_volume + st.sell_volume),
    "spread": _book_value(lambda book, bps: book.spread_bps),
    "imbalance": _book_value(lambda book, bps: None if (imb := book.depth(bps).imbalance) is None else abs(imb)),
    "heat": lambda monitor, symbol: 0.0 if (h := monitor.heat(symbol)) is None else h.heat,
}


class Board:
    """The followed symbols of one or several Monitors, by row label.

    Args:
        monitors: one Monitor per category (categories must differ).
        labelled: labels carry the category (``SYM/lin``); default: with several Monitors.
    """

    def __init__(self, monitors: Sequence[Monitor], labelled: bool | None = None) -> None:
        if not monitors:
            raise ValueError("a Board needs a Monitor")
        cats = [m.category for m in monitors]
        if len(set(cats)) != len(cats):
            raise ValueError(f"one Monitor per category, got {cats}")
        self.monitors = list(monitors)
        self.labelled = len(monitors) > 1 if labelled is None else labelled
        self.bps = monitors[0].bps
        self._by_category = {m.category: m for m in monitors}
        self._by_tag = {CATEGORY_TAGS.get(c, c): m for c, m in self._by_category.items()}
        self._followed: dict[str, list[str]] = {c: [] for c in cats}
        self._where: dict[str, tuple[Monitor, str]] = {}
        self._rows: list[tuple[str, Monitor, str]] = []   # (label, monitor, symbol) by (symbol, category)
        self.labels: list[str] = []                      # every followed row's label
        self.version = 0                                 # bumped when the followed set changes

    @classmethod
    def of(cls, monitor: Monitor, symbols: Sequence[str]) -> Board:
        """One Monitor following ``symbols`` (labels are the symbols)."""
        board = cls([monitor])
        board.follow(monitor.category, symbols)
        return board

    # -- what is followed ---------------------------------------------------------------------

    def label(self, monitor: Monitor, symbol: str) -> str:
        return f"{symbol}/{CATEGORY_TAGS.get(monitor.category, monitor.category)}" if self.labelled else symbol

    def follow(self, category: str, symbols: Sequence[str]) -> None:
        """Follow exactly ``symbols`` of ``category`` (rows of other symbols go away)."""
        self._followed[category] = list(dict.fromkeys(symbols))
        rows = []
        for m in self.monitors:
            rows += [(self.label(m, s), m, s) for s in self._followed[m.category]]
        rows.sort(key=lambda r: (r[2], r[1].category))
        self._rows = rows
        self._where = {label: (m, s) for label, m, s in rows}
        self.labels = [label for label, _, _ in rows]
        self.version += 1

    def followed(self, category: str) -> list[str]:
        return list(self._followed[category])

    def where(self, label: str) -> tuple[Monitor, str]:
        """The Monitor and symbol behind ``label`` (also for a label no longer followed)."""
        hit = self._where.get(label)
        if hit is not None:
            return hit
        if self.labelled and "/" in label:
            sym, tag = label.rsplit("/", 1)
            m = self._by_tag.get(tag)
            if m is not None:
                return m, sym
        return self.monitors[0], label

    def __len__(self) -> int:
        return len(self._rows)

    # -- reading ------------------------------------------------------------------------------

    @property
    def now_ms(self) -> int | None:
        """The latest pipeline clock of any Monitor (exchange ms); None before any data."""
        clocks = [m.now_ms for m in self.monitors if m.now_ms is not None]
        return max(clocks) if clocks else None

    def has_data(self, label: str) -> bool:
        """Whether a frame of ``label``'s symbol has arrived."""
        m, s = self.where(label)
        return s in m.states

    def order(self, key: str) -> list[str]:
        """Every followed label in row order for ``--sort key``: largest value first, then by
        symbol, then by category."""
        if key == "symbol":
            return list(self.labels)  # already by (symbol, category)
        value = _SORT_VALUES[key]
        # Python's sort is stable and the rows are by (symbol, category): one key is enough.
        return [r[0] for r in sorted(self._rows, key=lambda r: -value(r[1], r[2]))]

    def snapshot(self, label: str) -> Snapshot:
        """``label``'s snapshot, its ``symbol`` field being the label."""
        m, s = self.where(label)
        snap = m.snapshot(s)
        return snap if s == label else dataclasses.replace(snap, symbol=label)

    def latency(self, label: str) -> tuple[float, float] | None:
        m, s = self.where(label)
        return m.latency(s)

    def price_decimals(self, label: str) -> int | None:
        m, s = self.where(label)
        return m.price_decimals(s)

    def ladder_levels(self, label: str, rows: int = 12) -> dict:
        m, s = self.where(label)
        return m.ladder_levels(s, rows)

    def tps(self, label: str) -> float:
        m, s = self.where(label)
        st = m.trade_stats(s)
        return st.tps if st is not None else 0.0

    def densities(self, flt: ScreenFilter = ScreenFilter(), sort: str = "distance") -> list[DensityRow]:
        """The density screen's rows across every followed symbol (each Monitor at its own
        clock): live ones in ``sort`` order, then the ``flt.ended_max`` most recently ended."""
        if len(self.monitors) == 1 and not self.labelled:
            m = self.monitors[0]
            return screen_densities(m, flt=flt, symbols=self._followed[m.category], sort=sort)
        live: list[DensityRow] = []
        ended: list[DensityRow] = []
        for m in self.monitors:
            for r in screen_densities(m, flt=flt, symbols=self._followed[m.category], sort=sort):
                r = r._replace(symbol=self.label(m, r.symbol))
                (live if r.state in _LIVE else ended).append(r)
        ended.sort(key=lambda r: (-(r.ended_ms or 0), r.symbol, r.side, r.price))
        return sort_rows(live, sort) + ended[:flt.ended_max]
