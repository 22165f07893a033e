"""Escalation notices to a Slack-compatible incoming webhook (``settings.slack_webhook_url``).

Registered as a pipeline escalation hook: the pipeline runs it as a background task after the
turn committed, and this hook never raises, so Slack being slow or down cannot delay or fail the
customer's turn. Retries are bounded (3 attempts, short exponential back-off) and happen only on
transport errors, 429 and 5xx; a 4xx means the webhook URL is wrong and retrying will not help.
The summary is PII-redacted: phone numbers and emails do not leave for a chat workspace.
"""

from __future__ import annotations

import logging

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from textdesk.redact import redact

__all__ = ["SlackNotifier"]

log = logging.getLogger("textdesk.web.slack")

REASONS = {
    "requested": "Customer asked for a person",
    "low_confidence": "Bot could not understand",
    "billing": "Billing question",
    "complaint": "Complaint",
    "sensitive": "Sensitive topic",
    "repeated_failure": "Bot kept failing",
    "idle_claim": "Claimed but unanswered",
    "other": "Needs a person",
}


class _Retryable(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"webhook answered {status}")
        self.status = status


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable | httpx.TransportError)


class SlackNotifier:
    def __init__(
        self,
        webhook_url: str,
        public_url: str,
        client: httpx.AsyncClient | None = None,
        attempts: int = 3,
        wait_s: float = 0.5,
    ) -> None:
        self.webhook_url = webhook_url
        self.public_url = public_url.rstrip("/")
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=3.0))
        self.attempts, self.wait_s = attempts, wait_s

    def message(self, conversation_id: int, reason: str, summary: str) -> dict[str, str]:
        link = f"{self.public_url}/inbox/{conversation_id}"
        title = REASONS.get(reason, REASONS["other"])
        text = f":rotating_light: {title} (reason: {reason}) in conversation #{conversation_id}"
        if summary:
            text += f"\n> {redact(summary)[:500]}"
        text += f"\n<{link}|Open in the textdesk inbox>"
        return {"text": text}

    async def _post(self, payload: dict[str, str]) -> None:
        resp = await self.client.post(self.webhook_url, json=payload)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _Retryable(resp.status_code)
        resp.raise_for_status()

    async def __call__(self, conversation_id: int, reason: str, summary: str) -> None:
        """The escalation hook: post the notice; log, never raise, on failure."""
        payload = self.message(conversation_id, reason, summary)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.wait_s, max=5),
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    await self._post(payload)
        except Exception as exc:  # a notification must never break anything else
            log.warning(
                "slack.notify_failed", extra={"conversation_id": conversation_id, "error": type(exc).__name__}
            )
            return
        log.info("slack.notified", extra={"conversation_id": conversation_id, "reason": reason})

    async def aclose(self) -> None:
        await self.client.aclose()
