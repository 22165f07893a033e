"""Tests for the generic text classifier and the offline intent classifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.nlu.intents import (
    INTENTS,
    NLU_DIR,
    TRAIN_PATH,
    IntentClassifier,
    IntentPrediction,
    load_default,
    load_examples,
)
from textdesk.textclf import TextClassifier, normalize_text

DEV_PATH = NLU_DIR / "dev.yaml"
SELFCHECK_PATH = NLU_DIR / "selfcheck.yaml"

# --------------------------------------------------------------------------- textclf


def test_normalize_text_slang_and_punctuation() -> None:
    assert normalize_text("Can u move my APPT to tmrw @ 3pm?? thx!!") == (
        "can you move my appointment to tomorrow 3pm thanks"
    )
    assert normalize_text("  pls   dont   cancel  ") == "please dont cancel"
    assert normalize_text("I'm gonna b late, r u open?") == "i am going to b late are you open"
    assert normalize_text("wanna book w/ Kim plz") == "want to book with kim please"
    assert normalize_text("") == ""
    assert normalize_text("?!...") == ""


def test_normalize_text_placeholders() -> None:
    assert normalize_text("my email is Ana.Lopez+x@gmail.com") == "my email is emailaddr"
    assert normalize_text("new number (415) 555-0134") == "new number phonenum"
    assert normalize_text("charged $45.50 twice") == "charged moneyamt twice"
    assert normalize_text("see https://example.com/a?b=1 ok") == "see urladdr ok"


def test_normalize_text_squeezes_repeats() -> None:
    assert normalize_text("heyyyy thanksssss") == "hey thankss"  # "heyy" is slang for "hey"
    assert normalize_text("hiiiii") == "hi"  # squeezed to "hii", then slang


TOY_TEXTS = [
    "win a free prize now",
    "claim your free cash reward",
    "free money click here",
    "you won a lottery prize",
    "are we still on for lunch",
    "see you at lunch tomorrow",
    "can you call me when you are home",
    "dinner at mine tonight?",
]
TOY_LABELS = ["spam"] * 4 + ["ham"] * 4


def test_textclassifier_generic_toy_task() -> None:
    clf = TextClassifier.train(TOY_TEXTS, TOY_LABELS, epochs=8)
    assert clf.labels == ["ham", "spam"]
    assert clf.predict("free prize money")[0] == "spam"
    assert clf.predict("lunch tomorrow?")[0] == "ham"
    proba = clf.predict_proba("anything at all")
    assert set(proba) == {"ham", "spam"}
    assert abs(sum(proba.values()) - 1.0) < 1e-9
    assert all(0.0 <= p <= 1.0 for p in proba.values())


def test_textclassifier_typo_tolerance_from_char_ngrams() -> None:
    clf = TextClassifier.train(TOY_TEXTS, TOY_LABELS, epochs=8)
    assert clf.predict("fre prizee")[0] == "spam"


@pytest.mark.parametrize("model", ["logreg", "cnb"])
def test_textclassifier_json_round_trip(model: str) -> None:
    clf = TextClassifier.train(TOY_TEXTS, TOY_LABELS, model=model, epochs=8)
    restored = TextClassifier.from_json(clf.to_json())
    assert restored.labels == clf.labels
    assert restored.hyper == clf.hyper
    for text in [*TOY_TEXTS, "totally new words", ""]:
        a, b = clf.predict_proba(text), restored.predict_proba(text)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], abs=1e-4)


def test_textclassifier_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        TextClassifier.train(["a"], ["x", "y"])
    with pytest.raises(ValueError):
        TextClassifier.train(["a", "b"], ["x", "x"])
    with pytest.raises(TypeError):
        TextClassifier.train(TOY_TEXTS, TOY_LABELS, no_such_hyper=1)
    with pytest.raises(ValueError):
        TextClassifier.from_json(json.dumps({"format": 999}))


# --------------------------------------------------------------------------- data


def test_training_data_contract() -> None:
    data = load_examples(TRAIN_PATH)
    assert set(data) == set(INTENTS)
    for intent, examples in data.items():
        minimum = 700 if intent == "out_of_scope" else 150
        assert len(examples) >= minimum, intent
    seen: dict[str, str] = {}
    for intent, examples in data.items():
        for text in examples:
            key = " ".join(text.lower().split())
            assert key not in seen, f"duplicate {text!r} in {seen.get(key)} and {intent}"
            seen[key] = intent


def test_selfcheck_is_well_formed() -> None:
    data = load_examples(SELFCHECK_PATH)
    assert set(data) == set(INTENTS)
    assert all(len(v) >= 15 for v in data.values())


# --------------------------------------------------------------------------- intents


def test_training_is_deterministic() -> None:
    a = IntentClassifier.from_file(TRAIN_PATH)
    b = IntentClassifier.from_file(TRAIN_PATH)
    assert a.model.to_json() == b.model.to_json()


def test_intent_model_serialization_round_trip() -> None:
    clf = load_default()
    restored = IntentClassifier(TextClassifier.from_json(clf.model.to_json()))
    for text in ["can i get a trim saturday", "what's the weather", "i was charged twice", "hi"]:
        a, b = clf.predict(text), restored.predict(text)
        assert a.intent == b.intent
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


def test_load_default_is_cached() -> None:
    assert load_default() is load_default()


SPOT_CHECKS = [
    ("need a trim", "book_appointment"),
    ("can i book a fade for saturday at 11", "book_appointment"),
    ("I'd like to book an appointment at a salon", "book_appointment"),
    ("is Kim free friday", "book_appointment"),
    ("cant make it thursday can we do friday instead", "reschedule_appointment"),
    ("cancel my appointment", "cancel_appointment"),
    ("I won't make it tomorrow, please cancel", "cancel_appointment"),
    ("when is my appointment", "check_appointment"),
    ("what time am i booked for", "check_appointment"),
    ("do you take walk ins", "ask_question"),
    ("how much is a mens cut", "ask_question"),
    ("my email is ana.lopez@gmail.com", "update_contact"),
    ("this is Ana btw", "update_contact"),
    ("is this a bot", "request_human"),
    ("let me speak to the manager", "request_human"),
    ("i was charged twice", "billing"),
    ("can i get a refund", "billing"),
    ("my hair came out orange", "complaint"),
    ("the stylist was rude", "complaint"),
    ("hello", "greeting"),
    ("thank you so much", "greeting"),
    ("book a flight to boston", "out_of_scope"),
    ("reserve a table for 2 at 7", "out_of_scope"),
    ("play some jazz", "out_of_scope"),
    ("what's the exchange rate for euros", "out_of_scope"),
    ("set a timer for 10 minutes", "out_of_scope"),
    ("remind me about my appointment with the dentist", "out_of_scope"),
    ("schedule a meeting with my boss", "out_of_scope"),
]


@pytest.mark.parametrize(("text", "intent"), SPOT_CHECKS)
def test_spot_checks(text: str, intent: str) -> None:
    assert load_default().predict(text).intent == intent


def test_prediction_shape() -> None:
    pred = load_default().predict("can u fit me in tmrw for a mani")
    assert isinstance(pred, IntentPrediction)
    assert pred.intent == pred.ranking[0][0]
    assert pred.confidence == pred.ranking[0][1]
    assert [i for i, _ in sorted(pred.ranking)] == sorted(INTENTS)
    assert sum(p for _, p in pred.ranking) == pytest.approx(1.0)
    probs = [p for _, p in pred.ranking]
    assert probs == sorted(probs, reverse=True)


@pytest.mark.parametrize("text", ["", "   ", "?!?", "..."])
def test_empty_text_is_low_confidence_out_of_scope(text: str) -> None:
    pred = load_default().predict(text)
    assert pred.intent == "out_of_scope"
    assert pred.confidence < 0.5
    assert sum(p for _, p in pred.ranking) == pytest.approx(1.0)


def test_emoji_only_acknowledgement_is_greeting() -> None:
    assert load_default().predict("👍").intent == "greeting"


# --------------------------------------------------------------------------- accuracy


def _accuracy(path: Path) -> tuple[float, dict[str, float]]:
    clf = load_default()
    data = load_examples(path)
    ok = n = 0
    recall: dict[str, float] = {}
    for intent, examples in data.items():
        hits = sum(clf.predict(t).intent == intent for t in examples)
        recall[intent] = hits / len(examples) if examples else 0.0
        ok += hits
        n += len(examples)
    return ok / n, recall


def test_selfcheck_accuracy() -> None:
    acc, recall = _accuracy(SELFCHECK_PATH)
    assert acc >= 0.9, recall
    assert recall["out_of_scope"] >= 0.9
    assert recall["book_appointment"] >= 0.9


@pytest.mark.skipif(not DEV_PATH.exists(), reason="agent/nlu/dev.yaml (held-out dev set) is not present")
def test_dev_set_accuracy() -> None:
    acc, recall = _accuracy(DEV_PATH)
    assert acc >= 0.85, (acc, recall)
    assert recall["out_of_scope"] >= 0.85, recall
    assert recall["book_appointment"] >= 0.90, recall
