"""The baseline: a bare Litestar endpoint answering fixed TwiML, served exactly like textdesk.

Same route (``POST /twilio/sms``), same ``uvicorn.run(..., factory=True)`` call shape, same
host/port/workers/log level as ``textdesk serve`` (textdesk/cli.py). It does not read the form,
check the signature or touch a database: it measures what Litestar + uvicorn + the loopback
socket cost on this machine, so ``rule path / bare`` isolates what the pipeline adds.

    python -m bench.bare_app --port 8766 [--workers 1]
"""

from __future__ import annotations

import argparse

from litestar import Litestar, Response, get, post

__all__ = ["TWIML", "app"]

TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Message>Maple Street Salon: reply STOP to '
         'opt out. Msg &amp; data rates may apply.</Message></Response>')


@post("/twilio/sms", status_code=200)
async def sms() -> Response[str]:
    return Response(TWIML, media_type="application/xml")


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def app() -> Litestar:
    return Litestar(route_handlers=[sms, healthz])


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args()
    uvicorn.run("bench.bare_app:app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, timeout_graceful_shutdown=20)


if __name__ == "__main__":
    main()
