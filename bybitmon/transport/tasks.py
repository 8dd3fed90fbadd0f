"""A tracked set of asyncio tasks: nothing the client or the feed starts is fire-and-forget.

``asyncio.create_task`` keeps only a weak reference to its task ("Save a reference to the result
of this function, to avoid a task disappearing mid-execution",
https://docs.python.org/3/library/asyncio-task.html#asyncio.create_task). Every task here is
held until it ends, an exception it ends with is logged (never "Task exception was never
retrieved" at exit), and :meth:`TaskSet.cancel_all` cancels and awaits whatever is left.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

from ..errors import printable

__all__ = ["TaskSet"]

log = logging.getLogger("bybitmon.tasks")


class TaskSet:
    """Tasks owned by one object; cancelled and awaited together by :meth:`cancel_all`."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task:
        """Start ``coro`` as a task held by this set until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s ended with %s: %s", task.get_name(), type(exc).__name__, printable(exc))

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until all have ended."""
        current = asyncio.current_task()
        while tasks := [t for t in self._tasks if t is not current]:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
