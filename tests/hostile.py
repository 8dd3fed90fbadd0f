"""A small hostile Bybit-like WebSocket server on 127.0.0.1, one behaviour per mode.

Run as a process (``python tests/hostile.py MODE``): it prints ``ws://127.0.0.1:PORT`` on its
first line and serves ``/v5/public/<category>`` until killed. Modes:

- ``refuse``: every subscription refused, the ``ret_msg`` carrying OSC/CSI escape sequences.
- ``close``: subscriptions accepted, a few trades for the subscribed symbols, then the
  connection is closed with a close reason full of escape sequences (again and again).
- ``quiet``: subscriptions accepted, then only pongs, acks, binary frames and junk, never data.
- ``flood``: subscriptions accepted, then trades for ever-new, never subscribed symbols as fast
  as the socket takes them (plus one trade a second for the subscribed ones).
- ``data``: subscriptions accepted, then a steady stream of trades for the subscribed symbols.
- ``depth50``: as ``data``, but a request naming a book depth other than 50 is refused (as one
  bad topic fails a whole request on Bybit).

Tests start it with :func:`start` and stop it with :func:`stop`.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import sys
import time

import orjson

MODES = ("refuse", "depth50", "close", "quiet", "flood", "data")
# What a terminal would obey: set the window title (OSC 0), clear the screen (CSI 2J), and
# write the clipboard (OSC 52).
EVIL = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;cHduZWQ=\x07\x9b31m"


def trade_frame(symbol: str, ts_ms: int, n: int, price: float = 100.0) -> bytes:
    return orjson.dumps({"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": ts_ms,
                         "data": [{"T": ts_ms, "s": symbol, "S": "Buy" if n % 2 else "Sell", "v": "0.01",
                                   "p": f"{price + (n % 7) * 0.1:.1f}", "L": "PlusTick", "i": f"t{n}",
                                   "BT": False}]})


def ack(msg: dict, success: bool, ret_msg: str) -> bytes:
    return orjson.dumps({"success": success, "ret_msg": ret_msg, "conn_id": "hostile-1",
                         "req_id": msg.get("req_id"), "op": msg.get("op")})


async def handler(ws, mode: str) -> None:
    import websockets

    symbols: list[str] = []
    counter = itertools.count()

    async def receive() -> None:
        async for raw in ws:
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if type(msg) is not dict:
                continue
            op = msg.get("op")
            if op == "ping":
                await ws.send(orjson.dumps({"success": True, "ret_msg": "pong", "conn_id": "hostile-1",
                                            "req_id": msg.get("req_id"), "op": "ping"}))
            elif op == "subscribe":
                args = [a for a in msg.get("args") or [] if isinstance(a, str)]
                if mode == "refuse":
                    await ws.send(ack(msg, False, f"error:handler not found,topic:{','.join(args)}{EVIL}"))
                elif mode == "depth50" and any(a.startswith("orderbook.") and not a.startswith("orderbook.50.")
                                               for a in args):
                    await ws.send(ack(msg, False, f"error:handler not found,topic:{','.join(args)}"))
                else:
                    for a in args:
                        if a.startswith("publicTrade."):
                            symbols.append(a.split(".", 1)[1])
                    await ws.send(ack(msg, True, ""))
            elif op == "unsubscribe":
                await ws.send(ack(msg, True, ""))

    async def push() -> None:
        if mode == "refuse":
            await asyncio.Event().wait()
        if mode == "close":
            await asyncio.sleep(0.3)
            for sym in symbols:
                await ws.send(trade_frame(sym, int(time.time() * 1000), next(counter)))
            await asyncio.sleep(0.2)
            await ws.close(1011, f"bye{EVIL}"[:60])
            return
        if mode == "quiet":
            while True:
                await asyncio.sleep(0.2)
                await ws.send(orjson.dumps({"success": True, "ret_msg": "pong", "conn_id": "hostile-1",
                                            "op": "ping"}))
                await ws.send(b"\x00\x01binary junk")
                await ws.send("not json at all")
                await ws.send(orjson.dumps({"op": "subscribe", "success": True, "ret_msg": ""}))
        if mode == "flood":
            last_real = 0.0
            while True:
                now_ms = int(time.time() * 1000)
                batch = []
                for _ in range(200):
                    n = next(counter)
                    batch.append(trade_frame(f"FLOOD{n}USDT", now_ms, n))
                for frame in batch:
                    await ws.send(frame)
                if time.monotonic() - last_real > 1.0:
                    last_real = time.monotonic()
                    for sym in symbols:
                        await ws.send(trade_frame(sym, now_ms, next(counter)))
                await asyncio.sleep(0)
        if mode in ("data", "depth50"):
            while True:
                now_ms = int(time.time() * 1000)
                for sym in symbols:
                    await ws.send(trade_frame(sym, now_ms, next(counter)))
                await asyncio.sleep(0.01)

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(receive())
            tg.create_task(push())
    except* websockets.exceptions.ConnectionClosed:
        pass


async def main(mode: str) -> None:
    from websockets.asyncio.server import serve

    async with serve(lambda ws: handler(ws, mode), "127.0.0.1", 0, max_size=2**20) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"ws://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()


def start(mode: str) -> tuple[subprocess.Popen, str]:
    """Start the hostile server in ``mode``; returns the process and its base URL."""
    assert mode in MODES, mode
    p = subprocess.Popen([sys.executable, __file__, mode], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    line = p.stdout.readline()  # type: ignore[union-attr]
    m = re.match(r"(ws://127\.0\.0\.1:\d+)", line)
    assert m, f"hostile server printed {line!r}"
    return p, m.group(1)


def stop(p: subprocess.Popen) -> None:
    p.kill()
    p.wait(10)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except KeyboardInterrupt:
        pass
