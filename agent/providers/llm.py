"""Build the model-backed providers named by settings (``make_provider`` imports this lazily).

=============  ===============  ==================================================
llm_provider   cassette_mode    provider
=============  ===============  ==================================================
openai         off              OpenAIProvider (live)
openai         record           OpenAIProvider, responses appended to the cassette
openai/replay  replay / any     ReplayProvider (cassette only, CassetteMiss on a miss)
hybrid         off / record     HybridProvider(offline, OpenAIProvider)
hybrid         replay           HybridProvider(offline, ReplayProvider)
=============  ===============  ==================================================
"""

from __future__ import annotations

from agent.providers.base import Provider
from agent.providers.cassette import Cassette, RecordingTransport
from agent.providers.hybrid import HybridProvider
from agent.providers.offline import OfflineProvider
from agent.providers.openai_provider import OpenAIProvider
from agent.providers.replay import ReplayProvider, cassette_path
from textdesk.business import Business
from textdesk.errors import ConfigurationError
from textdesk.settings import Settings

__all__ = ["build_llm_provider"]


def _model_provider(settings: Settings, offline: OfflineProvider, cassette: Cassette | None,
                    replay: bool) -> OpenAIProvider:
    if replay:
        return ReplayProvider(settings, cassette, offline=offline)
    if settings.cassette_mode == "record":
        tape = cassette or Cassette.shared(cassette_path(settings))
        return OpenAIProvider(settings, transport=RecordingTransport(tape), offline=offline)
    return OpenAIProvider(settings, offline=offline)


def build_llm_provider(settings: Settings, business: Business, *,
                       cassette: Cassette | None = None) -> Provider:
    """The provider for ``settings.llm_provider`` (anything but "offline").

    ``business`` is accepted for symmetry with ``make_provider``; requests carry it per turn.
    ``cassette`` overrides the default file (``cassette_dir/<prompt>__<model>.jsonl``), e.g.
    one per eval suite.
    """
    del business
    offline = OfflineProvider()
    kind = settings.llm_provider
    replay = kind == "replay" or settings.cassette_mode == "replay"
    if kind in ("openai", "replay"):
        return _model_provider(settings, offline, cassette, replay)
    if kind == "hybrid":
        llm = _model_provider(settings, offline, cassette, replay)
        return HybridProvider(offline, llm, settings.hybrid_threshold)
    raise ConfigurationError(f"no model-backed provider named {kind!r}")
