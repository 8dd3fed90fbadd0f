"""Rich renderables built from Monitor snapshots. Never mutates pipeline state."""

from __future__ import annotations

import math
from typing import Sequence

from rich.table import Table
from rich.text import Text

__all__ = ["fmt_num", "activity_table", "COLUMNS"]

# (key, header, priority): lower priority numbers survive narrow terminals.
COLUMNS: list[tuple[str, str, int]] = [
    ("symbol", "symbol", 0),
    ("last", "last", 1),
    ("mid", "mid", 5),
    ("spread", "spr bps", 2),
    ("tps", "TPS", 0),
    ("tpm", "TPM", 4),
    ("vdelta", "vol Δ", 1),
    ("ratio", "B/S", 3),
    ("imb", "imb", 2),
    ("depth", "depth ±bps", 6),
    ("density", "density", 3),
    ("ended", "last ended", 7),
    ("latency", "lat ms", 8),
    ("health", "health", 0),
]


def fmt_num(x: float | None, digits: int = 4) -> str:
    """Compact number: ``digits`` significant digits, thousands kept whole, ``-`` for None."""
    if x is None:
        return "-"
    if x != x or math.isinf(x):
        return str(x)
    ax = abs(x)
    if ax >= 10 ** digits:
        if ax >= 1e9:
            return f"{x / 1e9:.2f}G"
        if ax >= 1e6:
            return f"{x / 1e6:.2f}M"
        if ax >= 1e5:
            return f"{x / 1e3:.1f}k"
        return f"{x:.0f}"
    if ax == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(ax))))
    return f"{x:.{decimals}f}"


def _signed(x: float | None, digits: int = 4) -> Text:
    if x is None:
        return Text("-", style="dim")
    style = "green" if x > 0 else "red" if x < 0 else ""
    return Text(("+" if x > 0 else "") + fmt_num(x, digits), style=style)


def _health(snap: dict, status: str | None) -> Text:
    if status and status != "ok":
        return Text(status, style="bold red" if "reconnect" in status or "error" in status else "yellow")
    h = snap["health"]
    if not snap["book"]["ready"]:
        return Text("resyncing" if h["frames"] else "waiting", style="yellow")
    issues = h["gaps"] + h["crossed"]
    if issues:
        return Text(f"ok ({issues} resync)", style="green")
    return Text("ok", style="green")


def _density(d: dict | None) -> Text:
    if d is None:
        return Text("-", style="dim")
    style = "green" if d["side"] == "bid" else "red"
    return Text(f"{d['side']} {fmt_num(d['price'], 6)} ×{d['x_median']:.0f}", style=style)


def _ended(d: dict | None) -> Text:
    if d is None:
        return Text("-", style="dim")
    style = {"eaten": "bold yellow", "pulled": "magenta", "faded": "dim"}.get(d["state"], "")
    return Text(f"{d['side']} {fmt_num(d['price'], 6)} {d['state']}", style=style)


def row_cells(snap: dict, status: str | None = None, latency: tuple[float, float] | None = None) -> dict[str, Text | str]:
    """The cells of one symbol's row, keyed as in :data:`COLUMNS`."""
    t, b = snap["trades"], snap["book"]
    dens = snap["densities"]
    active = [d for d in dens if d["state"] == "active"]
    ended = [d for d in dens if d["state"] in ("eaten", "pulled", "faded")]
    stale = not b["ready"]
    depth = "-" if b["bid_depth"] is None else f"{fmt_num(b['bid_depth'], 3)}/{fmt_num(b['ask_depth'], 3)}"
    cells: dict[str, Text | str] = {
        "symbol": Text(snap["symbol"], style="bold dim" if stale else "bold"),
        "last": fmt_num(t["last_price"], 6),
        "mid": fmt_num(b["mid"], 6),
        "spread": fmt_num(b["spread_bps"], 3),
        "tps": fmt_num(t["tps"], 3),
        "tpm": fmt_num(t["tpm"], 4),
        "vdelta": _signed(t["volume_delta"]),
        "ratio": fmt_num(t["buy_sell_ratio"], 3),
        "imb": _signed(b["imbalance"], 2),
        "depth": depth,
        "density": _density(max(active, key=lambda d: d["x_median"]) if active else None),
        "ended": _ended(ended[0] if ended else None),
        "latency": "-" if latency is None else f"{latency[0]:.0f}/{latency[1]:.0f}",
        "health": _health(snap, status),
    }
    return cells


def activity_table(snaps: Sequence[dict], *, width: int = 200, title: str | None = None,
                   statuses: dict[str, str] | None = None,
                   latencies: dict[str, tuple[float, float] | None] | None = None) -> Table:
    """One row per symbol; columns dropped by priority so the table fits ``width``."""
    budget = {0: 10, 1: 10, 2: 8, 3: 18, 4: 8, 5: 11, 6: 16, 7: 22, 8: 9}
    cols, used = [], 0
    for key, header, prio in sorted(COLUMNS, key=lambda c: c[2]):
        need = max(budget.get(prio, 10), len(header) + 3)
        if key == "density":
            need = 22
        if used + need <= width or prio == 0:
            cols.append(key)
            used += need
    keep = [c for c in COLUMNS if c[0] in cols]
    table = Table(title=title, expand=False, pad_edge=False, header_style="bold cyan")
    for key, header, _ in keep:
        table.add_column(header, justify="left" if key in ("symbol", "density", "ended", "health") else "right",
                         no_wrap=True)
    for snap in snaps:
        sym = snap["symbol"]
        cells = row_cells(snap, (statuses or {}).get(sym), (latencies or {}).get(sym))
        table.add_row(*(cells[k] for k, _, _ in keep))
    return table
