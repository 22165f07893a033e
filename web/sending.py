"""Sending an agent's reply: the dispatcher's REST send, started in the background.

The request waits a moment (``SEND_WAIT_S``) so the page it redirects to usually shows the
outcome (sent / failed with its error code); a slow provider never holds the agent's page longer,
the send finishes in the background and the transcript's polling picks up the new status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from textdesk import tasks
from textdesk.delivery import Dispatcher

__all__ = ["SEND_WAIT_S", "send_soon"]

log = logging.getLogger("textdesk.web.sending")
SEND_WAIT_S = 3.0


async def _send(dispatcher: Dispatcher, message_id: int) -> None:
    try:
        await dispatcher.send(message_id)
    except Exception:  # logged; the message keeps its last stored status for the agent to see
        log.exception("inbox.send_failed", extra={"message_id": message_id})


async def send_soon(dispatcher: Dispatcher, message_id: int, wait_s: float = SEND_WAIT_S) -> None:
    task = tasks.spawn(_send(dispatcher, message_id))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), timeout=wait_s)
