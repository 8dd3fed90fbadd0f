"""Alert rules over typed snapshots: parsed up front, evaluated with hysteresis. Sans-I/O.

Grammar (whitespace around tokens is ignored)::

    rule   := [SYMBOL ":"] FIELD OP NUMBER
    OP     := ">" | ">=" | "<" | "<=" | "==" | "!="
    NUMBER := a decimal number, optionally signed, with an optional exponent (50, -0.6, 1e3)
    FIELD  := a shortcut (tps, heat, spread_bps, gaps, ...) or a dotted path into the snapshot
              (trades.tps, trades.heat, book.spread_bps, health.gaps, density.x_median)

``density.x_median``, ``density.notional`` and ``density.size`` are the largest value over the
symbol's *active* densities (no active density: no value). A rule without a symbol applies to
every symbol, each with its own state.

Clock: none of its own. An alert's ``ts`` is the ``ts`` of the snapshot that triggered it (the
pipeline clock), so a replay gives the same alerts every time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from ..errors import UsageError
from .snapshot import FIELDS, Snapshot

__all__ = ["ALERT_VERSION", "FIELDS", "SHORTCUTS", "AlertRule", "AlertEngine", "parse_alert"]

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

_OPS = (">", ">=", "<", "<=", "==", "!=")
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]*$")
_FIELD_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*")
_OP_RE = re.compile(r"^([<>=!]+)\s*")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_ABS_MARGIN = 1e-9


def _known() -> str:
    return ", ".join(SHORTCUTS) + ", density.x_median, density.notional, density.size"


def _resolve(name: str, text: str) -> str:
    if name in SHORTCUTS:
        return SHORTCUTS[name]
    section, dot, key = name.partition(".")
    if dot and key in FIELDS.get(section, ()):
        return name
    raise UsageError(f"unknown field {name!r} in alert {text!r}: use one of {_known()} "
                     f"(or a full path such as trades.tps)")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One parsed rule: ``[symbol:]field op threshold``.

    ``text`` is the rule as written, outer spaces removed (it names the rule in events);
    ``field`` is the full path, e.g. ``trades.tps``; ``symbol`` is None when the rule applies to
    every symbol (a given symbol is upper-cased).
    """

    text: str
    symbol: str | None
    field: str
    op: str
    threshold: float

    def applies_to(self, symbol: str) -> bool:
        return self.symbol is None or self.symbol == symbol

    def value(self, snapshot: Snapshot) -> float | int | None:
        """The field's value in a snapshot; None when it has none (no book, no density)."""
        return snapshot.value(self.field)

    def holds(self, value: float) -> bool:
        """Whether the condition is true for ``value``."""
        op, t = self.op, self.threshold
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


def parse_alert(text: str) -> AlertRule:
    """Parse one rule such as ``tps>50``, ``BTCUSDT:spread_bps >= 2`` or ``book.imbalance<-0.6``.

    Raises:
        UsageError: one line naming the problem (unknown field, bad operator, bad number, bad symbol).
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
    m = _FIELD_RE.match(rest)
    if m is None:
        raise UsageError(f"no field in alert {text!r}: write FIELD OP NUMBER, e.g. tps>50")
    field = _resolve(m.group(1), text)
    rest = rest[m.end():]
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
    return AlertRule(text.strip(), symbol, field, op, threshold)


class AlertEngine:
    """Evaluates rules on snapshots; each rule fires once per crossing, per symbol.

    A rule fires when its condition becomes true, then stays quiet until it re-arms: for ``>``
    and ``>=`` when the value falls below ``threshold - margin``, for ``<`` and ``<=`` when it
    rises above ``threshold + margin``, for ``==`` and ``!=`` when the condition is false. The
    margin is ``hysteresis * |threshold|``, at least 1e-9. Re-arming emits a ``cleared`` event.
    A missing value (None: no book, book not ready, no active density) changes nothing.

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
        self._margins = tuple(max(self.hysteresis * abs(r.threshold), _ABS_MARGIN) for r in self.rules)
        self._firing: set[tuple[int, str]] = set()   # (rule index, symbol)

    def _rearms(self, i: int, value: float) -> bool:
        rule = self.rules[i]
        op = rule.op
        if op == ">" or op == ">=":
            return value < rule.threshold - self._margins[i]
        if op == "<" or op == "<=":
            return value > rule.threshold + self._margins[i]
        return not rule.holds(value)

    def evaluate(self, snapshot: Snapshot) -> list[dict]:
        """Alert events for one symbol's snapshot, in rule order (may be empty)."""
        symbol = snapshot.symbol
        events: list[dict] = []
        for i, rule in enumerate(self.rules):
            if not rule.applies_to(symbol):
                continue
            value = rule.value(snapshot)
            if value is None or value != value:  # None or NaN: nothing known, nothing changes
                continue
            key = (i, symbol)
            if key in self._firing:
                if not self._rearms(i, value):
                    continue
                self._firing.discard(key)
                state = "cleared"
            elif rule.holds(value):
                self._firing.add(key)
                state = "firing"
            else:
                continue
            events.append({
                "type": "alert",
                "v": ALERT_VERSION,
                "ts": snapshot.ts,
                "symbol": symbol,
                "rule": rule.text,
                "field": rule.field,
                "value": value,
                "threshold": rule.threshold,
                "state": state,
            })
        return events

    def firing(self, symbol: str) -> set[str]:
        """Texts of the rules currently firing for ``symbol`` (e.g. to highlight its row)."""
        return {self.rules[i].text for i, s in self._firing if s == symbol}
