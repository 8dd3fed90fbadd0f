"""The density screen: one row per density across every followed symbol (a Rich ``Text``).

Built from :class:`~bybitmon.core.screener.DensityRow` values; never touches the Monitor.
Every column has a fixed format (:mod:`bybitmon.ui.fmt`), so the screen keeps its widths from
one refresh to the next; columns are dropped by priority when the terminal is narrow.
"""

from __future__ import annotations

from typing import Sequence

from rich.text import Text

from ..core.screener import DensityRow
from .fmt import fit_columns, fmt_dur, fmt_pct, fmt_price, fmt_si

__all__ = ["DENSITY_COLUMNS", "density_cells", "density_screen"]

# (key, header, priority, minimum width): lower priority numbers survive narrow terminals.
DENSITY_COLUMNS: list[tuple[str, str, int, int]] = [
    ("symbol", "symbol", 0, 10),
    ("side", "side", 0, 4),
    ("price", "price", 0, 10),
    ("dist", "dist%", 0, 6),
    ("size", "size", 5, 6),
    ("notional", "notional", 1, 8),
    ("xmed", "xmed", 2, 5),
    ("life", "life", 1, 6),
    ("eaten", "eaten", 3, 6),
    ("eta", "ETA", 2, 6),
    ("state", "state", 4, 12),
]
_LEFT = ("symbol", "side", "state")
_STATE_STYLE = {"active": "", "ending": "yellow", "eaten": "bold yellow", "pulled": "magenta"}


def density_cells(r: DensityRow, dp: int | None = None, quote: str = "") -> dict[str, Text]:
    """The cells of one density's row, keyed as in :data:`DENSITY_COLUMNS`."""
    live = r.state in ("active", "ending")
    side_style = "green" if r.side == "bid" else "red"
    eta = "" if r.eta_s is None else fmt_dur(r.eta_s * 1000, 0)
    if live and r.eta_s is None:
        eta = "∞"
    cells = {
        "symbol": Text(r.symbol, style="bold"),
        "side": Text(r.side, style=side_style),
        "price": Text(fmt_price(r.price, dp), style=side_style),
        "dist": Text(fmt_pct(r.distance_pct, 3, 0)),
        "size": Text(fmt_si(r.size, 0)),
        "notional": Text(quote + fmt_si(r.notional, 0).strip()),
        "xmed": Text(f"×{r.x_median:.0f}" if r.x_median < 999.5 else "×999+"),
        "life": Text(fmt_dur(r.lifetime_ms, 0)),
        "eaten": Text(fmt_pct(r.eaten_pct, 0, 0)),
        "eta": Text(eta),
        "state": Text(r.state, style=_STATE_STYLE.get(r.state, "dim")),
    }
    if not live:
        for k in ("symbol", "price", "dist", "size", "notional", "xmed", "life", "eaten"):
            cells[k].stylize("dim")
    return cells


def density_screen(rows: Sequence[DensityRow], *, width: int = 120, start: int = 0, stop: int | None = None,
                   selected: int | None = None, decimals: dict[str, int | None] | None = None,
                   title: str | None = None, total: int | None = None,
                   widths: dict[str, int] | None = None) -> Text:
    """The density screen's table: ``rows[start:stop]`` drawn, ``selected`` (an index into
    ``rows``) highlighted, columns dropped by priority to fit ``width``; ``widths``: column
    widths kept across refreshes (the caller's dict, updated here), so columns never narrow."""
    stop = len(rows) if stop is None else stop
    shown = [(i, rows[i]) for i in range(start, min(stop, len(rows)))]
    dps = decimals or {}
    cell_rows = [(i, density_cells(r, dps.get(r.symbol))) for i, r in shown]
    keep, widths = fit_columns(DENSITY_COLUMNS, (c for _, c in cell_rows), width,
                               min_widths={k: w for k, _, _, w in DENSITY_COLUMNS}, held=widths)

    def line(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    out = Text(no_wrap=True, overflow="crop")
    if title:
        out.append(title[:width] + "\n", style="italic")
    out.append(line("┏", "┳", "┓", "━") + "\n┃")
    for (key, header), w in zip(keep, widths):
        out.append(" " + (header.ljust(w) if key in _LEFT else header.rjust(w)) + " ", style="bold cyan")
        out.append("┃")
    out.append("\n" + line("┡", "╇", "┩", "━") + "\n")
    for i, cells in cell_rows:
        sel = i == selected
        out.append("│")
        for (key, _), w in zip(keep, widths):
            t = cells[key]
            gap = " " * (w - t.cell_len)
            if sel:
                t = t.copy()
                t.stylize("reverse")
            out.append(" ", style="reverse" if sel else None)
            if key not in _LEFT:
                out.append(gap, style="reverse" if sel else None)
            out.append_text(t)
            if key in _LEFT:
                out.append(gap, style="reverse" if sel else None)
            out.append(" ", style="reverse" if sel else None)
            out.append("│")
        out.append("\n")
    out.append(line("└", "┴", "┘", "─"))
    n = len(rows) if total is None else total
    if not rows:
        out.append("\nno density passes the filters yet", style="dim")
    elif start > 0 or stop < n:
        out.append(f"\nrows {start + 1}-{min(stop, n)} of {n}  (PgUp/PgDn)", style="dim")
    return out
