"""Small shared helpers of the async tests."""

from __future__ import annotations

import asyncio
import time

from paths import TIMEOUT_FACTOR


async def eventually(cond, timeout: float = 10.0 * TIMEOUT_FACTOR, what: str = "condition") -> None:
    """Wait until ``cond()`` is true, polling; fail with ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def run(coro, timeout: float = 60 * TIMEOUT_FACTOR):
    """Run one async scenario with an overall time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
