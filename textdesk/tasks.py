"""Fire-and-forget work that must not be lost at shutdown: one task set for the whole process.

Replies sent after a webhook answered, an agent's send, CRM hooks after a turn: each is spawned
here, so the task is referenced until it ends (asyncio keeps only weak references) and
``drain`` lets a stopping server finish them instead of cancelling a send half-way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

__all__ = ["drain", "pending", "spawn"]

log = logging.getLogger("textdesk.tasks")
_tasks: set[asyncio.Future[Any]] = set()


def _done(task: asyncio.Future[Any]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background.failed", exc_info=task.exception())


def spawn(coro: Awaitable[Any]) -> asyncio.Future[Any]:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_done)
    return task


def pending() -> int:
    return sum(not t.done() for t in _tasks)


async def drain(timeout_s: float = 10.0) -> None:
    """Wait for this loop's background tasks (and the ones they spawn); cancel what outlives
    ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        mine = [t for t in _tasks if not t.done() and t.get_loop() is loop]
        if not mine:
            return
        left = deadline - loop.time()
        if left <= 0:
            for t in mine:
                t.cancel()
            log.warning("background.cancelled_at_shutdown", extra={"tasks": len(mine)})
            return
        await asyncio.wait(mine, timeout=left)
