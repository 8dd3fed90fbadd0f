"""Alert rules over typed snapshots: parsed up front, evaluated with hysteresis. Sans-I/O.

Grammar (whitespace around tokens is ignored)::

    rule   := [SYMBOL ":"] cond ("&" cond)*
    cond   := FIELD OP NUMBER
    OP     := ">" | ">=" | "<" | "<=" | "==" | "!="
    NUMBER := a decimal number, optionally signed, with an optional exponent (50, -0.6, 1e3)
    FIELD  := a shortcut (tps, heat, spread_bps, gaps, ...), a dotted path into the snapshot
              (trades.tps, trades.heat, book.spread_bps, health.gaps, density.x_median),
              or a per-density field (density_notional, density_dist, ...: DENSITY_FIELDS)

``density.x_median``, ``density.notional`` and ``density.size`` are the largest value over the
symbol's *active* densities (no active density: no value). A rule without a symbol applies to
every symbol, each with its own state. A rule with several conditions holds when all do.

Density rules: the ``density_*`` fields are columns of the density screen's rows
(:func:`bybitmon.core.screener.screen_densities`, the very same numbers: distance to the last
price in %, notional in quote units, ...). A rule with such conditions holds for a symbol when
*one* of its active densities meets *all* of them (and the rule's other conditions hold), e.g.
``density_notional>=1e6 & density_dist<=0.5``: a density of at least 1M quote units within
0.5 % of the last price. Its events name that density, the nearest to the price among those that
qualify. A density without the value (no last price yet for ``density_dist``, no taker flow for
``density_eta``) does not qualify.

Clock: none of its own. An alert's ``ts`` is the ``ts`` of the snapshot that triggered it (the
pipeline clock), so a replay gives the same alerts every time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import UsageError
from .screener import DensityRow, ScreenFilter, screen_densities
from .snapshot import FIELDS, Snapshot

__all__ = ["ALERT_VERSION", "DENSITY_FIELDS", "FIELDS", "SHORTCUTS", "AlertRule", "AlertEngine", "Condition", "density_label",
           "parse_alert"]

ALERT_VERSION = 1

# FIELDS (the names a rule may use, by section) comes from the snapshot's own declaration
# (core/snapshot.py); the shortcuts below are names of those fields, checked at import.
SHORTCUTS: dict[str, str] = {
    **{name: f"trades.{name}" for name in ("tps", "tpm", "count", "buy_volume", "sell_volume",
                                           "volume_delta", "buy_sell_ratio", "last_price", "heat",
                                           "heat_volume")},
    **{name: f"book.{name}" for name in ("spread_bps", "mid", "imbalance", "bid_depth", "ask_depth",
                                         "bid_notional", "ask_notional", "best_bid", "best_ask")},
    **{name: f"health.{name}" for name in ("gaps", "stale", "crossed", "bad_frames")},
}

# Per-density fields: name -> (how a row gives its value, unit). Rows are the density screen's.
DENSITY_FIELDS: dict[str, str] = {
    "density_notional": "notional in quote units (price x size)",
    "density_dist": "distance to the last price, % (the mid before any trade)",
    "density_size": "size in base units",
    "density_x": "size as a multiple of its side's median level size",
    "density_price": "price",
    "density_lifetime": "seconds since it appeared",
    "density_eaten": "volume traded against it since it appeared, % of its peak size",
    "density_eta": "seconds to eat it at the recent taker flow hitting its side",
}


def _row_value(name: str, row: DensityRow) -> float | None:
    if name == "density_notional":
        return row.notional
    if name == "density_dist":
        return row.distance_pct
    if name == "density_size":
        return row.size
    if name == "density_x":
        return row.x_median
    if name == "density_price":
        return row.price
    if name == "density_lifetime":
        return row.lifetime_ms / 1000.0
    if name == "density_eaten":
        return row.eaten_pct
    return row.eta_s


_OPS = (">", ">=", "<", "<=", "==", "!=")
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]*$")
_MAX_CONDITIONS = 16
_FIELD_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*")
_OP_RE = re.compile(r"^([<>=!]+)\s*")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_ABS_MARGIN = 1e-9


def _known() -> str:
    return (", ".join(SHORTCUTS) + ", density.x_median, density.notional, density.size; per density: "
            + ", ".join(DENSITY_FIELDS))


def _resolve(name: str, text: str) -> str:
    if name in SHORTCUTS:
        return SHORTCUTS[name]
    if name in DENSITY_FIELDS:
        return name
    section, dot, key = name.partition(".")
    if dot and key in FIELDS.get(section, ()):
        return name
    raise UsageError(f"unknown field {name!r} in alert {text!r}: use one of {_known()} "
                     f"(or a full path such as trades.tps)")


def _holds(op: str, value: float, t: float) -> bool:
    if op == ">":
        return value > t
    if op == ">=":
        return value >= t
    if op == "<":
        return value < t
    if op == "<=":
        return value <= t
    if op == "==":
        return value == t
    return value != t


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``FIELD OP NUMBER`` of a rule; ``field`` is a full snapshot path or a ``density_*`` name."""

    field: str
    op: str
    threshold: float

    @property
    def per_density(self) -> bool:
        """Whether the field is a column of one density (``density_*``) rather than of the snapshot."""
        return self.field in DENSITY_FIELDS

    def holds(self, value: float) -> bool:
        """Whether the condition is true for ``value``."""
        return _holds(self.op, value, self.threshold)

    def near(self, value: float, margin: float) -> bool:
        """Whether ``value`` is still within ``margin`` of holding (a firing rule stays armed):
        ``>``/``>=`` while ``value >= threshold - margin``, ``<``/``<=`` while ``value <=
        threshold + margin``, ``==``/``!=`` while the condition holds."""
        op = self.op
        if op == ">" or op == ">=":
            return value >= self.threshold - margin
        if op == "<" or op == "<=":
            return value <= self.threshold + margin
        return _holds(op, value, self.threshold)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One parsed rule: ``[symbol:]field op threshold [& more conditions]``.

    ``text`` is the rule as written, outer spaces removed (it names the rule in events);
    ``field`` is the full path, e.g. ``trades.tps``; ``symbol`` is None when the rule applies to
    every symbol (a given symbol is upper-cased). ``field``/``op``/``threshold`` are the first
    condition; ``more`` holds the conditions after ``&`` (empty for a one-condition rule).
    """

    text: str
    symbol: str | None
    field: str
    op: str
    threshold: float
    more: tuple[Condition, ...] = ()

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """Every condition, the first one included."""
        return (Condition(self.field, self.op, self.threshold),) + self.more

    @property
    def per_density(self) -> bool:
        """Whether a density must meet some of the conditions (see the module docstring)."""
        return any(c.per_density for c in self.conditions)

    def applies_to(self, symbol: str) -> bool:
        return self.symbol is None or self.symbol == symbol

    def value(self, snapshot: Snapshot) -> float | int | None:
        """The first field's value in a snapshot; None when it has none (no book, no density,
        or a per-density field, which a snapshot does not carry)."""
        if self.field in DENSITY_FIELDS:
            return None
        return snapshot.value(self.field)

    def holds(self, value: float) -> bool:
        """Whether the first condition is true for ``value``."""
        return _holds(self.op, value, self.threshold)


def _condition(part: str, text: str) -> Condition:
    m = _FIELD_RE.match(part)
    if m is None:
        raise UsageError(f"no field in alert {text!r}: write FIELD OP NUMBER, e.g. tps>50")
    field = _resolve(m.group(1), text)
    rest = part[m.end():]
    m = _OP_RE.match(rest)
    if m is None:
        raise UsageError(f"no operator in alert {text!r}: write FIELD OP NUMBER with OP one of "
                         f"{' '.join(_OPS)}")
    op = m.group(1)
    if op not in _OPS:
        raise UsageError(f"bad operator {op!r} in alert {text!r}: use one of {' '.join(_OPS)}")
    number = rest[m.end():].strip()
    if not _NUMBER_RE.match(number):
        raise UsageError(f"bad number {number!r} in alert {text!r}: use a number such as 50, -0.6 or 1e3")
    threshold = float(number)
    if not math.isfinite(threshold):
        raise UsageError(f"bad number {number!r} in alert {text!r}: it is too large")
    return Condition(field, op, threshold)


def parse_alert(text: str) -> AlertRule:
    """Parse one rule such as ``tps>50``, ``BTCUSDT:spread_bps >= 2``, ``book.imbalance<-0.6`` or
    ``density_notional>=1e6 & density_dist<=0.5``.

    Raises:
        UsageError: one line naming the problem (unknown field, bad operator, bad number, bad
            symbol, an empty condition around ``&``).
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"empty alert {text!r}: write FIELD OP NUMBER, e.g. tps>50")
    rest = text.strip()
    symbol: str | None = None
    if ":" in rest:
        head, _, rest = rest.partition(":")
        symbol = head.strip().upper()
        if not _SYMBOL_RE.match(symbol):
            raise UsageError(f"bad symbol {head.strip()!r} in alert {text!r}: use an exchange symbol "
                             f"such as BTCUSDT:tps>50")
    parts = rest.split("&")
    if len(parts) > _MAX_CONDITIONS:
        raise UsageError(f"too many conditions in alert {text[:80]!r}...: at most {_MAX_CONDITIONS}")
    conditions = []
    for part in parts:
        if not part.strip():
            raise UsageError(f"empty condition in alert {text!r}: write FIELD OP NUMBER on both sides of &, "
                             f"e.g. density_notional>=1e6 & density_dist<=0.5")
        conditions.append(_condition(part, text))
    first = conditions[0]
    return AlertRule(text.strip(), symbol, first.field, first.op, first.threshold, tuple(conditions[1:]))


def _short(x: float) -> str:
    """A quote amount for the alert line: 950, 12.3k, 1.25M, 3.1B."""
    a = abs(x)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def density_label(row: DensityRow) -> str:
    """How the alert line names a density: ``bid 64000.5 x 15.2 = 973k at 0.31%``."""
    dist = "?" if row.distance_pct is None else f"{row.distance_pct:.2f}"
    return f"{row.side} {row.price!r} x {row.size:g} = {_short(row.notional)} at {dist}%"


class AlertEngine:
    """Evaluates rules on snapshots; each rule fires once per crossing, per symbol.

    A rule fires when its condition becomes true, then stays quiet until it re-arms: for ``>``
    and ``>=`` when the value falls below ``threshold - margin``, for ``<`` and ``<=`` when it
    rises above ``threshold + margin``, for ``==`` and ``!=`` when the condition is false. The
    margin is ``hysteresis * |threshold|``, at least 1e-9. Re-arming emits a ``cleared`` event.
    A missing value (None: no book, book not ready, no active density) changes nothing.

    A rule with several conditions fires when all hold and re-arms when one of them moves past
    its margin. A density rule re-arms when no active density is within the margins of all its
    density conditions (no density at all is a definite "no", unlike a missing snapshot value).

    Args:
        rules: parsed rules, or rule texts (parsed here, so a bad one raises at once).
        hysteresis: the re-arm margin as a fraction of |threshold| (0.1 = 10 %).

    Raises:
        UsageError: a bad rule text or a negative hysteresis.
    """

    def __init__(self, rules: Iterable[AlertRule | str], hysteresis: float = 0.1) -> None:
        if not (isinstance(hysteresis, (int, float)) and 0.0 <= hysteresis < math.inf):
            raise UsageError(f"bad hysteresis {hysteresis!r}: use a fraction such as 0.1 (0 or more)")
        self.rules: tuple[AlertRule, ...] = tuple(r if isinstance(r, AlertRule) else parse_alert(r)
                                                  for r in rules)
        self.hysteresis = float(hysteresis)
        # Per rule: its conditions with their margins, split into snapshot and per-density ones.
        self._plans: tuple[tuple[tuple[tuple[Condition, float], ...], tuple[tuple[Condition, float], ...]], ...] = tuple(
            (tuple((c, self._margin(c)) for c in r.conditions if not c.per_density),
             tuple((c, self._margin(c)) for c in r.conditions if c.per_density))
            for r in self.rules)
        self.needs_densities = any(dens for _, dens in self._plans)
        self._firing: set[tuple[int, str]] = set()   # (rule index, symbol)
        self._shown: dict[tuple[int, str], DensityRow] = {}  # the density a firing rule names now

    def _margin(self, c: Condition) -> float:
        return max(self.hysteresis * abs(c.threshold), _ABS_MARGIN)

    def evaluate(self, snapshot: Snapshot, densities: Sequence[DensityRow] | None = None) -> list[dict]:
        """Alert events for one symbol's snapshot, in rule order (may be empty).

        Args:
            snapshot: the symbol at the pipeline clock.
            densities: the density screen's rows of this symbol at the same moment
                (:func:`~bybitmon.core.screener.screen_densities`); only ``active`` ones count.
                None: not known, so density rules change nothing.
        """
        symbol = snapshot.symbol
        events: list[dict] = []
        active = None if densities is None else [d for d in densities if d.state == "active"]
        for i, rule in enumerate(self.rules):
            if not rule.applies_to(symbol):
                continue
            plain, dens = self._plans[i]
            values: list[float | int | None] = []
            holds = near = True
            unknown = False
            for c, margin in plain:
                v = snapshot.value(c.field)
                if v is None or v != v:  # None or NaN: nothing known, nothing changes
                    unknown = True
                    break
                values.append(v)
                holds = holds and c.holds(v)
                near = near and c.near(v, margin)
            if unknown or (dens and active is None):
                continue
            row: DensityRow | None = None
            if dens:
                # The nearest density meeting every density condition names the alert; while
                # firing, one still within the margins keeps it armed.
                strict = loose = None
                for r in active:  # type: ignore[union-attr]
                    ok = near_ok = True
                    for c, margin in dens:
                        v = _row_value(c.field, r)
                        if v is None or v != v:
                            ok = near_ok = False
                            break
                        ok = ok and c.holds(v)
                        near_ok = near_ok and c.near(v, margin)
                        if not near_ok:
                            break
                    if ok and strict is None:
                        strict = r
                    if near_ok and loose is None:
                        loose = r
                    if strict is not None:
                        break
                holds = holds and strict is not None
                near = near and loose is not None
                row = strict if strict is not None else loose
            key = (i, symbol)
            if key in self._firing:
                if near:
                    if row is not None:
                        self._shown[key] = row
                    continue
                self._firing.discard(key)
                self._shown.pop(key, None)
                state = "cleared"
                row = None
            elif holds:
                self._firing.add(key)
                if row is not None:
                    self._shown[key] = row
                state = "firing"
            else:
                continue
            events.append(self._event(rule, snapshot, state, values, row))
        return events

    def _event(self, rule: AlertRule, snapshot: Snapshot, state: str, values: list, row: DensityRow | None) -> dict:
        conds = rule.conditions
        it = iter(values)
        vals = [(None if row is None else _row_value(c.field, row)) if c.per_density else next(it)
                for c in conds]
        event = {
            "type": "alert",
            "v": ALERT_VERSION,
            "ts": snapshot.ts,
            "symbol": snapshot.symbol,
            "rule": rule.text,
            "field": rule.field,
            "value": vals[0],
            "threshold": rule.threshold,
            "state": state,
        }
        if rule.more or rule.per_density:
            event["conditions"] = [{"field": c.field, "op": c.op, "threshold": c.threshold, "value": v}
                                   for c, v in zip(conds, vals)]
        if rule.per_density:
            if row is None:
                event["density"] = None
            else:
                d = row.as_dict()
                del d["symbol"]
                event["density"] = d
        return event

    def evaluate_monitor(self, monitor) -> list[dict]:
        """Alert events for every symbol of ``monitor`` at its pipeline clock, in symbol order.

        Density rules get the density screen's rows (:func:`screen_densities`, computed once
        for all symbols and only when a rule needs them), so an alert names the same numbers
        the screen shows.
        """
        rows: dict[str, list[DensityRow]] = {}
        if self.needs_densities:
            wanted = None
            if all(r.symbol is not None for r in self.rules if r.per_density):
                wanted = sorted({r.symbol for r in self.rules if r.per_density and r.symbol in monitor.states})
            for r in screen_densities(monitor, flt=ScreenFilter(ended_ms=0), symbols=wanted):
                rows.setdefault(r.symbol, []).append(r)
        events: list[dict] = []
        for sym in monitor.symbols:
            events.extend(self.evaluate(monitor.snapshot(sym), rows.get(sym, ()) if self.needs_densities else None))
        return events

    def firing(self, symbol: str) -> set[str]:
        """The rules currently firing for ``symbol`` (e.g. to name them above the table): each
        rule's text, a density rule's followed by the density it names now (``... [bid 64000.5
        x 15.2 = 973k at 0.31%]``)."""
        out = set()
        for i, s in self._firing:
            if s == symbol:
                row = self._shown.get((i, s))
                text = self.rules[i].text
                out.add(f"{text} [{density_label(row)}]" if row is not None else text)
        return out
