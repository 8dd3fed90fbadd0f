"""The one exception tree of bybitmon.

Our exception hierarchy::

    BybitmonError
     +-- ProtocolError          a frame we cannot parse, or one Bybit's rules forbid (.raw excerpt)
     |    +-- BookSequenceError  delta out of order / before snapshot; the book resyncs
     +-- SubscriptionError      the server answered success=false (bad topic, too many args);
     |                          delivered as an object to ``on_subscribe_error``, not raised
     +-- FeedClosed             the connection was lost or could not be made; raised ``from``
     |                          the websockets / OSError / timeout it replaces
     +-- RecordingError         unreadable / corrupt / unwritable recording (names path and line)
     +-- UsageError             bad symbol, window or option value
 +-- OutputError            writing stdout or an output file failed (ends the command)
      +-- OutputClosed       the reader of stdout went away (``| head``): ends quietly

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
    "ProtocolError",
    "BookSequenceError",
    "SubscriptionError",
    "FeedClosed",
    "RecordingError",
    "UsageError",
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


class ProtocolError(BybitmonError):
    """A frame we cannot parse, or one that breaks Bybit's rules."""

    def __init__(self, message: str, raw: str | bytes | None = None) -> None:
        super().__init__(message)
        self.raw = raw[:200] if raw is not None else None


class BookSequenceError(ProtocolError):
    """A delta that cannot be applied: out of order, or before any snapshot."""


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


class OutputError(BybitmonError):
    """Writing stdout or an output file failed; the command ends (never retried as a network fault)."""


class OutputClosed(OutputError):
    """The reader of our output went away (a closed pipe): the command ends quietly."""
