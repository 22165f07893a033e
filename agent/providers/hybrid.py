"""Hybrid understanding: the offline provider first, the LLM only when offline is unsure.

Most SMS turns are short and regular ("yes", "2", "can i get a cut tmrw at 3"); the offline
parser handles them in well under a millisecond with a calibrated confidence. The model is
called only below ``threshold``, so a typical conversation costs a fraction of a call per
inbound message. :attr:`HybridProvider.stats` counts the calls saved.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.providers.base import Provider, UnderstandRequest
from agent.providers.offline import OfflineProvider
from agent.state import DialogueState
from agent.types import Understanding

__all__ = ["HybridProvider", "HybridStats", "offline_suffices"]


def offline_suffices(u: Understanding, state: DialogueState, threshold: float) -> bool:
    """True when the offline understanding is good enough to skip the model.

    Confident enough, or a clear dialogue act (yes/no, an option number) answering the
    question the bot is waiting on: no model reads "2" better than the list it refers to.
    """
    if u.error is not None:
        return False
    if u.confidence >= threshold:
        return True
    return state.pending is not None and (u.affirm is not None or u.choice is not None)


@dataclass
class HybridStats:
    turns: int = 0
    llm_turns: int = 0

    @property
    def saved(self) -> int:
        """Turns answered without a model call."""
        return self.turns - self.llm_turns

    @property
    def saved_share(self) -> float:
        return self.saved / self.turns if self.turns else 0.0


class HybridProvider:
    name = "hybrid"

    def __init__(self, offline: OfflineProvider, llm: Provider, threshold: float) -> None:
        self.offline = offline
        self.warm = offline.warm
        self.llm = llm
        self.threshold = threshold
        self.stats = HybridStats()

    async def understand(self, req: UnderstandRequest) -> Understanding:
        self.stats.turns += 1
        u = self.offline.parse(req)
        if offline_suffices(u, req.state, self.threshold):
            u.provider = f"{self.name}:{u.provider}"
            return u
        self.stats.llm_turns += 1
        v = await self.llm.understand(req)
        v.provider = f"{self.name}:{v.provider}"
        return v

    async def aclose(self) -> None:
        close = getattr(self.llm, "aclose", None)
        if close is not None:
            await close()
