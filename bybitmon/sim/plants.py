"""The simulator's planted large orders (densities): placing them, pulling them, eating them.

Part of :class:`~bybitmon.sim.market.MarketSimulator` (a base class of it, so the methods read
the simulator's state as before). Each plant is placed 2-8 ticks behind the touch at 8-25 times
the median level size and either pulled (cancelled with no trade at its price while it rests) or
eaten (the price walks to it and trades of the opposite side take its whole size at its price).
:class:`PlantedOrder` records the ground truth the tests check the density tracking against.

Sans-I/O, like the rest of the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from heapq import heappush

from .state import ATTACK, CONSUMED, RESTING, Plant, Side, SymbolState

__all__ = ["PlantedOrder", "Plants", "EAT_BID", "EAT_ASK", "EATEN", "PULLED"]

EATEN, PULLED = "eaten", "pulled"
EAT_BID, EAT_ASK = 1, 2  # the simulator's event kinds for one step of eating a bid / an ask plant


@dataclass(frozen=True, slots=True)
class PlantedOrder:
    """Ground truth of one large order the simulator placed.

    Attributes:
        symbol: Instrument, e.g. ``"BTCUSDT"``.
        side: ``"Buy"`` for a resting bid, ``"Sell"`` for a resting ask. Trades that hit it have
            the opposite taker side.
        price: Price string exactly as it appears in the book frames.
        size: Size string (base coin; contracts for inverse) of the level when placed.
        placed_ms: Exchange ``ts`` (ms) of the book frame that first shows the planted size.
        fate: ``"eaten"`` (its whole size trades at ``price`` before it ends) or ``"pulled"``
            (cancelled; no trade at ``price`` on the hitting side while it rests).
        ended_ms: ``ts`` (ms) of the book frame that shows it gone (deleted, or for a pull
            possibly reduced to a normal size); ``None`` while it still rests. Every trade that
            hits an eaten order has ``placed_ms <= T <= ended_ms``; for a pulled order no trade
            at its price on the hitting side has ``T`` in that range.
    """

    symbol: str
    side: str
    price: str
    size: str
    placed_ms: int
    fate: str
    ended_ms: int | None = None


class Plants:
    """The plant lifecycle methods of :class:`~bybitmon.sim.market.MarketSimulator`, which
    owns the state they use and the trade emission."""

    planted: list[PlantedOrder]
    plant_every_s: float
    _heap: list[tuple[int, int, int]]

    def _emit_trades(self, sym: SymbolState, t: int, fills: list[tuple[bool, int, int]],
                     out: list[tuple[int, str]]) -> None:
        raise NotImplementedError

    def _on_eat(self, sym: SymbolState, side_idx: int, t: int, out: list[tuple[int, str]]) -> int:
        """One step of an eaten plant's attack: sweep levels in front of it, then eat it.

        Returns:
            The ms of the next step, or 0 when the plant is gone.
        """
        side = sym.sides[side_idx]
        pl = side.plant
        if pl is None or pl.phase != ATTACK:
            return 0
        rng = sym.rng
        buy = side_idx == 1  # asks are eaten by buyers
        keys = side.keys
        sizes = side.sizes
        pend = side.pend
        sign = side.sign
        fills: list[tuple[bool, int, int]] = []
        if keys[0] != pl.key:
            # The price walks to the plant: take whole levels in front of it.
            n = 1 + int(rng.random() * 3)
            while n and keys[0] != pl.key:
                k = keys[0]
                sz = sizes[k]
                if k not in pend:
                    pend[k] = sz
                del sizes[k]
                del keys[0]
                fills.append((buy, sign * k, sz))
                n -= 1
            nxt = t + 60 + int(rng.random() * 240)
        else:
            k = pl.key
            chunk = max(1, int(pl.lots * (0.1 + 0.3 * rng.random())))
            if chunk >= pl.left or pl.left - chunk < pl.lots * 0.05:
                chunk = pl.left
            rem = chunk
            for _ in range(int(rng.random() * 4)):
                if rem <= 1:
                    break
                piece = 1 + int((rem - 1) * 0.6 * rng.random())
                fills.append((buy, sign * k, piece))
                rem -= piece
            fills.append((buy, sign * k, rem))
            pl.left -= chunk
            if pl.left == 0:
                side.remove(k)
                pl.phase = CONSUMED
                nxt = 0
            else:
                if k not in pend:
                    pend[k] = sizes[k]
                sizes[k] = pl.left
                nxt = t + 60 + int(rng.random() * 340)
        self._emit_trades(sym, t, fills, out)
        return nxt

    def _end_plant(self, side: Side, pl: Plant, t: int) -> None:
        self.planted[pl.rec] = replace(self.planted[pl.rec], ended_ms=t)
        side.plant = None
        side.plant_key = None
        side.attacked = False

    def _plant_lifecycle(self, sym: SymbolState, t: int) -> None:
        """Start attacks, pull plants whose time is up, place a new plant when due."""
        rng = sym.rng
        for idx, side in enumerate(sym.sides):
            pl = side.plant
            if pl is None or pl.phase != RESTING or t < pl.end_at:
                continue
            if pl.fate == PULLED:
                if rng.random() < 0.5 and len(side.keys) > 1:
                    side.remove(pl.key)
                else:
                    n = sym.level_size()
                    side.set(pl.key, n if n != pl.lots else n + 1)
                self._end_plant(side, pl, t)
                # A taker arriving 1 ms later would have T == t: keep it off this price too.
                side.block_key = pl.key
                side.block_until = t + 1
            else:
                pl.phase = ATTACK
                side.attacked = True
                heappush(self._heap, (t + 1 + int(rng.random() * 40), EAT_BID + idx, sym.idx))
        if t < sym.next_plant:
            return
        sym.next_plant = t + self.plant_every_s * 1000.0 * (0.5 + rng.random())
        side_idx = 0 if rng.random() < 0.5 else 1
        if sym.sides[side_idx].plant is not None:
            side_idx ^= 1
        side = sym.sides[side_idx]
        if side.plant is not None:
            return
        key = side.keys[0] + 2 + int(rng.random() * 7)  # 2-8 ticks behind the touch
        if side.sign < 0 and key >= 0:
            return
        all_sizes = sorted([*sym.bids.sizes.values(), *sym.asks.sizes.values()])
        median = all_sizes[len(all_sizes) // 2]
        lots = max(8, int(median * (8.0 + 17.0 * rng.random())))
        if lots == side.sizes.get(key):
            lots += 1
        side.set(key, lots)
        if rng.random() < 0.5:
            fate, end_at = EATEN, t + 2000.0 + 8000.0 * rng.random()
        else:
            fate, end_at = PULLED, t + 4000.0 + 21000.0 * rng.random()
        self.planted.append(PlantedOrder(
            symbol=sym.name, side="Buy" if side_idx == 0 else "Sell", price=sym.price(side.sign * key),
            size=sym.size(lots), placed_ms=t, fate=fate, ended_ms=None))
        side.plant = Plant(key, lots, fate, end_at, len(self.planted) - 1)
        side.plant_key = key
        if side.block_key == key:
            side.block_key = None
