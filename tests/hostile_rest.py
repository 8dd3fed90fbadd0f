"""A hostile Bybit-like REST server on 127.0.0.1, one attack per mode, in a background thread.

``with HostileRest(mode) as base:`` gives ``http://127.0.0.1:PORT``; ``ws_url`` is the matching
``ws://`` URL for ``watch --all --url`` (which asks REST on the WebSocket's host and port). Modes:

- ``deep``: a reply nested 100,000 arrays deep (200 KB).
- ``deep-item``: a valid envelope whose one instrument holds a value nested 5,000 deep.
- ``values``: a valid envelope listing 400,000 empty objects (1.2 MB; ~14 MB as Python objects
  per 100,000, so the bound matters long before the byte limit).
- ``huge``: a 64 MiB body without Content-Length.
- ``drip-body``: headers at once, then the body one byte every 50 ms.
- ``drip-head``: the status line and headers one byte every 50 ms.
- ``spot-20k`` / ``spot-100k``: spot's one page with 20,000 / 100,000 trading instruments.
- ``linear-100k``: 100,000 linear instruments, 1,000 a page, as long as it is asked.
- ``cursor-loop``: linear pages whose nextPageCursor goes a -> b -> a ...
- ``endless``: linear pages with a new cursor every time, each page 0.3 s late.
- ``wrong-types``: instruments whose fields have every wrong type, among two good ones.
- ``evil-names``: symbols with escape sequences, a 1 MB name, and two good ones.
"""

from __future__ import annotations

import socketserver
import threading
import time
from urllib.parse import parse_qs, urlsplit

import orjson

MODES = ("deep", "deep-item", "values", "huge", "drip-body", "drip-head", "spot-20k", "spot-100k", "linear-100k",
         "cursor-loop", "endless", "wrong-types", "evil-names")
EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m"


def envelope(result: dict) -> bytes:
    return orjson.dumps({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1})


def http(body: bytes, *, length: bool = True) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def item(sym: object, **extra) -> dict:
    return {"symbol": sym, "status": "Trading", "baseCoin": "A", "quoteCoin": "USDT", **extra}


class HostileRest:
    """The server; ``requests`` counts the requests it answered (or began to)."""

    def __init__(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.requests = 0
        self.closed_early = threading.Event()  # a drip saw the client go away
        # Built here, not per request: a test that measures the client's memory does not see it.
        self.bomb = envelope({"category": "linear", "list": [{}] * 400_000, "nextPageCursor": ""}) \
            if mode == "values" else b""
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                target = data.split(b" ", 2)[1].decode()
                outer.requests += 1
                try:
                    outer.answer(self.request, target)
                except OSError:
                    outer.closed_early.set()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.allow_reuse_address = True
        self.server.server_bind()
        self.server.server_activate()
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.base

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, sock, target: str) -> None:
        q = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
        category = q.get("category", "linear")
        mode = self.mode
        if mode == "deep":
            sock.sendall(http(b"[" * 100_000 + b"]" * 100_000))
        elif mode == "deep-item":
            sock.sendall(http(envelope({"category": category, "list": [item("AUSDT", x=0)], "nextPageCursor": ""})
                              .replace(b'"x":0', b'"x":' + b"[" * 5000 + b"]" * 5000)))
        elif mode == "values":
            sock.sendall(http(self.bomb))
        elif mode == "huge":
            sock.sendall(http(b"", length=False))
            block = b" " * 2**20
            for _ in range(64):
                sock.sendall(block)
        elif mode == "drip-body":
            body = envelope({"category": category, "list": [item("AUSDT")], "nextPageCursor": ""})
            head, _, rest = http(body).partition(b"\r\n\r\n")
            sock.sendall(head + b"\r\n\r\n")
            for i in range(len(rest)):
                time.sleep(0.05)
                sock.sendall(rest[i:i + 1])
        elif mode == "drip-head":
            for i, b in enumerate(http(envelope({"category": category, "list": [], "nextPageCursor": ""}))):
                time.sleep(0.05)
                sock.sendall(bytes([b]))
        elif mode in ("spot-20k", "spot-100k"):
            n = 20_000 if mode == "spot-20k" else 100_000
            sock.sendall(http(envelope({"category": category, "list": [item(f"S{i}USDT") for i in range(n)]})))
        elif mode == "linear-100k":
            page = int(q.get("cursor", "p0")[1:])
            items = [item(f"L{page * 1000 + i}USDT") for i in range(1000)]
            sock.sendall(http(envelope({"category": category, "list": items,
                                        "nextPageCursor": f"p{page + 1}" if page < 99 else ""})))
        elif mode == "cursor-loop":
            nxt = "b" if q.get("cursor") == "a" else "a"
            sock.sendall(http(envelope({"category": category, "list": [item(f"{nxt.upper()}USDT")],
                                        "nextPageCursor": nxt})))
        elif mode == "endless":
            time.sleep(0.3)
            sock.sendall(http(envelope({"category": category, "list": [item(f"E{self.requests}USDT")],
                                        "nextPageCursor": f"c{self.requests}"})))
        elif mode == "wrong-types":
            items = [item("AUSDT"), {"symbol": None}, {"symbol": ["BUSDT"]}, {"symbol": {"s": 1}},
                     {"symbol": 1e308}, {"symbol": True}, item("CUSDT", status=["Trading"]),
                     item("DUSDT", status=None), {"symbol": "EUSDT", "status": "Trading", "baseCoin": {"x": 1},
                                                  "quoteCoin": 5},
                     {"symbol": "FUSDT", "status": "Trading", "baseCoin": "F" * 10_000, "quoteCoin": ["USDT"]},
                     item("GUSDT", turnover24h={"a": 1})]
            sock.sendall(http(envelope({"category": category, "list": items, "nextPageCursor": None,
                                        "extra": [1, {"a": [None]}]})))
        elif mode == "evil-names":
            items = [item("AUSDT"), item(f"B{EVIL}USDT"), item("Z" * 2**20), item("C\u202eUSDT"),
                     item("BTC-26DEC25"), item("")]
            sock.sendall(http(envelope({"category": category, "list": items, "nextPageCursor": ""})))
