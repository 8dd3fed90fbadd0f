"""``serve``'s resource budget across connections, and the rate limit on snapshot resends. Sans-I/O.

A slow or abusive client must not be able to make the server hold memory without bound: each
connection's unsent bytes are capped (``max_buffer_bytes``), the number of connections is capped,
and the unsent bytes of all connections together are capped; when the total passes its cap the
connections holding the most are cut first, so the clients that read keep being served. A client
that resubscribes a book over and over (each time asking for a snapshot, up to a thousand levels)
is rate limited by a token bucket per connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Budget", "TokenBucket", "over_budget"]

_C = TypeVar("_C")


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits of one server.

    Attributes:
        max_connections: Open connections at most; a handshake beyond it gets HTTP 503.
        max_buffer_bytes: Unsent bytes one connection may hold; past it the connection is cut.
        max_total_buffer_bytes: Unsent bytes all connections together may hold; past it the
            connections holding the most are cut until the total is back under the cap.
        resend_burst: Snapshot resends (a subscribe to a topic already subscribed) a connection
            may make at once.
        resend_per_s: Snapshot resends per second a connection earns back.
    """

    max_connections: int = 1000
    max_buffer_bytes: int = 16 * 2**20
    max_total_buffer_bytes: int = 256 * 2**20
    resend_burst: float = 50.0
    resend_per_s: float = 10.0


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; time is passed in (seconds)."""

    __slots__ = ("capacity", "rate", "tokens", "t")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.t = now

    def take(self, n: float, now: float) -> bool:
        """Take ``n`` tokens if there are that many at ``now``; say whether it did."""
        if now > self.t:
            self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
            self.t = now
        if n <= self.tokens:
            self.tokens -= n
            return True
        return False


def over_budget(sizes: Iterable[tuple[_C, int]], total_cap: int) -> list[_C]:
    """Which connections to cut so the unsent bytes left are at most ``total_cap``.

    Args:
        sizes: ``(connection, unsent bytes)`` of every open connection.
        total_cap: The cap on their sum.

    Returns:
        The connections holding the most bytes, largest first, fewest needed.
    """
    items = list(sizes)
    total = sum(n for _, n in items)
    cut: list[_C] = []
    if total <= total_cap:
        return cut
    for conn, n in sorted(items, key=lambda item: item[1], reverse=True):
        if total <= total_cap:
            break
        cut.append(conn)
        total -= n
    return cut
