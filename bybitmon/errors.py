"""The one exception tree of bybitmon.

Our exception hierarchy::

    BybitmonError
     +-- ProtocolError          a frame we cannot parse, or one Bybit's rules forbid
     |    +-- BookSequenceError  delta out of order / before snapshot; the book resyncs
     +-- SubscriptionError      the server answered success=false (bad topic, too many args)
     +-- FeedClosed             connection lost
     +-- RecordingError         unreadable / corrupt / unwritable recording (names path and line)
     +-- RestError              REST discovery failed: no reply, HTTP error, retCode != 0, bad shape
     +-- UsageError             bad symbol, window or option value

Every message is one line and says what to do; ``cli.py`` prints ``error: {exc}`` and exits 2.
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
    "RestError",
]


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
    """The server refused a subscription (``success: false``)."""

    def __init__(self, message: str, topics: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.topics = topics


class FeedClosed(BybitmonError):
    """The connection to the server was lost."""


class RecordingError(BybitmonError):
    """A recording cannot be read or written."""


class UsageError(BybitmonError):
    """A bad command-line or API argument."""


class RestError(BybitmonError):
    """Bybit's REST API (instrument discovery) failed or answered something unusable."""
