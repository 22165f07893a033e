"""Pick the provider named by ``TEXTDESK_LLM_PROVIDER``."""

from __future__ import annotations

from agent.providers.base import Provider
from agent.providers.offline import OfflineProvider
from textdesk.business import Business
from textdesk.settings import Settings

__all__ = ["make_provider"]


def make_provider(settings: Settings, business: Business) -> Provider:
    if settings.llm_provider == "offline":
        return OfflineProvider()
    from agent.providers.llm import build_llm_provider  # imported lazily: openai is heavy

    return build_llm_provider(settings, business)
