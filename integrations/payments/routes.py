"""POST /stripe/webhook: Stripe's signed events update deposit payments (idempotent on event id)."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import State
from sqlalchemy.exc import IntegrityError

from integrations.errors import WebhookSignatureError
from store.payments import apply_stripe_event

__all__ = ["stripe_webhook"]

log = logging.getLogger("textdesk.stripe")


@post("/stripe/webhook", status_code=200, opt={"exclude_from_auth": True, "exclude_from_csrf": True},
      include_in_schema=False)
async def stripe_webhook(request: Request[Any, Any, Any], state: State) -> Response[str]:
    services = state.services
    handler = services.stripe_webhook
    if handler is None:
        return Response("stripe is not configured", status_code=404, media_type="text/plain")
    payload = await request.body()
    try:
        result = await handler.handle(payload, request.headers.get("stripe-signature"))
    except WebhookSignatureError as exc:
        log.warning("stripe.bad_signature", extra={"error": str(exc)})
        return Response("bad signature", status_code=400, media_type="text/plain")
    if result.update is None:  # a duplicate or an event type we do not act on
        return Response(result.outcome, media_type="text/plain")
    u = result.update
    try:
        async with services.sessions() as s:
            await apply_stripe_event(
                s, result.event_id, result.type, u.booking_id, u.session_id, u.status, services.clock.now()
            )
            await s.commit()
    except IntegrityError:  # this event id was applied already (perhaps a moment ago, elsewhere)
        return Response("duplicate", media_type="text/plain")
    except Exception:  # nothing was recorded: Stripe's retry applies it
        log.exception("stripe.apply_failed")
        return Response("retry", status_code=500, media_type="text/plain")
    return Response("ok", media_type="text/plain")
