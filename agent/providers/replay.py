"""The ``replay`` provider: recorded model responses, served offline through the live code path.

It *is* the OpenAI provider with a :class:`~agent.providers.cassette.ReplayTransport` under
its httpx client, so prompt rendering, request building, parsing, validation, repair and
fallback are the same code that ran when the cassette was recorded. A request the cassette
does not hold raises :class:`~agent.providers.cassette.CassetteMiss`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from agent.prompts import PromptSpec
from agent.providers.cassette import Cassette, ReplayTransport
from agent.providers.offline import OfflineProvider
from agent.providers.openai_provider import OpenAIProvider
from textdesk.settings import Settings

__all__ = ["ReplayProvider", "cassette_path"]


def cassette_path(settings: Settings) -> Path:
    """Default cassette file: one per prompt and model, e.g. ``understand@v1__gpt-4o-mini.jsonl``."""
    slug = re.sub(r"[^A-Za-z0-9@._-]+", "_", f"{settings.prompt}__{settings.llm_model}")
    return settings.cassette_dir / f"{slug}.jsonl"


class ReplayProvider(OpenAIProvider):
    name = "replay"

    def __init__(self, settings: Settings, cassette: Cassette | None = None, *,
                 offline: OfflineProvider | None = None, prompt: PromptSpec | None = None) -> None:
        self.cassette = cassette or Cassette.shared(cassette_path(settings))
        # No network, so no key: a placeholder keeps the SDK from reading the environment.
        offline_settings = settings.model_copy(update={"llm_api_key": SecretStr("replay")})
        super().__init__(offline_settings, transport=ReplayTransport(self.cassette), offline=offline,
                         prompt=prompt)
