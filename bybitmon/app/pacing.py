"""The one pacing rule: a source's own clock mapped onto the wall clock at ``speed`` x real time."""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["Pacer"]


class Pacer:
    """How long to wait before a frame stamped ``t_ms`` is due.

    The first frame paced fixes the origin: a frame ``d`` ms of source time after it is due
    ``d / speed`` ms of wall time after the pacer started. Late frames are never waited for (the
    pacer does not try to catch up by skipping; it just stops waiting until the source is ahead
    again). Sync loops (``replay``) sleep the delay; async ones (the server) ``await`` it.

    Args:
        speed: multiple of real time; ``None`` = as fast as possible (never wait).
        clock: monotonic seconds (injectable for tests).
        slack_s: delays shorter than this are not worth a sleep.
    """

    __slots__ = ("speed", "clock", "slack_s", "wall0", "t0_ms")

    def __init__(self, speed: float | None, *, clock: Callable[[], float] = time.monotonic,
                 slack_s: float = 0.005) -> None:
        if speed is not None and not 0 < speed < float("inf"):
            raise ValueError(f"speed must be positive and finite, got {speed!r}")
        self.speed = speed
        self.clock = clock
        self.slack_s = slack_s
        self.wall0 = clock()
        self.t0_ms: float | None = None

    def start(self) -> None:
        """(Re)start the wall clock origin now; the next frame fixes the source origin."""
        self.wall0 = self.clock()
        self.t0_ms = None

    def delay(self, t_ms: float | None) -> float:
        """Seconds to wait before the frame at source time ``t_ms`` (0.0: due now)."""
        if self.speed is None or t_ms is None:
            return 0.0
        if self.t0_ms is None:
            self.t0_ms = t_ms
        ahead = self.wall0 + (t_ms - self.t0_ms) / 1000.0 / self.speed - self.clock()
        return ahead if ahead > self.slack_s else 0.0
