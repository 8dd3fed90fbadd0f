"""A fake clock for the client's watchdog and backoff: time moves only when a test says so."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A clock that is manually advanced (Rich's and trio's MockClock idea): pass it as the
    client's ``clock`` and its :meth:`sleep` as ``sleep``; sleepers wake when :meth:`jump`
    moves time past their deadline."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, asyncio.Future]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, fut))
        try:
            await fut
        finally:
            self._sleepers = [(d, f) for d, f in self._sleepers if f is not fut]

    def jump(self, seconds: float) -> None:
        self.now += seconds
        for deadline, fut in self._sleepers:
            if deadline <= self.now and not fut.done():
                fut.set_result(None)


async def settle(rounds: int = 50) -> None:
    """Let every ready task run (no real time passes beyond the event loop's own turns)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def drained(health, quiet_s: float = 0.02) -> None:
    """Wait until frames already in flight to a connection have arrived (its count is still)."""
    while True:
        before = health.frames
        await asyncio.sleep(quiet_s)
        if health.frames == before:
            return
