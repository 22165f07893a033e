"""The offline understanding provider: rules, fuzzy matching, a small trained classifier and
deterministic date/time parsing. No network. It is the default provider and the fast path
of hybrid mode, so its confidence must mean something: hybrid calls the LLM below it.
"""

from __future__ import annotations

import re

from agent.extract import (
    detect_abandon,
    detect_affirm,
    detect_choice,
    detect_topic,
    extract_email,
    extract_name,
    match_provider,
    match_service,
    tokens,
)
from agent.nlu.intents import IntentClassifier
from agent.providers.base import UnderstandRequest
from agent.timeparse import parse_when
from agent.types import Slots, Understanding

__all__ = ["OfflineProvider"]

_RESCHEDULE = re.compile(
    r"\b(re-?schedule|resched|move (?:my|it|the|our|appt|appointment)|push (?:it|my|the)\b.*\b(back|later)|"
    r"change (?:my|the) (?:appt|appointment|booking|time|day|date)|switch (?:my|it|the)|"
    r"can'?t make it\b.*\b(instead|another|different|other|move|change)|bump (?:it|my))\b"
)
_CANCEL = re.compile(r"\b(cancel|cancell?ing|cxl|call off)\b.{0,40}\b(appt|appointment|booking|"
                     r"haircut|cut|color|colour|mani|manicure|nails|trim|it|session|visit)\b"
                     r"|\b(appt|appointment|booking)\b.{0,20}\bcancel")
_CHECK = re.compile(r"\b(when(?:'s| is| was)? my|what time (?:is|was) my|do i have (?:an?|any)|"
                    r"am i (?:booked|scheduled)|when am i|my (?:appt|appointment|booking) (?:is )?(?:at|on) what)\b")
_SPLIT_NEW = re.compile(r"\b(?:to|for|instead|until|til|till|into)\b")
_INTENT_FOR_TOPIC = {"billing": "billing", "refund": "billing", "complaint": "complaint"}


def _fmt_date(d: object) -> str | None:
    return d.isoformat() if d is not None else None  # type: ignore[attr-defined]


def _fmt_time(t: object) -> str | None:
    return t.strftime("%H:%M") if t is not None else None  # type: ignore[attr-defined]


class OfflineProvider:
    name = "offline"

    def __init__(self, classifier: IntentClassifier | None = None) -> None:
        self._classifier = classifier

    @property
    def classifier(self) -> IntentClassifier:
        if self._classifier is None:
            self._classifier = IntentClassifier.load_default()
        return self._classifier

    async def understand(self, req: UnderstandRequest) -> Understanding:
        return self.parse(req)

    def parse(self, req: UnderstandRequest) -> Understanding:
        text, st, b = req.text.strip(), req.state, req.business
        low = text.lower()
        when = parse_when(text, req.local_now)
        pending = st.pending
        affirm = detect_affirm(text)
        choice = detect_choice(text) if pending in ("time", "pick_booking") else None
        slots = Slots(
            service=match_service(b, text),
            provider=match_provider(b, text),
            date=_fmt_date(when.date),
            time=_fmt_time(when.time),
            email=extract_email(text),
        )
        pred = self.classifier.predict(text)
        intent: str | None = pred.intent
        conf = pred.confidence
        topic = detect_topic(text, list(b.escalate_topics))

        # High-precision task cues beat the statistical guess.
        if _RESCHEDULE.search(low):
            intent, conf = "reschedule_appointment", max(conf, 0.9)
        elif _CANCEL.search(low) and not re.search(r"\bcancel(?:lation)? (?:policy|fee)\b", low):
            intent, conf = "cancel_appointment", max(conf, 0.9)
        elif _CHECK.search(low):
            intent, conf = "check_appointment", max(conf, 0.9)
        if intent in ("out_of_scope", "greeting", "ask_question") and slots.service and (
            slots.date or slots.time or re.search(r"\b(book|appt|appointment|get|need|want|schedule)\b", low)
        ) and not re.search(r"\b(how much|price|cost|how long)\b", low):
            intent, conf = "book_appointment", max(conf, 0.8)
        if topic in _INTENT_FOR_TOPIC and intent not in ("book_appointment", "reschedule_appointment"):
            intent, conf = _INTENT_FOR_TOPIC[topic], max(conf, 0.85)

        if intent == "update_contact" or pending == "contact" or st.task == "update_contact":
            slots.name = extract_name(text)

        # A short answer to the bot's own question continues the active task.
        answers = (
            affirm is not None
            or choice is not None
            or (pending in ("service", "date", "time", "change", "contact") and
                (slots.given() or when.part_of_day or when.after) and len(tokens(text)) <= 8)
        )
        strong_switch = intent in ("reschedule_appointment", "cancel_appointment", "check_appointment") \
            and conf >= 0.85 and intent != st.task
        if st.task and pending and answers and not strong_switch and topic is None:
            intent, conf = None, 0.95
        u = Understanding(
            intent=intent,  # type: ignore[arg-type]
            confidence=round(min(max(conf, 0.0), 1.0), 4),
            slots=slots,
            affirm=affirm if pending == "confirm" or affirm is not None else None,
            choice=choice,
            part_of_day=when.part_of_day,
            after=_fmt_time(when.after),
            before=_fmt_time(when.before),
            topic=topic,
            abandon=bool(st.task) and detect_abandon(text),
            provider=self.name,
        )
        if intent == "reschedule_appointment":
            self._split_reschedule(u, text, req)
        return u

    @staticmethod
    def _split_reschedule(u: Understanding, text: str, req: UnderstandRequest) -> None:
        """"move my thursday appt to friday at 2": the first date names the booking, the rest is new."""
        parts = _SPLIT_NEW.split(text.lower(), maxsplit=1)
        if len(parts) != 2:
            return
        old = parse_when(parts[0], req.local_now)
        new = parse_when(parts[1], req.local_now)
        if old.date is not None and (new.date is not None or new.time is not None):
            u.target_date = old.date.isoformat()
            u.slots.date = _fmt_date(new.date)
            u.slots.time = _fmt_time(new.time) or u.slots.time if new.time else None
