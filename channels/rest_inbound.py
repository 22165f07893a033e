"""Webhook plumbing shared by providers that reply over REST (no inline answer format).

``answer_by_rest`` stores and answers the message through the pipeline, waiting at most the
channel's webhook budget, and sends the queued replies through the outbox in the background, so
the provider gets its 200 quickly and a retried webhook never sends a second reply (the inbound
is idempotent on the provider's id; each reply is claimed once). ``first_use`` is the replay
guard for signed webhooks that carry a nonce or a token id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from litestar import Request, Response

from store import repo
from textdesk import tasks
from textdesk.pipeline import Inbound, Pipeline, TurnResult

__all__ = ["answer_by_rest", "first_use", "form_or_json", "refuse"]

log = logging.getLogger("textdesk.channels")


async def answer_by_rest(
    services: Any, inbound: Inbound, budget_s: float, wait_for_sends: bool = False
) -> TurnResult | None:
    """The turn's result when it ended within ``budget_s``; None when it goes on in the background
    (its replies still leave by REST when it ends). ``wait_for_sends``: when the turn ended in
    time, also wait (within the same budget) for its replies to be handed over, for a channel
    whose response shows them (the web chat)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    pipeline: Pipeline = services.pipeline
    turn = asyncio.ensure_future(pipeline.handle(inbound))

    async def send_replies() -> None:
        result = await turn
        for r in result.replies:
            if r.status == "queued":
                await services.dispatcher.send(r.id)

    # Spawned first: the replies go out even when the webhook's request is cut short.
    sending = tasks.spawn(send_replies())
    try:
        result = await asyncio.wait_for(asyncio.shield(turn), timeout=budget_s)
        if wait_for_sends:
            await asyncio.wait_for(asyncio.shield(sending), timeout=max(deadline - loop.time(), 0.0))
    except TimeoutError:
        return None if not turn.done() else turn.result()
    return result


async def first_use(services: Any, provider: str, nonce: str, window: dt.timedelta) -> bool:
    """True the first time ``nonce`` is seen for ``provider`` within ``window``; False on a replay.
    Stored in the database, so it holds across workers and restarts."""
    async with services.sessions() as s:
        ok = await repo.first_use(s, provider, nonce, services.clock.now(), window)
        await s.commit()
        return ok


async def form_or_json(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The webhook's parameters, whether the provider posted a form, JSON or a query string.
    An unparseable body gives what the query string holds; the signature check decides."""
    params = {k: str(v) for k, v in request.query_params.items()}
    ctype = request.headers.get("content-type", "")
    try:
        if "json" in ctype:
            data = await request.json()
            if isinstance(data, dict):
                params.update({k: str(v) for k, v in data.items() if v is not None})
        elif request.method == "POST":
            form = await request.form()
            params.update({k: str(v) for k, v in form.items()})
    except Exception:
        log.info("webhook.unparseable_body", extra={"path": request.url.path})
    return params


def refuse(provider: str, reason: str, status_code: int = 403) -> Response[str]:
    log.warning("webhook.refused", extra={"provider": provider, "reason": reason})
    return Response("forbidden", status_code=status_code, media_type="text/plain")
