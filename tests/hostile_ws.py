"""A small scripted WebSocket server on 127.0.0.1 for the client's edge cases: it acks every
request (and answers pings) and runs a test's script on each connection."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import orjson
from websockets.asyncio.server import ServerConnection, serve

Script = Callable[[ServerConnection, int], Awaitable[None]]


def trade_frame(symbol: str, ts: int, price: str = "100.0", size: str = "0.1", topic_first: bool = True) -> str:
    data = [{"T": ts, "s": symbol, "S": "Buy", "v": size, "p": price, "L": "PlusTick", "i": f"t{ts}", "BT": False}]
    if topic_first:
        return orjson.dumps({"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": ts, "data": data}).decode()
    return orjson.dumps({"ts": ts, "type": "snapshot", "topic": f"publicTrade.{symbol}", "data": data}).decode()


def book_frame(symbol: str, ts: int, u: int = 1, depth: int = 50) -> str:
    return orjson.dumps({"topic": f"orderbook.{depth}.{symbol}", "type": "snapshot", "ts": ts,
                         "data": {"s": symbol, "b": [["99.5", "1"]], "a": [["100.5", "2"]], "u": u, "seq": u},
                         "cts": ts}).decode()


class HostileServer:
    """``async with HostileServer(script) as srv``: ``srv.url``; ``srv.requests`` holds every
    JSON request received; ``srv.connections`` counts the connections accepted."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict] = []
        self.connections = 0
        self.subscribed = asyncio.Event()
        self._server = None
        self._scripts: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"ws://{host}:{port}"

    async def __aenter__(self) -> HostileServer:
        self._server = await serve(self._handler, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._scripts:
            task.cancel()
        self._server.close()
        await self._server.wait_closed()

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        n = self.connections
        reader = asyncio.create_task(self._read(ws))
        try:
            await self.subscribed.wait()
            script = asyncio.create_task(self.script(ws, n))
            self._scripts.add(script)
            await asyncio.gather(script, return_exceptions=True)
            self._scripts.discard(script)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, ws: ServerConnection) -> None:
        async for message in ws:
            req = orjson.loads(message)
            self.requests.append(req)
            if req.get("op") == "ping":
                await ws.send(orjson.dumps({"success": True, "ret_msg": "pong", "req_id": req.get("req_id", ""),
                                            "op": "ping"}).decode())
            else:
                await ws.send(orjson.dumps({"success": True, "ret_msg": "", "req_id": req.get("req_id", ""),
                                            "op": req.get("op")}).decode())
                if req.get("op") == "subscribe":
                    self.subscribed.set()
