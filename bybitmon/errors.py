"""The one exception tree of bybitmon.

Our exception hierarchy::

    BybitmonError
     +-- SubscriptionError      the server answered success=false (bad topic, too many args);
     |                          delivered as an object to ``on_subscribe_error``, raised by the
     |                          live commands when what the user asked for was refused
     +-- FeedClosed             the connection was lost or could not be made; raised ``from``
     |                          the websockets / OSError / timeout it replaces
     +-- RecordingError         unreadable / corrupt / unwritable recording (names path and line)
     +-- RestError              REST discovery failed: no reply, HTTP error, retCode != 0, bad shape
     +-- UsageError             bad symbol, window or option value
     +-- OutputError            writing stdout or an output file failed (ends the command)
          +-- OutputClosed      the reader of stdout went away (``| head``): ends quietly

A frame that cannot be parsed, or breaks Bybit's book rules, is not an exception: the core
counts it (``health.bad_frames``, ``gaps``, ``crossed``...) and the book resyncs, so there is no
``ProtocolError`` class (nothing would raise it).

Foreign errors are mapped to these at the edge that meets them (httpx's
``map_httpcore_exceptions`` pattern): :func:`bybitmon.transport.client.map_network_errors` turns
websockets' ``ConnectionClosed``/``InvalidHandshake``, ``OSError`` and timeouts into
:class:`FeedClosed`; the recording reader turns ``OSError``, zlib and zstd errors into
:class:`RecordingError`; JSON that does not parse is counted where it is met, never raised.

An ``OSError`` writing *output* (stdout, an alerts or recording file) is not mapped to
:class:`FeedClosed`: it is not a network fault, it ends the command (the app layer wraps it in
:class:`OutputError`; a closed pipe is :class:`OutputClosed` and ends quietly).

Every message is one line and says what to do; text that came from outside (a server's
``ret_msg``, a symbol, a close reason) goes into a message only through :func:`printable`.
``cli.py`` prints ``error: {exc}`` and exits 2.
"""

from __future__ import annotations


__all__ = [
    "BybitmonError",
    "SubscriptionError",
    "FeedClosed",
    "RecordingError",
    "UsageError",
    "RestError",
    "OutputError",
    "OutputClosed",
    "printable",
]


def printable(text: object, limit: int = 200) -> str:
    """``text`` made safe to show on one terminal line: control characters (C0, DEL, C1, which
    carry ANSI/OSC escape sequences) written as ``\\xNN`` / ``\\uNNNN``, cut to ``limit`` chars."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + "..."
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


class BybitmonError(Exception):
    """Base class of every error bybitmon raises on purpose."""


class SubscriptionError(BybitmonError):
    """The server refused a subscription (``success: false``).

    Attributes:
        topics: the refused topics (one, once the client has isolated it).
        reason: the server's ``ret_msg``, made printable.
    """

    def __init__(self, message: str, topics: tuple[str, ...] = (), reason: str = "") -> None:
        super().__init__(message)
        self.topics = topics
        self.reason = reason

    @classmethod
    def refused(cls, topic: str, ret_msg: object) -> SubscriptionError:
        """The error for one topic the server refused with ``ret_msg``."""
        why = printable(ret_msg if ret_msg is not None else "refused")
        return cls(f"subscription to {printable(topic, 80)} refused by the server: {why}", (topic,), why)


class FeedClosed(BybitmonError):
    """The connection to the server was lost, or could not be made."""


class RecordingError(BybitmonError):
    """A recording cannot be read or written."""


class UsageError(BybitmonError):
    """A bad command-line or API argument."""


class RestError(BybitmonError):
    """Bybit's REST API (instrument discovery) failed or answered something unusable."""


class OutputError(BybitmonError):
    """Writing stdout or an output file failed; the command ends (never retried as a network fault)."""


class OutputClosed(OutputError):
    """The reader of our output went away (a closed pipe): the command ends quietly."""
