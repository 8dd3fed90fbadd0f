"""Running the async commands: the event loop, and ``serve`` until a signal."""

from __future__ import annotations

import asyncio
import signal
from typing import Any, Awaitable, Callable, Coroutine

__all__ = ["run_async", "serve_until_signal"]


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a live command's loop: on uvloop when it is installed (``pip install 'bybitmon[fast]'``,
    +23 % frames/s at 500 symbols in bench/scale.py), else on asyncio.

    The import is settled before the loop runs, so an error inside the command never carries a
    chained "No module named 'uvloop'".
    """
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    if uvloop is None:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def serve_until_signal(start: Callable[[], Awaitable[None]]) -> int:
    """Run ``start()`` (the server) as a task owned here until SIGINT/SIGTERM.

    Returns:
        128 + the signal's number (130 for Ctrl-C), or 0 when the server ended by itself.
        The server's own errors propagate unchanged.
    """
    loop = asyncio.get_running_loop()
    got: list[int] = []
    task = asyncio.ensure_future(start())

    def on_signal(signum: int) -> None:
        got.append(signum)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not got:
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return 128 + got[0] if got else 0
