"""The client's decisions about time, as pure functions: when to ping, when a silent connection
counts as stalled, and how long to wait before reconnecting.

No clock is read here: the caller passes ``now`` (monotonic seconds) and the times it noted,
so tests step a fake clock through every boundary instead of waiting (trio's ``MockClock``
idea, https://trio.readthedocs.io/en/stable/reference-testing.html#trio.testing.MockClock).
"""

from __future__ import annotations

import enum
import random

__all__ = ["WatchdogAction", "watchdog_decision", "backoff_delay", "next_attempt", "RESET_AFTER_UP_S"]

# A connection that stayed up this long was healthy: the next reconnect starts from the first delay.
RESET_AFTER_UP_S = 30.0


class WatchdogAction(enum.Enum):
    """What the watchdog does now."""

    WAIT = "wait"    # nothing due; look again after the returned delay
    PING = "ping"    # send Bybit's app-level {"op":"ping"} now
    STALL = "stall"  # nothing arrived for quiet_s + pong_timeout_s: replace the connection


def watchdog_decision(now: float, last_rx: float, last_ping: float, *, ping_interval_s: float,
                      quiet_s: float, pong_timeout_s: float) -> tuple[WatchdogAction, float]:
    """The watchdog's action at ``now``, and how long to wait before asking again.

    Args:
        now: the current time (monotonic seconds).
        last_rx: when the last frame of any kind arrived (a pong is a frame).
        last_ping: when the last ping was sent (the connection's opening counts as one).
        ping_interval_s: ping at least this often, even on a busy connection (Bybit
            recommends 20 s: "send the ping heartbeat packet every 20 seconds").
        quiet_s: after this long without a frame, ping at once (at most once per ``quiet_s``).
        pong_timeout_s: when still nothing arrived this long after ``quiet_s``, the
            connection has stalled.

    Returns:
        ``(action, wait_s)``: ``wait_s`` is 0 unless the action is ``WAIT``; it is the time
        until the next deadline, which a frame arriving meanwhile can only push later.
    """
    stall_at = last_rx + quiet_s + pong_timeout_s
    if now >= stall_at:
        return WatchdogAction.STALL, 0.0
    ping_at = min(last_ping + ping_interval_s, max(last_rx, last_ping) + quiet_s)
    if now >= ping_at:
        return WatchdogAction.PING, 0.0
    return WatchdogAction.WAIT, min(stall_at, ping_at) - now


def next_attempt(attempt: int, *, delivered_data: bool, up_s: float | None) -> int:
    """The reconnect attempt number after a connection ended.

    A connection that delivered a data frame, or stayed up ``RESET_AFTER_UP_S``, resets the
    count to 1 (the first, shortest delay): under a drop every few seconds the backoff must not
    keep growing across connections that worked. Failed connects and connections that
    delivered nothing keep doubling it.
    """
    if delivered_data or (up_s is not None and up_s >= RESET_AFTER_UP_S):
        return 1
    return attempt + 1


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (1-based): ``initial_s`` doubling
    up to ``max_s``, times a jitter in [0.8, 1.2) so that many clients do not reconnect together."""
    base = min(max_s, initial_s * (2 ** min(max(0, attempt - 1), 62)))
    return base * rng.uniform(0.8, 1.2)
