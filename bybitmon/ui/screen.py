"""What the interactive screen shows and how keys change it. Sans-I/O: keys and times in, state out.

:class:`ScreenState` holds the mode (symbol table, density screen, ladder), the help overlay,
the sort, the selection, the scroll position, the symbol filter, the pinned symbols and the
pause flag. It does not read the terminal or the clock: the I/O layer feeds it key names
(:mod:`bybitmon.ui.keys`) with :meth:`ScreenState.handle` and the wall time in seconds with
:meth:`ScreenState.arrange`, and draws what it says.

A screen that holds still:

- rows are re-sorted at most every ``resort_s`` seconds (or at once when the sort, the filter or
  a pin changes); in between, rows keep their order and a new row is slotted in where it ranks;
- the selection follows its row (a symbol, or a density's symbol/side/price), not a position,
  and at a re-sort the view scrolls so the selected row stays on the same screen line;
- pinned symbols stay at the top in the order they were pinned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Hashable, Sequence, TypeVar

__all__ = ["ScreenState", "View", "HELP", "MODES", "footer_keys"]

MODES = ("table", "densities", "ladder")
_K = TypeVar("_K", bound=Hashable)

HELP = """\
keys   q quit · ? help · Esc back / close · d table <-> densities · p pause
       s/S next / previous sort · ↑↓ or j/k select · PgUp/PgDn Home/End scroll
       Enter ladder of the selection (from the density screen: at that density)
       / filter symbols by substring (Enter keeps, Esc clears) · f pin / unpin
table
  TPS/TPM  trades per second / minute over the window (dim + 60s↑: filling)
  spr bps  best ask - best bid, in basis points of the mid
  vol Δ    taker buy - taker sell volume in the window (--quote-units: x price)
  B/S      taker buy volume / taker sell volume (>1: buyers lift more)
  imb      depth imbalance within ±bps of the mid: (bid-ask)/(bid+ask), -1..+1
  heat     TPS of the last 10 s / the symbol's TPS over 15 min (1: as usual)
  depth    bid / ask depth within ±bps of the mid
  density  largest resting level, x its side's median; last ended: its fate
  lat ms   receive time - exchange time, p50/p99 ms (includes clock skew)
  alerts   a red row fired a rule; the line above the table names the rule
densities  one row per large resting order, across every symbol
  dist%  |price - last| / last · notional  price x size · xmed  size / median
  life   since it appeared · eaten  traded against it / its peak size
  ETA    size / (taker volume hitting its side over the window, per s); ∞: none"""


@dataclass(frozen=True, slots=True)
class View:
    """The rows to draw: ``rows`` is the whole ordered list, ``start:stop`` the part on screen,
    ``selected`` the index (in ``rows``) of the selected row, or None without rows."""

    rows: list
    start: int
    stop: int
    selected: int | None

    @property
    def shown(self) -> list:
        return self.rows[self.start:self.stop]


class _Holder(Generic[_K]):
    """An order that changes at most every ``every_s`` seconds, a selection that follows its
    row, and a scroll offset that keeps the selected row on its screen line."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.held: list[_K] = []   # the held order (without the pinned head)
        self.order: list[_K] = []  # what is drawn: head + held
        self.at = float("-inf")
        self.selected: _K | None = None
        self.chosen = False       # the user moved the selection: it follows its row
        self.offset = 0
        self.page = 10
        self.line = 0             # the selected row's screen line

    def force(self) -> None:
        """Re-sort at the next update."""
        self.at = float("-inf")

    def update(self, ranked: list[_K], now_s: float, head: Sequence[_K] = ()) -> list[_K]:
        if now_s - self.at >= self.every_s:
            self.held = list(ranked)
            self.at = now_s
        else:
            # Survivors keep their old relative order; a newcomer takes the slot it ranks at now.
            present = set(ranked)
            old = set(self.held)
            survivors = iter([k for k in self.held if k in present])
            self.held = [k if k not in old else next(survivors) for k in ranked]
        self.order = list(head) + self.held
        return self.order

    def view(self, page: int) -> tuple[int, int, int | None]:
        """``(start, stop, selected index)`` of the rows that fit ``page`` lines."""
        order = self.order
        n = len(order)
        self.page = page = max(1, page)
        top = max(0, n - page)
        if not n:
            self.offset = 0
            self.selected = None
            return 0, 0, None
        if self.chosen and self.selected in order:
            idx = order.index(self.selected)
            self.offset = max(0, min(top, idx - self.line))
            if idx >= self.offset + page:
                self.offset = idx - page + 1
            elif idx < self.offset:
                self.offset = idx
        else:
            # Nothing chosen (or the chosen row is gone): the selection is the top visible row.
            self.chosen = False
            self.offset = max(0, min(top, self.offset))
            idx = self.offset
            self.selected = order[idx]
        self.line = idx - self.offset
        return self.offset, min(n, self.offset + page), idx

    def move(self, delta: int, to_end: int = 0) -> None:
        """Move the selection by ``delta`` rows, or to the first (``to_end=-1``) or last (1) row."""
        order = self.order
        if not order:
            return
        idx = order.index(self.selected) if self.selected in order else self.offset
        if to_end < 0:
            idx = 0
        elif to_end > 0:
            idx = len(order) - 1
        else:
            idx = max(0, min(len(order) - 1, idx + delta))
        self.selected = order[idx]
        self.chosen = True
        if idx < self.offset:
            self.offset = idx
        elif idx >= self.offset + self.page:
            self.offset = idx - self.page + 1
        self.line = idx - self.offset


class ScreenState:
    """The interactive screen's state.

    Args:
        sort_keys: the symbol table's sort columns, in ``s`` order.
        sort: the initial one.
        density_sorts: the density screen's sort columns, in ``s`` order (the first is the default).
        mode: ``table``, ``densities`` or ``ladder``.
        ladder_symbol: the symbol of the ladder (``mode="ladder"``).
        resort_s: rows re-sort at most this often (wall seconds).
    """

    def __init__(self, sort_keys: Sequence[str], sort: str | None = None,
                 density_sorts: Sequence[str] = ("distance",), *, mode: str = "table",
                 ladder_symbol: str | None = None, resort_s: float = 3.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}")
        self.sort_keys = tuple(sort_keys)
        self.sort_index = self.sort_keys.index(sort) if sort in self.sort_keys else 0
        self.density_sorts = tuple(density_sorts)
        self.density_sort_index = 0
        self.mode = mode
        self.back: list[str] = ["table"] if mode == "ladder" else []
        self.help = False
        self.quit = False
        self.paused = False
        self.filter = ""
        self.editing = False
        self.pinned: list[str] = []
        self.ladder_symbol = ladder_symbol
        self.ladder_price: float | None = None
        self.table = _Holder[str](resort_s)
        self.dens = _Holder[tuple](resort_s)
        self.changes = 0  # bumped by every key that changed something (the I/O layer redraws)

    # -- reading --------------------------------------------------------------------------

    @property
    def sort(self) -> str:
        return self.sort_keys[self.sort_index]

    @property
    def density_sort(self) -> str:
        return self.density_sorts[self.density_sort_index]

    @property
    def selected(self) -> str | None:
        """The selected symbol of the current list."""
        if self.mode == "densities":
            return self.dens.selected[0] if self.dens.selected else None
        return self.table.selected

    def matches(self, symbol: str) -> bool:
        return not self.filter or self.filter.upper() in symbol.upper()

    def resort_due(self, now_s: float) -> bool:
        """Whether the symbol table re-sorts at ``now_s``: only then is the ranking read (in
        between, rows keep their held order), so the caller may rank only then."""
        return now_s - self.table.at >= self.table.every_s

    def arrange(self, ranked: Sequence[str], now_s: float, page: int) -> View:
        """The symbol table's rows: ``ranked`` is every symbol in sort order now; returns the
        filtered, pinned, held order and the part that fits ``page`` rows."""
        known = set(ranked)
        pins = [s for s in self.pinned if s in known and self.matches(s)]
        self.table.update([s for s in ranked if s not in self.pinned and self.matches(s)], now_s, pins)
        start, stop, sel = self.table.view(page)
        return View(self.table.order, start, stop, sel)

    def arrange_densities(self, rows: Sequence, now_s: float, page: int) -> View:
        """The density screen's rows (objects with ``key`` and ``symbol``), ranked now."""
        by_key = {}
        for r in rows:
            if self.matches(r.symbol):
                by_key.setdefault(r.key, r)
        order = self.dens.update(list(by_key), now_s)
        start, stop, sel = self.dens.view(page)
        return View([by_key[k] for k in order], start, stop, sel)

    # -- keys -----------------------------------------------------------------------------

    def handle(self, key: str) -> None:
        """Apply one key (a name from :mod:`bybitmon.ui.keys`)."""
        before = self._signature()
        self._handle(key)
        if self._signature() != before:
            self.changes += 1

    def _signature(self) -> tuple:
        return (self.mode, self.help, self.quit, self.paused, self.filter, self.editing, tuple(self.pinned),
                self.sort_index, self.density_sort_index, self.table.selected, self.table.offset,
                self.dens.selected, self.dens.offset, self.ladder_symbol, self.ladder_price)

    def _handle(self, key: str) -> None:
        if self.editing:
            if key == "enter":
                self.editing = False
            elif key == "esc":
                self.editing = False
                self.filter = ""
            elif key == "backspace":
                self.filter = self.filter[:-1]
            elif len(key) == 1 and key.isprintable():
                self.filter += key
            else:
                self._move(key)
                return
            self._refilter()
            return
        if key in ("q", "ctrl-c"):
            self.quit = True
        elif self.help:
            if key in ("?", "esc", "enter"):
                self.help = False
        elif key == "?":
            self.help = True
        elif key == "p":
            self.paused = not self.paused
        elif key == "esc":
            if self.mode == "ladder":
                self.mode = self.back.pop() if self.back else "table"
            elif self.filter:
                self.filter = ""
                self._refilter()
            elif self.mode == "densities":
                self.mode = "table"
        elif key == "d":
            self.mode = "table" if self.mode == "densities" else "densities"
            self.back = []
        elif key in ("s", "S"):
            step = 1 if key == "s" else -1
            if self.mode == "densities":
                self.density_sort_index = (self.density_sort_index + step) % len(self.density_sorts)
                self.dens.force()
            else:
                self.sort_index = (self.sort_index + step) % len(self.sort_keys)
                self.table.force()
        elif key == "/":
            self.editing = True
        elif key == "f":
            sym = self.ladder_symbol if self.mode == "ladder" else self.selected
            if sym is not None:
                if sym in self.pinned:
                    self.pinned.remove(sym)
                else:
                    self.pinned.append(sym)
                self.table.force()
        elif key == "enter":
            self._open_ladder()
        else:
            self._move(key)

    def _refilter(self) -> None:
        self.table.force()
        self.dens.force()

    def _holder(self) -> _Holder | None:
        return {"table": self.table, "densities": self.dens}.get(self.mode)

    def _move(self, key: str) -> None:
        h = self._holder()
        if h is None:
            return
        if key in ("down", "j"):
            h.move(1)
        elif key in ("up", "k"):
            h.move(-1)
        elif key == "pgdn":
            h.move(h.page)
        elif key == "pgup":
            h.move(-h.page)
        elif key == "home":
            h.move(0, -1)
        elif key == "end":
            h.move(0, 1)

    def _open_ladder(self) -> None:
        if self.mode == "table" and self.table.selected is not None:
            self.ladder_symbol, self.ladder_price = self.table.selected, None
        elif self.mode == "densities" and self.dens.selected is not None:
            sel = self.dens.selected  # (symbol, side, price, ...)
            self.ladder_symbol, self.ladder_price = sel[0], sel[2]
        else:
            return
        self.back.append(self.mode)
        self.mode = "ladder"


def footer_keys(state: ScreenState) -> str:
    """The key line under the screen for ``state``."""
    if state.editing:
        return f"filter: {state.filter}▏  Enter keep  Esc clear"
    parts = ["q/Ctrl-C quit", "? help"]
    if state.mode == "ladder":
        parts += ["Esc back", "d densities", "f pin"]
    else:
        sort = state.density_sort if state.mode == "densities" else state.sort
        parts += [f"s/S sort: {sort}", "↑↓/jk select", "PgUp/PgDn/Home/End", "Enter ladder",
                  "d " + ("table" if state.mode == "densities" else "densities"), "/ filter", "f pin"]
    parts.append("p resume" if state.paused else "p pause")
    text = "  ".join(parts)
    if state.filter:
        text += f"  ·  filter: {state.filter}"
    if state.paused:
        text = "PAUSED  " + text
    return text
