"""A small, bounded HTTP GET client for Bybit's public REST API (standard library only).

Everything that comes back is hostile until checked: the reply must be HTTP 200, at most
``max_bytes`` long, one JSON object with ``retCode`` 0, a string ``retMsg`` and a ``result``
object whose ``list`` is a list of objects; anything else is a :class:`~bybitmon.errors.RestError`
with a one-line message. The whole call (connect, headers, body) finishes within ``timeout_s``:
a watchdog shuts the connection's socket at the deadline, so a server that drips its headers or
body a byte at a time cannot hold the call (or its thread) longer. Before parsing, the number of
JSON values is bounded (:data:`MAX_JSON_VALUES`): 8 MiB of ``[{},{},...]`` would otherwise become
~300 MB of Python objects. Nesting deeper than orjson's 1024 levels is refused by orjson itself.

The request runs in a daemon thread (``urllib``), so a server that never answers cannot keep the
process alive after the caller gave up: asyncio's default executor would be joined at exit.

Bybit's HTTP limit: "600 requests within a 5-second window per IP"; beyond it the answer is HTTP
403 and the IP "should stop for at least 10 minutes"
(https://bybit-exchange.github.io/docs/v5/rate-limit). Discovery needs a handful of calls and
never retries a 403.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from .. import __version__
from ..errors import RestError, printable

__all__ = ["MAINNET_REST", "TESTNET_REST", "MAX_BYTES", "MAX_JSON_VALUES", "rest_base", "RestReply", "rest_get",
           "rest_get_sync"]

MAINNET_REST = "https://api.bybit.com"
TESTNET_REST = "https://api-testnet.bybit.com"

#: A cursor goes back as Bybit sent it ("already URL-encoded"): no characters that would change
#: the query string's meaning or need encoding again.
_CURSOR = re.compile(r"[A-Za-z0-9%._~=-]{1,512}")
_READ_CHUNK = 65536
#: The largest reply read. Bybit's largest answer discovery asks for (1,000 linear instruments,
#: ~45 values each) is ~1.5 MB.
MAX_BYTES = 8 * 2**20
#: The most JSON values (objects, arrays and members) a reply may hold, counted before parsing
#: (``{ [ , :`` bytes; strings holding them only make the count larger). A 1,000-instrument page
#: holds ~45,000; 300,000 bound the parsed reply to a few tens of MB whatever its shape.
MAX_JSON_VALUES = 300_000


def _clip(text: object, n: int = 120) -> str:
    """``text`` from outside as one printable line of about ``n`` characters."""
    return printable(text, n)


def rest_base(ws_url: str | None, testnet: bool = False) -> str:
    """The REST base URL that goes with a WebSocket URL.

    Bybit's own streams map to ``https://api.bybit.com`` (testnet ``https://api-testnet.bybit.com``);
    any other ``ws://HOST:PORT`` / ``wss://HOST:PORT`` maps to ``http://HOST:PORT`` /
    ``https://HOST:PORT`` (``bybitmon serve`` answers REST on its WebSocket port).

    Raises:
        RestError: ``ws_url`` is not a ws:// or wss:// URL.
    """
    if not ws_url:
        return TESTNET_REST if testnet else MAINNET_REST
    parts = urlsplit(ws_url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise RestError(f"bad URL {_clip(ws_url)!r}: use ws://HOST:PORT or wss://HOST")
    host = parts.hostname or ""
    if host in ("stream.bybit.com",):
        return MAINNET_REST
    if host in ("stream-testnet.bybit.com",):
        return TESTNET_REST
    return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"


class RestReply:
    """A checked reply: ``result`` (the object), ``items`` (``result.list``), ``cursor``."""

    __slots__ = ("result", "items", "cursor", "time_ms")

    def __init__(self, result: dict[str, Any], items: list[dict[str, Any]], cursor: str | None,
                 time_ms: int | None) -> None:
        self.result = result
        self.items = items
        self.cursor = cursor
        self.time_ms = time_ms


def _url(base: str, path: str, params: dict[str, str], cursor: str | None) -> str:
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RestError(f"bad REST base URL {_clip(base)!r}: use http://HOST:PORT or https://HOST")
    query = urlencode(params)
    if cursor is not None:
        # Sent back unchanged: Bybit's cursor is already URL-encoded (protocol notes §11).
        query = f"{query}&cursor={cursor}" if query else f"cursor={cursor}"
    return f"{base.rstrip('/')}{path}" + (f"?{query}" if query else "")


class _Watchdog:
    """Shuts the socket of one HTTP call at its deadline, whatever phase the call is in (connect,
    status line, headers, body): every blocked read then returns or fails at once."""

    def __init__(self, timeout_s: float) -> None:
        self.expired = False
        self.answered = False  # the status line and headers came in
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shut()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _opener(watch: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib's default opener, with connections that hand their socket to ``watch``."""

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watch.attach(self.sock)

    class TLSConn(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watch.attach(self.sock)

    class Plain(urllib.request.HTTPHandler):
        def http_open(self, req):  # type: ignore[no-untyped-def]
            return self.do_open(Conn, req)

    class TLS(urllib.request.HTTPSHandler):
        def https_open(self, req):  # type: ignore[no-untyped-def]
            return self.do_open(TLSConn, req, context=self._context)  # type: ignore[attr-defined]

    return urllib.request.build_opener(Plain, TLS)


def _fetch(url: str, timeout_s: float, max_bytes: int) -> tuple[int, bytes]:
    """Blocking GET: (HTTP status, body). Raises RestError for every failure, one line."""
    host = urlsplit(url).netloc
    with _Watchdog(timeout_s) as watch:
        try:
            return _fetch_within(url, timeout_s, max_bytes, host, watch)
        except RestError:
            if watch.expired:
                what = "no complete reply" if watch.answered else "no reply"
                raise RestError(f"{host}: {what} within {timeout_s:g} s") from None
            raise


def _fetch_within(url: str, timeout_s: float, max_bytes: int, host: str, watch: _Watchdog) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout_s
    req = urllib.request.Request(url, headers={"User-Agent": f"bybitmon/{__version__}",
                                               "Accept": "application/json",
                                               "Accept-Encoding": "identity"})
    try:
        try:
            resp = _opener(watch).open(req, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            resp = exc  # a reply with a non-2xx status; its body is read the same way
        watch.answered = True
        with resp:
            status = int(resp.status if hasattr(resp, "status") else resp.code)
            length = resp.headers.get("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                raise RestError(f"{host}: reply of {int(length):,} bytes is over the {max_bytes:,}-byte limit")
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline or watch.expired:
                    raise RestError(f"{host}: no complete reply within {timeout_s:g} s")
                chunk = resp.read1(_READ_CHUNK)  # what one read gives: the deadline is checked often
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise RestError(f"{host}: reply over the {max_bytes:,}-byte limit")
                chunks.append(chunk)
            if watch.expired:  # the watchdog's shutdown looks like the end of the body
                raise RestError(f"{host}: no complete reply within {timeout_s:g} s")
            return status, b"".join(chunks)
    except RestError:
        raise
    except (socket.timeout, TimeoutError):
        raise RestError(f"{host}: no reply within {timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise RestError(f"{host}: no reply within {timeout_s:g} s") from None
        why = getattr(reason, "strerror", None) or reason
        raise RestError(f"{host}: cannot connect ({_clip(why, 80)})") from None
    except ssl.SSLError as exc:
        raise RestError(f"{host}: TLS error ({_clip(exc, 80)})") from None
    except (OSError, ValueError) as exc:
        # http.client's errors (BadStatusLine, IncompleteRead, LineTooLong...) are OSError or
        # HTTPException; a garbled status line or header ends up here too.
        raise RestError(f"{host}: bad HTTP reply ({_clip(type(exc).__name__ + ': ' + str(exc), 80)})") from None
    except Exception as exc:  # http.client.HTTPException and friends from a hostile peer
        raise RestError(f"{host}: bad HTTP reply ({_clip(type(exc).__name__, 80)})") from None


def _check(host: str, path: str, status: int, body: bytes) -> RestReply:
    """Validate the envelope: ``{"retCode":0,"retMsg":str,"result":{"list":[{...}],...}}``."""
    where = f"{host}{path}"
    if status == 403:
        # "access too frequent": Bybit wants at least 10 minutes of silence from this IP.
        raise RestError(f"{where}: HTTP 403 (Bybit's IP rate limit?); wait 10 minutes before trying again")
    if status != 200:
        raise RestError(f"{where}: HTTP {status}")
    values = body.count(b"{") + body.count(b"[") + body.count(b",") + body.count(b":")
    if values > MAX_JSON_VALUES:
        raise RestError(f"{where}: reply holds over {MAX_JSON_VALUES:,} JSON values; refusing to parse it")
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        why = "nested too deeply" if body[:2000].count(b"[") + body[:2000].count(b"{") > 1000 else "not JSON"
        raise RestError(f"{where}: reply is {why} ({_clip(body[:60].decode('utf-8', 'replace'), 60)!r})") from None
    if type(msg) is not dict:
        raise RestError(f"{where}: reply is not a JSON object")
    code = msg.get("retCode")
    ret_msg = msg.get("retMsg")
    if type(code) is not int:
        raise RestError(f"{where}: reply has no integer retCode")
    if code != 0:
        raise RestError(f"{where}: Bybit answered retCode {code}: {_clip(ret_msg, 100)}")
    if type(ret_msg) is not str:
        raise RestError(f"{where}: reply has no string retMsg")
    result = msg.get("result")
    if type(result) is not dict:
        raise RestError(f"{where}: reply has no result object")
    items = result.get("list")
    if type(items) is not list or not all(type(it) is dict for it in items):
        raise RestError(f"{where}: result.list is not a list of objects")
    cursor = result.get("nextPageCursor")
    if cursor is None or cursor == "":
        cursor = None
    elif type(cursor) is not str or not _CURSOR.fullmatch(cursor):
        raise RestError(f"{where}: unusable nextPageCursor {_clip(cursor, 40)!r}")
    t = msg.get("time")
    return RestReply(result, items, cursor, t if type(t) is int else None)


def rest_get_sync(base: str, path: str, params: dict[str, str] | None = None, *, cursor: str | None = None,
                  timeout_s: float = 10.0, max_bytes: int = MAX_BYTES) -> RestReply:
    """GET ``base + path`` with ``params`` (and a cursor sent back verbatim), checked.

    Raises:
        RestError: no reply in time, a transport error, a non-200 status, an oversized or
            malformed body, or ``retCode`` != 0 (message names the host and Bybit's ``retMsg``).
    """
    url = _url(base, path, params or {}, cursor)
    status, body = _fetch(url, timeout_s, max_bytes)
    return _check(urlsplit(url).netloc, path, status, body)


async def rest_get(base: str, path: str, params: dict[str, str] | None = None, *, cursor: str | None = None,
                   timeout_s: float = 10.0, max_bytes: int = MAX_BYTES) -> RestReply:
    """:func:`rest_get_sync` in a daemon thread; the caller waits at most ``timeout_s`` (+ slack)."""
    url = _url(base, path, params or {}, cursor)  # bad URLs fail here, before a thread starts
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[RestReply] = loop.create_future()

    def done(result: RestReply | None, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            reply = rest_get_sync(base, path, params, cursor=cursor, timeout_s=timeout_s, max_bytes=max_bytes)
        except BaseException as exc:  # handed to the loop; RestError for every expected failure
            loop.call_soon_threadsafe(done, None, exc)
        else:
            loop.call_soon_threadsafe(done, reply, None)

    threading.Thread(target=work, name="bybitmon-rest", daemon=True).start()
    try:
        return await asyncio.wait_for(fut, timeout_s + 1.0)
    except asyncio.TimeoutError:
        raise RestError(f"{urlsplit(url).netloc}: no reply within {timeout_s:g} s") from None
