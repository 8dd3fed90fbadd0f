"""Fixed-width column formats, so a refreshed screen holds still.

Every function returns a string of exactly ``width`` cells (right-aligned) for any value it is
meant for, so a column's width does not change from one refresh to the next:

- prices keep the symbol's tick decimals (``65114.30``, never ``65114.3``);
- quantities and rates keep three significant digits with one suffix ladder
  (``1.23``, ``12.3``, ``123``, ``1.23k``, ``12.3k``, ``123k``, ``1.23M``, ``1.23G``);
- ratios and percentages keep fixed decimals;
- durations read ``59s``, ``4m05s``, ``2h07m``;
- the sparkline always fills its width (older samples scroll off the left).

A value that does not fit its width is never cut: the string grows rather than lie.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

__all__ = ["DASH", "fmt_price", "fmt_si", "fmt_fixed", "fmt_pct", "fmt_dur", "fmt_ratio", "spark", "fit_columns"]

DASH = "-"
_SPARK = "▁▂▃▄▅▆▇█"
_SUFFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))


def _missing(x: float | None) -> bool:
    return x is None or x != x


def fmt_price(x: float | None, decimals: int | None, width: int = 0) -> str:
    """``x`` with the tick's ``decimals`` (unknown decimals: 6 significant digits)."""
    if _missing(x):
        return DASH.rjust(width)
    if decimals is None:
        return _sig(x, 6).rjust(width)  # type: ignore[arg-type]
    return f"{x:.{decimals}f}".rjust(width)


def _sig(x: float, digits: int) -> str:
    if x == 0 or math.isinf(x):
        return "0" if x == 0 else str(x)
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{decimals}f}"


def fmt_si(x: float | None, width: int = 6, signed: bool = False) -> str:
    """Three significant digits, then k/M/G: ``0.135``, ``1.23``, ``12.3``, ``123``, ``1.23k``...

    Below 1 it keeps three decimals (``0.135``; ``0.000`` for a tiny non-zero value), so the
    column never switches to scientific notation. ``signed`` prefixes ``+`` to positive values.
    """
    if _missing(x):
        return DASH.rjust(width)
    if math.isinf(x):  # type: ignore[arg-type]
        return ("∞" if x > 0 else "-∞").rjust(width)  # type: ignore[operator]
    if x == 0:
        return "0".rjust(width)
    sign = "-" if x < 0 else ("+" if signed and x > 0 else "")  # type: ignore[operator]
    ax = abs(x)  # type: ignore[arg-type]
    suffix = ""
    for scale, s in _SUFFIXES:
        if ax >= scale * 0.9995:
            ax, suffix = ax / scale, s
            break
    if ax >= 99.95:
        body = f"{ax:.0f}"
    elif ax >= 9.995:
        body = f"{ax:.1f}"
    elif ax >= 0.9995 or suffix:
        body = f"{ax:.2f}"
    else:
        body = f"{ax:.3f}"
    if body == "1000" and suffix != "G":  # 999.6k rounds to 1000k: next suffix instead
        nxt = {"": "k", "k": "M", "M": "G"}[suffix]
        body, suffix = "1.00", nxt
    return (sign + body + suffix).rjust(width)


def fmt_fixed(x: float | None, decimals: int = 2, width: int = 6, signed: bool = False) -> str:
    """``x`` with ``decimals`` fixed decimals (``signed``: a ``+`` on positive values)."""
    if _missing(x):
        return DASH.rjust(width)
    return (f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}").rjust(width)


def fmt_pct(x: float | None, decimals: int = 2, width: int = 7) -> str:
    """A percentage: ``0.42%``."""
    if _missing(x):
        return DASH.rjust(width)
    return f"{x:.{decimals}f}%".rjust(width)


def fmt_ratio(x: float | None, width: int = 5) -> str:
    """A ratio around 1 (buy/sell): two decimals up to 99.99, then ``>99``."""
    if _missing(x):
        return DASH.rjust(width)
    if x >= 99.995:  # type: ignore[operator]
        return ">99".rjust(width)
    return f"{x:.2f}".rjust(width)


def fmt_dur(ms: float | None, width: int = 6) -> str:
    """A duration given in ms, whole seconds shown: ``0s``, ``59s``, ``4m05s``, ``2h07m``, ``3d04h``; ``∞``."""
    if ms is None or ms != ms:
        return DASH.rjust(width)
    if math.isinf(ms):
        return "∞".rjust(width)
    s = int(max(0.0, ms) // 1000)
    if s < 60:
        text = f"{s}s"
    elif s < 3600:
        text = f"{s // 60}m{s % 60:02d}s"
    elif s < 86_400:
        text = f"{s // 3600}h{s % 3600 // 60:02d}m"
    else:
        text = f"{s // 86_400}d{s % 86_400 // 3600:02d}h"
    return text.rjust(width)


def spark(values: Sequence[float], width: int = 16) -> str:
    """A sparkline of exactly ``width`` cells: the latest ``width`` values, newest on the right,
    scaled to their own maximum; missing history is blank on the left."""
    vals = list(values)[-width:] if width > 0 else []
    top = max(vals) if vals else 0.0
    if top <= 0:
        cells = _SPARK[0] * len(vals)
    else:
        cells = "".join(_SPARK[min(7, max(0, int(v / top * 7.999)))] for v in vals)
    return cells.rjust(width)


def fit_columns(columns: Sequence[tuple[str, str, int, int]], rows: Iterable[dict], width: int, *,
                min_widths: dict[str, int] | None = None, held: dict[str, int] | None = None,
                promote: Sequence[str] = ()) -> tuple[list[tuple[str, str]], list[int]]:
    """The columns of a box-drawn table that fit ``width`` cells, and their widths.

    Args:
        columns: ``(key, header, priority, _)`` in display order; a lower priority survives a
            narrower terminal, priority 0 is always kept.
        rows: the cells of each row drawn, keyed like ``columns`` (objects with ``cell_len``).
        width: the terminal's width.
        min_widths: a column is never narrower than this (e.g. while it shows only ``-``).
        held: widths kept across refreshes (the caller's dict, updated here): a column never
            narrows, so the screen does not shift when a wide value scrolls away.
        promote: columns kept whatever the width, as if of priority 0 (e.g. the sort column).

    Returns:
        ``([(key, header), ...] in display order, [width, ...])``. Columns are taken by priority
        while they fit, each costing its width plus a border and two spaces of padding; strictly
        in order, so no small low-priority column jumps the queue.
    """
    mins = min_widths or {}
    col_w = {k: max(len(h), mins.get(k, 0)) for k, h, _, _ in columns}
    for cells in rows:
        for k, c in cells.items():
            n = c.cell_len
            if n > col_w.get(k, n):
                col_w[k] = n
    if held is not None:
        for k, w in col_w.items():
            col_w[k] = held[k] = max(w, held.get(k, 0))
    used = 1
    keep: set[str] = set()
    for key, _, prio, _ in sorted(columns, key=lambda c: 0 if c[0] in promote else c[2]):
        need = col_w[key] + 3
        if used + need <= width or prio == 0 or key in promote:
            keep.add(key)
            used += need
        else:
            break
    kept = [(k, h) for k, h, _, _ in columns if k in keep]
    return kept, [col_w[k] for k, _ in kept]
