"""Offline natural-language understanding for textdesk (no LLM, no network)."""

from agent.nlu.intents import INTENTS, IntentClassifier, IntentPrediction, load_default

__all__ = ["INTENTS", "IntentClassifier", "IntentPrediction", "load_default"]
