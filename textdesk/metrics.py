"""Prometheus metrics. One registry per process; with several uvicorn workers, set
PROMETHEUS_MULTIPROC_DIR so the client aggregates across them (README, Operations)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.messages = Counter(
            "textdesk_messages", "Messages by direction and route", ["direction", "route"], registry=r
        )
        self.segments = Counter("textdesk_segments", "SMS segments sent", registry=r)
        self.llm_calls = Counter("textdesk_llm_calls", "LLM calls made", registry=r)
        self.tokens = Counter("textdesk_llm_tokens", "LLM tokens used", ["kind"], registry=r)
        self.turn_latency = Histogram(
            "textdesk_turn_seconds",
            "Pipeline time per inbound turn",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
        )
        self.escalations = Counter("textdesk_escalations", "Escalations by reason", ["reason"], registry=r)
        self.opt_outs = Counter("textdesk_opt_outs", "Opt-outs", registry=r)
        self.delivery_failures = Counter(
            "textdesk_delivery_failures", "Failed deliveries by error code", ["code"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
