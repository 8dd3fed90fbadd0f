"""Rich renderables built from Monitor snapshots. Never mutates pipeline state."""

from __future__ import annotations

import math
from typing import Sequence

from rich.table import Table
from rich.text import Text

from ..core.snapshot import ENDED_STATES, DensityState, DensityView, Side, Snapshot
from ..errors import printable
from . import fmt

_ACTIVE = DensityState.ACTIVE
_SHOWN_ON_LADDER = (DensityState.ACTIVE, DensityState.ENDING)

MID_RULE = "── mid ──"
LADDER_FRAME = 11  # a four-column table: five rules, one space either side of the three inner ones

__all__ = ["MID_RULE", "fmt_num", "fmt_price", "activity_table", "row_cells", "sparkline", "header", "footer", "ladder",
           "ladder_rows", "fates", "COLUMNS", "LADDER_FRAME"]

# (key, header, priority, width): lower priority numbers survive narrow terminals; width is
# what the column typically needs on screen, borders included.
COLUMNS: list[tuple[str, str, int, int]] = [
    ("symbol", "symbol", 0, 10),
    ("last", "last", 1, 10),
    ("mid", "mid", 7, 11),
    ("spread", "spr bps", 2, 10),
    ("tps", "TPS", 0, 8),
    ("tpm", "TPM", 3, 6),
    ("spark", "TPS trend", 6, 12),
    ("vdelta", "vol Δ", 1, 9),
    ("ratio", "B/S", 4, 8),
    ("imb", "imb", 2, 9),
    ("heat", "heat", 6, 7),
    ("depth", "depth ±bps", 4, 13),
    ("density", "density", 3, 17),
    ("ended", "last ended", 5, 21),
    ("latency", "lat ms", 8, 9),
    ("health", "health", 0, 10),
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
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_price(x: float | None, decimals: int | None, digits: int = 6) -> str:
    """A price with the tick's decimals seen on the wire (``65114.30``), else compact."""
    if x is None:
        return "-"
    if decimals is None:
        return fmt_num(x, digits)
    return f"{x:.{decimals}f}"


def _signed(x: float | None, digits: int = 4) -> Text:
    if x is None:
        return Text("-", style="dim")
    style = "green" if x > 0 else "red" if x < 0 else ""
    return Text(("+" if x > 0 else "") + fmt_num(x, digits), style=style)


def _signed_fixed(text: str, x: float | None) -> Text:
    """A fixed-format signed cell: green above zero, red below, dim without a value."""
    if x is None:
        return Text(text, style="dim")
    return Text(text, style="green" if x > 0 else "red" if x < 0 else "")


def _health(snap: Snapshot, status: str | None) -> Text:
    if status and status != "ok":
        return Text(status, style="bold red" if "reconnect" in status or "error" in status else "yellow")
    h = snap.health
    if not snap.book.ready:
        return Text("resyncing" if h.frames else "waiting", style="yellow")
    issues = h.gaps + h.crossed
    if issues:
        return Text(f"ok ({issues} resync)", style="green")
    return Text("ok", style="green")


def _density(d: DensityView | None, dp: int | None) -> Text:
    if d is None:
        return Text("-", style="dim")
    style = "green" if d.side is Side.BID else "red"
    return Text(f"{d.side} {fmt_price(d.price, dp)} ×{d.x_median:.0f}", style=style)


_FATE_STYLES = {DensityState.EATEN: "bold yellow", DensityState.PULLED: "magenta"}


def _fate_style(d: DensityView) -> str:
    """Eaten stands out, pulled is marked, the rest (faded, out_of_depth) is dim."""
    return _FATE_STYLES.get(d.state, "dim")


def _ended(d: DensityView | None, dp: int | None) -> Text:
    if d is None:
        return Text("-", style="dim")
    return Text(f"{d.side} {fmt_price(d.price, dp)} {d.state}", style=_fate_style(d))


def row_cells(snap: Snapshot, status: str | None = None, latency: tuple[float, float] | None = None,
              spark: Sequence[float] = (), dp: int | None = None, *, quote: bool = False,
              filling: bool = False) -> dict[str, Text | str]:
    """The cells of one symbol's row, keyed as in :data:`COLUMNS`.

    Each column has one fixed format (:mod:`bybitmon.ui.fmt`), so widths hold from one refresh
    to the next. ``quote``: volume delta and depth in quote currency (x last price / mid).
    ``filling``: the trade window has not been full yet; its values are dimmed.
    """
    t, b = snap.trades, snap.book
    dens = snap.densities
    active = [d for d in dens if d.state is _ACTIVE]
    ended = [d for d in dens if d.state in ENDED_STATES]
    stale = not b.ready
    vdelta = t.volume_delta
    bid_depth, ask_depth = b.bid_depth, b.ask_depth
    if quote:
        last = t.last_price
        vdelta = None if last is None else vdelta * last
        bid_depth, ask_depth = b.bid_notional, b.ask_notional
    depth = "-" if bid_depth is None else f"{fmt.fmt_si(bid_depth, 5)}/{fmt.fmt_si(ask_depth, 5)}"
    imb = b.imbalance
    cells: dict[str, Text | str] = {
        "symbol": Text(printable(snap.symbol, 40), style="bold dim" if stale else "bold"),
        "last": fmt_price(t.last_price, dp),
        "mid": fmt_price(b.mid, None if dp is None else dp + 1),
        "spread": fmt.fmt_si(b.spread_bps, 0),
        "tps": fmt.fmt_si(t.tps, 0),
        "tpm": fmt.fmt_si(t.tpm, 0),
        "vdelta": _signed_fixed(fmt.fmt_si(vdelta, 0, signed=True), vdelta),
        "ratio": fmt.fmt_ratio(t.buy_sell_ratio, 0),
        "imb": _signed_fixed(fmt.fmt_fixed(imb, 2, 0, signed=True), imb),
        "heat": fmt.fmt_si(t.heat, 0),
        "depth": depth,
        "density": _density(max(active, key=lambda d: d.x_median) if active else None, dp),
        "ended": _ended(ended[0] if ended else None, dp),
        "spark": Text(fmt.spark(_buckets(spark, 16), 16), style="cyan"),
        "latency": "-" if latency is None else f"{latency[0]:.0f}/{latency[1]:.0f}",
        "health": _health(snap, status),
    }
    if filling:
        for k in ("tps", "tpm", "vdelta", "ratio"):
            c = cells[k]
            cells[k] = c if isinstance(c, Text) else Text(c)
            cells[k].stylize("dim")  # type: ignore[union-attr]
    return cells


def _buckets(values: Sequence[float], width: int) -> list[float]:
    """``values`` averaged into at most ``width`` buckets, oldest first (as :func:`sparkline`)."""
    vals = list(values)
    n = len(vals)
    if n <= width:
        return vals
    return [sum(vals[i * n // width:(i + 1) * n // width]) / max(1, (i + 1) * n // width - i * n // width)
            for i in range(width)]


_LEFT = ("symbol", "density", "ended", "health")
# The widths the fixed formats produce for ordinary values (fmt.fmt_si: 5 cells, signed 6).
_MIN_W = {"spread": 5, "tps": 5, "tpm": 5, "vdelta": 6, "ratio": 4, "imb": 5, "spark": 16}


def activity_table(snaps: Sequence[Snapshot], *, width: int = 200, title: str | None = None,
                   statuses: dict[str, str] | None = None,
                   latencies: dict[str, tuple[float, float] | None] | None = None,
                   sparks: dict[str, Sequence[float]] | None = None,
                   decimals: dict[str, int | None] | None = None,
                   firing: set[str] | None = None, max_rows: int | None = None,
                   n_symbols: int | None = None, selected: str | None = None,
                   note: str | None = None, quote: bool = False,
                   filling: set[str] | None = None, widths: dict[str, int] | None = None,
                   promote: Sequence[str] = ()) -> Text:
    """One row per symbol; columns dropped by priority so the table fits ``width``.

    Drawn as one styled :class:`~rich.text.Text` with box characters rather than a
    ``rich.table.Table``: the table's layout pass measured ~2 ms per row, too slow for 50+
    symbols refreshed several times a second; this costs a small fraction of that.
    ``max_rows`` keeps only the first rows (the rest would not fit the screen anyway);
    ``n_symbols`` is how many symbols there are when ``snaps`` holds only those to draw.
    ``selected`` is drawn highlighted; ``note`` replaces the "more symbols" line (the
    interactive screen says which rows it shows). ``quote`` and ``filling``: see :func:`row_cells`.
    ``widths``: column widths kept across refreshes (the caller's dict, updated here): a column
    never narrows, so the screen does not shift when a wide value scrolls away.
    ``promote`` names columns kept whatever the width (e.g. the ``--sort`` column).
    """
    shown = list(snaps) if max_rows is None else list(snaps)[:max_rows]
    all_rows: list[tuple[dict[str, Text], str | None]] = []
    for snap in shown:
        sym = snap.symbol
        cells = row_cells(snap, (statuses or {}).get(sym), (latencies or {}).get(sym),
                          (sparks or {}).get(sym, ()), (decimals or {}).get(sym), quote=quote,
                          filling=bool(filling) and sym in filling)
        style = "bold on dark_red" if firing and sym in firing else None
        if sym == selected:
            style = "reverse" if style is None else style + " reverse"
        all_rows.append(({k: c if isinstance(c, Text) else Text(c) for k, c in cells.items()}, style))
    # Fixed formats keep the numbers' widths; _MIN_W keeps a column from narrowing when, say,
    # every shown value is "-" for a moment.
    keep, widths = fmt.fit_columns(COLUMNS, (r for r, _ in all_rows), width, min_widths=_MIN_W, held=widths,
                                   promote=promote)
    rows = [([r[k] for k, _ in keep], style) for r, style in all_rows]
    last = len(keep) - 1

    def pad(i: int) -> tuple[str, str]:
        # Rich's pad_edge=False look: no padding at the outer edges.
        return ("" if i == 0 else " "), ("" if i == last else " ")

    def border(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + (0 if i in (0, last) else 2) + (1 if i in (0, last) and last else 0))
                               for i, w in enumerate(widths)) + right

    out = Text(no_wrap=True, overflow="crop")
    total = sum(widths) + 2 * len(widths) - (2 if last else 0) + len(widths) + 1
    if title:
        out.append(title[:width].center(min(width, max(total, len(title)))).rstrip() + "\n", style="italic")
    out.append(border("┏", "┳", "┓", "━") + "\n")
    out.append("┃")
    for i, (key, header) in enumerate(keep):
        lp, rp = pad(i)
        cell = header.ljust(widths[i]) if key in _LEFT else header.rjust(widths[i])
        out.append(lp + cell + rp, style="bold cyan")
        out.append("┃")
    out.append("\n" + border("┡", "╇", "┩", "━") + "\n")
    for texts, row_style in rows:
        out.append("│")
        for i, (key, _) in enumerate(keep):
            lp, rp = pad(i)
            t = texts[i]
            gap = " " * (widths[i] - t.cell_len)
            if row_style:
                t = t.copy()
                t.stylize(row_style)
            out.append(lp)
            if key not in _LEFT:
                out.append(gap, style=row_style)
            out.append_text(t)
            if key in _LEFT:
                out.append(gap, style=row_style)
            out.append(rp)
            out.append("│")
        out.append("\n")
    out.append(border("└", "┴", "┘", "─"))
    hidden = (len(snaps) if n_symbols is None else n_symbols) - len(shown)
    if note:
        out.append("\n" + note, style="dim")
    elif hidden > 0:
        out.append(f"\n… {hidden} more symbols (enlarge the terminal or --sort)", style="dim")
    return out


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 20) -> str:
    """Unicode sparkline of ``values`` in at most ``width`` cells (longer series are averaged
    into ``width`` buckets, oldest first), scaled to their own maximum."""
    vals = list(values)
    if len(vals) > width:
        n = len(vals)
        vals = [sum(vals[i * n // width:(i + 1) * n // width]) / max(1, (i + 1) * n // width - i * n // width)
                for i in range(width)]
    if not vals:
        return ""
    top = max(vals)
    if top <= 0:
        return _SPARK[0] * len(vals)
    return "".join(_SPARK[min(7, int(v / top * 7.999))] for v in vals)


def header(*, source: str, states: Sequence[tuple[str, str, int]], frames_per_s: float,
           symbols: int, errors: Sequence[str] = (), simulated: bool = False) -> Text:
    """One or two lines: the source, each connection's state, throughput, and the last error."""
    t = Text()
    t.append("bybitmon ", style="bold")
    t.append(printable(source), style="bold magenta" if simulated else "cyan")
    if simulated:
        t.append("  SIMULATED DATA", style="bold magenta")
    for label, state, reconnects in states:
        style = {"connected": "green", "reconnecting": "bold red", "connecting": "yellow"}.get(state, "dim")
        t.append(f"  {label}: ", style="dim")
        t.append(state + (f" ({reconnects} reconnects)" if reconnects else ""), style=style)
    t.append(f"  {frames_per_s:,.0f} frames/s  {symbols} symbols", style="dim")
    for e in list(errors)[-2:]:
        t.append("\n" + printable(e, 300), style="red")
    return t


def footer(keys: str = "Ctrl-C quit") -> Text:
    return Text(keys, style="dim")


def ladder_rows(height: int) -> int:
    """Levels per side of a ladder drawn in ``height`` lines: the mid rule and as many bid
    rows as ask rows (the table's title, header and borders take 5 lines)."""
    return max(1, (height - 6) // 2)


def _around(side: list, rows: int, focus: float | None) -> tuple[list, int]:
    """``rows`` levels of one side (best first): the best ones, or -- when ``focus`` is deeper
    than that -- the ones around it. Returns the levels and the index of the first."""
    if focus is not None:
        idx = next((i for i, (p, _) in enumerate(side) if p == focus), None)
        if idx is not None and idx >= rows:
            start = max(0, min(idx - rows // 2, len(side) - rows))
            return side[start:start + rows], start
    return side[:rows], 0


def ladder(symbol: str, snap: Snapshot, levels: dict, *, rows: int = 12, width: int = 80,
           dp: int | None = None, focus: float | None = None) -> Table:
    """Depth ladder: asks above, bids below the mid, size bars, densities highlighted.

    ``levels`` is ``{"bids": [(price, size), ...] best first, "asks": [...] best first}``;
    ``rows`` levels a side are drawn, as many bids as asks, so the mid sits in the middle
    (:func:`ladder_rows` gives ``rows`` for a height). ``focus``: a price to show and mark
    (``▶``), e.g. the density opened from the density screen; a side whose focus is deeper
    than ``rows`` shows the levels around it. The bars take what the terminal leaves after
    prices, sizes and density marks, so the ladder fits ``width`` and prices are never cut.
    """
    bids, bid_from = _around(levels["bids"], rows, focus)
    asks, ask_from = _around(levels["asks"], rows, focus)
    dens = {(d.side, d.price): d for d in snap.densities if d.state in _SHOWN_ON_LADDER}
    top = max([s for _, s in bids + asks] or [1.0])

    def mark(side: Side, p: float) -> Text:
        d = dens.get((side, p))
        m = Text(f"◀ ×{d.x_median:.0f} {d.state}", style="bold yellow") if d else Text("")
        if focus is not None and p == focus:
            m = Text("▶ ", style="bold reverse") + m
        return m

    ask_rows = [(fmt_price(p, dp, 7), s, fmt_num(s, 4), mark(Side.ASK, p)) for p, s in reversed(asks)]
    bid_rows = [(fmt_price(p, dp, 7), s, fmt_num(s, 4), mark(Side.BID, p)) for p, s in bids]
    every = ask_rows + bid_rows
    price_w = max([len(r[0]) for r in every] + [len(MID_RULE)])
    size_w = max([len(r[2]) for r in every] or [1])
    mark_w = max([r[3].cell_len for r in every] or [0])
    spare = width - LADDER_FRAME - price_w - mark_w - 2 * (size_w + 1)
    bar_w = max(1, min(40, spare // 2))

    def bar(size: float, style: str) -> Text:
        n = max(1, int(size / top * bar_w)) if size > 0 else 0
        return Text("█" * n, style=style)

    title = (f"{symbol} ladder  mid {fmt_price(snap.book.mid, None if dp is None else dp + 1, 7)}  spread "
             f"{fmt_num(snap.book.spread_bps, 3)} bps")
    if bid_from or ask_from:
        title += f"  ({'asks' if ask_from else 'bids'} from level {max(bid_from, ask_from) + 1})"
    t = Table(title=title, header_style="bold cyan", pad_edge=False)
    t.add_column("bid size", justify="right", no_wrap=True)
    t.add_column("price", justify="right", no_wrap=True, min_width=price_w)
    t.add_column("ask size", justify="left", no_wrap=True)
    t.add_column("", no_wrap=True)
    for price, s, size, m in ask_rows:
        t.add_row("", Text(price, style="red"), Text.assemble(bar(s, "bold yellow" if m else "red"), f" {size}"), m)
    t.add_row("", Text(MID_RULE, style="dim"), "", "")
    for price, s, size, m in bid_rows:
        t.add_row(Text.assemble(f"{size} ", bar(s, "bold yellow" if m else "green")), Text(price, style="green"), "", m)
    return t


def fates(snap: Snapshot, limit: int = 6, dp: int | None = None) -> Table:
    """Recently ended densities with their fate."""
    t = Table(title="densities ended (30 s)", header_style="bold cyan", pad_edge=False)
    for h in ("side", "price", "size", "×med", "fate"):
        t.add_column(h, no_wrap=True)
    for d in [d for d in snap.densities if d.state in ENDED_STATES][:limit]:
        t.add_row(str(d.side), fmt_price(d.price, dp, 7), fmt_num(d.size, 4), f"{d.x_median:.0f}",
                  Text(str(d.state), style=_fate_style(d)))
    return t
