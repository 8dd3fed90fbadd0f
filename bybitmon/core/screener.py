"""The market-wide density screen: one row per density across every followed symbol. Sans-I/O.

Computed from the Monitor's state at ``now_ms`` (exchange ms, the pipeline clock); it changes
nothing but moving the trade windows to ``now_ms``, as a snapshot does. Per row, with the definitions the tests check against a brute-force computation:

- ``distance_pct`` = ``|price - last| / last * 100``, ``last`` the symbol's last trade price
  (the book's mid before any trade).
- ``notional`` = ``price * size`` (quote currency), ``size`` the level's size now.
- ``x_median`` = ``size / median``, the reference median of that side's level sizes.
- ``lifetime_ms`` = ``now_ms - since_ms`` (for an ended density: ``ended_ms - since_ms``).
- ``eaten_pct`` = ``traded_total / peak_size * 100``: the volume traded against it at its
  price (sell takers hit bids, buy takers lift asks) since it appeared, as a share of the
  largest size it had. It may pass 100 % when the level was refilled.
- ``flow_per_s`` = taker volume hitting its side over the symbol's trade window, divided by
  the window in seconds (sell volume for a bid, buy volume for an ask), over all prices.
- ``eta_s`` = ``size / flow_per_s``: the time to eat what rests at the recent rate of flow;
  ``None`` when no such flow (never eaten at this rate).

Filters (:class:`ScreenFilter`): a minimum notional, absolute or automatic per symbol; a
maximum distance; a minimum lifetime; a symbol substring. The automatic minimum is
``auto_notional x`` the symbol's traded turnover over its trade window (``(buy + sell volume)
x last price``): a density shows when it would take at least that many windows of the whole
symbol's trading to fill it. (Bybit's 24 h turnover comes from the tickers topic, which watch
does not follow; the window's turnover is the same idea over the data at hand.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, NamedTuple

from .densities import Density

__all__ = ["DensityRow", "ScreenFilter", "SCREEN_SORTS", "SCREENER_VERSION", "screen_densities",
           "sort_rows", "rows_json"]

SCREENER_VERSION = 1
_LIVE = ("active", "ending")
_INF = float("inf")
_BAND_SLACK = 1.0 + 1e-9  # the pre-check only skips what is surely out; _passes decides the edge


class DensityRow(NamedTuple):
    """One density on the screen. Prices and sizes as the book has them; times exchange ms.

    A NamedTuple rather than a frozen dataclass: the screen builds thousands of them per
    refresh at 500 symbols, and a 17-field frozen dataclass cost ~4x as much to construct.
    """

    symbol: str
    side: str                 # "bid" | "ask"
    price: float
    size: float               # base units, now (for an ended one: its last size as a density)
    notional: float           # price * size, quote units
    x_median: float           # size / the side's reference median
    since_ms: int
    lifetime_ms: int
    last_price: float | None  # last trade (mid before any trade)
    distance_pct: float | None
    peak_size: float
    traded: float             # volume traded against it since it appeared (base units)
    eaten_pct: float          # traded / peak_size * 100
    flow_per_s: float         # taker volume per second hitting its side, over the trade window
    eta_s: float | None       # size / flow_per_s; None without flow (or once ended)
    state: str                # active | ending | eaten | pulled | faded | out_of_depth
    ended_ms: int | None = None

    @property
    def key(self) -> tuple[str, str, float, int]:
        """What identifies the row across refreshes (a selection follows it): symbol, side,
        price and since (a price can hold an ended density and a new one at once)."""
        return self.symbol, self.side, self.price, self.since_ms

    def as_dict(self) -> dict:
        return {
            "symbol": self.symbol, "side": self.side, "price": self.price, "size": self.size,
            "notional": self.notional, "x_median": self.x_median, "since": self.since_ms,
            "lifetime_ms": self.lifetime_ms, "last_price": self.last_price,
            "distance_pct": self.distance_pct, "peak_size": self.peak_size, "traded": self.traded,
            "eaten_pct": self.eaten_pct, "flow_per_s": self.flow_per_s, "eta_s": self.eta_s,
            "state": self.state, "ended": self.ended_ms,
        }


@dataclass(frozen=True, slots=True)
class ScreenFilter:
    """Which densities the screen lists.

    Args:
        min_notional: rows below this notional (quote units) are hidden.
        auto_notional: when set, also hide rows below this many times the symbol's traded
            turnover over its trade window (see the module docstring).
        max_distance_pct: hide rows farther than this from the last price (None: no limit).
        min_lifetime_ms: hide rows younger than this (orders that flicker in and out).
        symbol_substr: only symbols containing this (case-insensitive).
        ended_ms: also list densities that ended within this many ms, with their fate (0: none).
        ended_max: ... at most this many of them, the most recent across every symbol.
    """

    min_notional: float = 0.0
    auto_notional: float | None = None
    max_distance_pct: float | None = None
    min_lifetime_ms: int = 0
    symbol_substr: str = ""
    ended_ms: int = 10_000
    ended_max: int = 100


def _distance(price: float, last: float | None) -> float | None:
    if last is None or last <= 0:
        return None
    return abs(price - last) / last * 100.0


def _row(symbol: str, d: Density, median: float, now_ms: int, last: float | None,
         flow: float) -> DensityRow:
    live = d.state in _LIVE
    lifetime = (now_ms if live or d.ended_ms is None else d.ended_ms) - d.since_ms
    peak = max(d.peak_size, d.size)
    if live:
        x_median = d.size / median if median else 0.0
    else:
        x_median = d.x_median
    eta = d.size / flow if live and flow > 0 else None
    return DensityRow(symbol, d.side, d.price, d.size, d.price * d.size, x_median, d.since_ms,
                      max(0, lifetime), last, _distance(d.price, last), peak, d.traded_total,
                      d.traded_total / peak * 100.0 if peak > 0 else 0.0, flow, eta, d.state, d.ended_ms)


def screen_densities(monitor, now_ms: int | None = None, flt: ScreenFilter = ScreenFilter(),
                     symbols: Iterable[str] | None = None, sort: str = "distance") -> list[DensityRow]:
    """Every density of ``symbols`` (default: all the monitor holds) that passes ``flt``.

    ``monitor`` is a :class:`~bybitmon.core.monitor.Monitor` (read only: its ``states``, each
    with ``book``, ``trades`` and ``densities``, and ``now_ms``). Live densities come first,
    in ``sort`` order (see :data:`SCREEN_SORTS`), then recently ended ones, newest first.
    """
    now = monitor.now_ms if now_ms is None else now_ms
    if now is None:
        return []
    sub = flt.symbol_substr.upper()
    live: list[DensityRow] = []
    ended: list[tuple] = []  # (density, symbol, median, last, flow, notional floor)
    states = monitor.states
    for sym in (states if symbols is None else symbols):
        st = states.get(sym)
        if st is None or (sub and sub not in sym.upper()):
            continue
        tracker = st.densities
        if not tracker.n_active and not tracker.n_ending and not (flt.ended_ms and tracker.ended):
            continue
        ws = st.trades.stats(now)  # moves the window to now, as a snapshot does
        last = ws.last_price
        if last is None:
            last = st.book.mid if st.book.ready else None
        window_s = ws.window_ms / 1000.0
        flows = {"bid": ws.sell_volume / window_s, "ask": ws.buy_volume / window_s}
        floor = flt.min_notional
        if flt.auto_notional is not None and last is not None:
            floor = max(floor, flt.auto_notional * (ws.buy_volume + ws.sell_volume) * last)
        medians = tracker.medians
        # The filters are checked on the tracker's numbers before a row is built: at 500
        # symbols there are tens of thousands of short-lived densities in the last seconds.
        max_dist = flt.max_distance_pct
        band = None if max_dist is None or last is None else last * max_dist / 100.0
        min_life = flt.min_lifetime_ms
        for side in ("bid", "ask"):
            for group in (tracker.active[side], tracker.ending[side]):
                for d in group.values():
                    if (now - d.since_ms < min_life or d.price * d.size < floor
                            or (max_dist is not None and (band is None or abs(d.price - last) > band * _BAND_SLACK))):
                        continue
                    r = _row(sym, d, medians[side], now, last, flows[side])
                    if _passes(r, flt, floor):
                        live.append(r)
        if flt.ended_ms:
            oldest = now - flt.ended_ms
            for d in reversed(tracker.ended):
                if d.ended_ms is None or d.ended_ms < oldest:
                    break
                if d.ended_ms - d.since_ms < min_life or d.price * d.size < floor:
                    continue
                ended.append((d, sym, medians[d.side], last, flows[d.side], floor))
    # The most recent ended ones first; rows are built only for the ended_max shown.
    ended.sort(key=lambda e: (-e[0].ended_ms, e[1], e[0].side, e[0].price))
    recent: list[DensityRow] = []
    for d, sym, median, last, flow, floor in ended:
        if len(recent) >= flt.ended_max:
            break
        r = _row(sym, d, median, now, last, flow)
        if _passes(r, flt, floor):
            recent.append(r)
    return sort_rows(live, sort) + recent


def _passes(r: DensityRow, flt: ScreenFilter, floor: float) -> bool:
    if r.notional < floor:
        return False
    if flt.max_distance_pct is not None and (r.distance_pct is None or r.distance_pct > flt.max_distance_pct):
        return False
    return r.lifetime_ms >= flt.min_lifetime_ms



# Sort keys of the density screen: (name, key), nearest / largest / oldest / soonest first.
SCREEN_SORTS: dict[str, object] = {
    "distance": lambda r: (_INF if r.distance_pct is None else r.distance_pct, r.symbol, r.side, r.price),
    "notional": lambda r: (-r.notional, r.symbol, r.side, r.price),
    "x_median": lambda r: (-r.x_median, r.symbol, r.side, r.price),
    "lifetime": lambda r: (-r.lifetime_ms, r.symbol, r.side, r.price),
    "eta": lambda r: (_INF if r.eta_s is None else r.eta_s, r.symbol, r.side, r.price),
    "eaten": lambda r: (-r.eaten_pct, r.symbol, r.side, r.price),
    "symbol": lambda r: (r.symbol, r.side, r.price),
}


def sort_rows(rows: list[DensityRow], sort: str = "distance") -> list[DensityRow]:
    """``rows`` in the order of ``sort`` (a key of :data:`SCREEN_SORTS`)."""
    return sorted(rows, key=SCREEN_SORTS[sort])  # type: ignore[arg-type]


def rows_json(rows: list[DensityRow], now_ms: int, category: str, flt: ScreenFilter) -> dict:
    """The ``{"type":"densities","v":1,...}`` line of ``--json``: the screen's rows at ``now_ms``."""
    return {
        "type": "densities",
        "v": SCREENER_VERSION,
        "ts": now_ms,
        "category": category,
        "filter": {"min_notional": flt.min_notional, "auto_notional": flt.auto_notional,
                   "max_distance_pct": flt.max_distance_pct, "min_lifetime_ms": flt.min_lifetime_ms},
        "rows": [r.as_dict() for r in rows],
    }
