"""The typed, frozen snapshot of one symbol, and its version-1 JSON. Sans-I/O.

:meth:`Monitor.snapshot <bybitmon.core.monitor.Monitor.snapshot>` returns a :class:`Snapshot`;
the UI, the alert rules and the Parquet export read its typed fields, and ``--json`` prints
:meth:`Snapshot.to_json`. The classes below are the one declaration of the snapshot's fields:
their order is the order of the JSON keys, :data:`FIELDS` (the names alert rules may use) is
derived from them, and so are the export's book columns.

The dataclasses are frozen and slotted (``# Don't subclass these. Stuff will break.``, h11's
warning, holds here too: orjson serializes them field by field, in declaration order, which
is what keeps the v1 bytes stable). ``snap["book"]["mid"]`` style access still works for scripts
written against the dict snapshot (:meth:`_Part.__getitem__`), read-only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any

import orjson

__all__ = [
    "SNAPSHOT_VERSION",
    "Side",
    "DensityState",
    "ENDED_STATES",
    "TradesView",
    "BookView",
    "DensityView",
    "Health",
    "Snapshot",
    "FIELDS",
    "field_names",
]

SNAPSHOT_VERSION = 1


class Side(enum.StrEnum):
    """A side of the book. A buy taker lifts the ask, a sell taker hits the bid."""

    BID = "bid"
    ASK = "ask"


class DensityState(enum.StrEnum):
    """Where a density is in its life (see :mod:`bybitmon.core.densities`)."""

    ACTIVE = "active"           # resting, at or above the threshold
    ENDING = "ending"           # fell below it; trades during the grace period still count
    EATEN = "eaten"             # traded away (at least half of its decrease)
    PULLED = "pulled"           # cancelled
    FADED = "faded"             # the threshold rose past it; it never shrank
    OUT_OF_DEPTH = "out_of_depth"  # left the topic's depth window: its fate cannot be seen


ENDED_STATES = (DensityState.EATEN, DensityState.PULLED, DensityState.FADED, DensityState.OUT_OF_DEPTH)
"""The final states, in the order the UI lists fates."""


class _Part:
    """Read-only ``part["name"]`` access to a snapshot part, as the v1 dict allowed."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


# Don't subclass these. Stuff will break.
@dataclass(frozen=True, slots=True)
class TradesView(_Part):
    """Trade activity over the window ending at the snapshot's ``ts`` (exchange time)."""

    window_s: float
    count: int
    tps: float                      # count / window_s
    tpm: float                      # count * 60 / window_s
    buy_volume: float               # taker buys, base units
    sell_volume: float
    volume_delta: float             # buy_volume - sell_volume
    buy_sell_ratio: float | None    # buy_volume / sell_volume; None without sell volume
    last_price: float | None
    heat: float | None = None       # TPS of the last 10 s / the symbol's own TPS over 15 min (floored)
    heat_volume: float | None = None  # the same for traded volume (see core.activity.Heat)


@dataclass(frozen=True, slots=True)
class BookView(_Part):
    """The book at the snapshot: prices in quote units, depth within ``bps`` of mid. Every
    number is None while the book is not ready (or one side is empty)."""

    ready: bool
    best_bid: float | None
    best_ask: float | None
    mid: float | None
    spread_bps: float | None
    bps: float
    bid_depth: float | None         # base units within bps of mid
    ask_depth: float | None
    bid_notional: float | None      # quote units within bps of mid
    ask_notional: float | None
    imbalance: float | None         # (bid_depth - ask_depth) / (bid_depth + ask_depth)
    update_id: int | None
    seq: int | None


@dataclass(frozen=True, slots=True)
class DensityView(_Part):
    """One density as a snapshot shows it (times are exchange ms)."""

    side: Side
    price: float
    size: float
    notional: float
    x_median: float                 # size / median level size of its side
    since: int
    state: DensityState
    ended: int | None


@dataclass(frozen=True, slots=True)
class Health(_Part):
    """Counters: ``frames`` of this symbol; ``bad_frames`` of the whole input; the book's
    ``stale``/``gaps``/``crossed``/``resets``/``dropped`` updates; ``clock_jumps``, frames of
    the whole input whose ``ts`` the clock rule bounded (see :mod:`bybitmon.core.monitor`);
    ``overflow``, this symbol's trades and book levels dropped at a memory bound."""

    frames: int
    bad_frames: int
    stale: int
    gaps: int
    crossed: int
    resets: int
    dropped: int
    clock_jumps: int = 0
    overflow: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot(_Part):
    """One symbol at the pipeline clock ``ts`` (exchange ms). Field order is the v1 key order."""

    type: str = "snapshot"
    v: int = SNAPSHOT_VERSION
    ts: int
    symbol: str
    category: str
    trades: TradesView
    book: BookView
    densities: tuple[DensityView, ...]
    health: Health

    def to_json(self) -> bytes:
        """The version-1 JSON line (without the newline), byte for byte as documented."""
        return orjson.dumps(self)

    def as_dict(self) -> dict[str, Any]:
        """The version-1 snapshot as plain dicts, lists and str (what ``json.loads`` of
        :meth:`to_json` gives)."""
        return orjson.loads(orjson.dumps(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Snapshot:
        """The snapshot a version-1 dict (a parsed ``--json`` line) describes.

        Raises:
            KeyError, TypeError, ValueError: ``d`` is not a version-1 snapshot.
        """
        if d.get("type") != "snapshot" or d.get("v") != SNAPSHOT_VERSION:
            raise ValueError("not a version-1 snapshot")
        return cls(
            ts=d["ts"], symbol=d["symbol"], category=d["category"],
            trades=TradesView(**d["trades"]), book=BookView(**d["book"]),
            densities=tuple(DensityView(**{**x, "side": Side(x["side"]), "state": DensityState(x["state"])})
                            for x in d["densities"]),
            health=Health(**d["health"]),
        )

    def value(self, path: str) -> float | int | None:
        """A numeric field by its dotted path (``trades.tps``, ``book.ready`` as 0/1,
        ``density.x_median``: the largest over active densities); None when it has no value."""
        section, _, key = path.partition(".")
        if section == "density":
            values = [getattr(d, key) for d in self.densities if d.state is DensityState.ACTIVE]
            return max(values) if values else None
        part = getattr(self, section, None)
        if not isinstance(part, _Part) or key not in _NAMES.get(section, ()):
            return None
        value = getattr(part, key)
        if isinstance(value, bool):
            return int(value)
        return value


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of one snapshot part, in JSON order."""
    return tuple(f.name for f in fields(cls))


_NAMES: dict[str, tuple[str, ...]] = {
    "trades": field_names(TradesView),
    "book": field_names(BookView),
    "health": field_names(Health),
}

FIELDS: dict[str, tuple[str, ...]] = {
    **_NAMES,
    "density": ("x_median", "notional", "size"),
}
"""Numeric fields by section, as alert rules and exports name them (``density`` is computed:
the largest value over the symbol's active densities)."""
