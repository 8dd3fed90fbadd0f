"""Builders of Bybit-shaped raw frames for tests (shapes as in the real linear capture)."""

from __future__ import annotations

import orjson


def book(symbol: str, u: int, bids=(), asks=(), *, snapshot: bool = False, ts: int = 1000,
         seq: int | None = None, depth: int = 50, cts: int | None = None) -> bytes:
    return orjson.dumps({
        "topic": f"orderbook.{depth}.{symbol}",
        "type": "snapshot" if snapshot else "delta",
        "ts": ts,
        "data": {"s": symbol, "b": [[str(p), str(s)] for p, s in bids],
                 "a": [[str(p), str(s)] for p, s in asks], "u": u, "seq": seq if seq is not None else u * 10},
        "cts": cts if cts is not None else ts - 1,
    })


def trades(symbol: str, items, *, ts: int | None = None) -> bytes:
    """items: (T, side "Buy"/"Sell", price, size, id)."""
    data = [{"T": t, "s": symbol, "S": side, "v": str(v), "p": str(p), "L": "PlusTick", "i": i,
             "BT": False, "RPI": False, "seq": 1} for t, side, p, v, i in items]
    return orjson.dumps({"topic": f"publicTrade.{symbol}", "type": "snapshot",
                         "ts": ts if ts is not None else max(x[0] for x in items), "data": data})
