"""The offline understanding provider: rules, fuzzy matching, a small trained classifier and
deterministic date/time parsing. No network. It is the default provider and the fast path
of hybrid mode, so its confidence must mean something: hybrid calls the LLM below it.
"""

from __future__ import annotations

import functools
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
from agent.nlu.intents import TRAIN_PATH, IntentClassifier, load_default, load_examples
from agent.providers.base import UnderstandRequest
from agent.timeparse import parse_time, parse_when
from agent.types import Slots, Understanding
from tools.faq import answer_faq

__all__ = ["OfflineProvider"]

_CANCEL_WORD = r"(?:cancel|cancell?ing|cancl|cancle|canel|cncl|cxl|call off|stop)"
_RESCHEDULE = re.compile(
    r"\b(re-?schedule|resched|push (?:my|it|the|our)\b.{0,20}\bto|"
    r"move (?:my|it|the|our|appt|appointment)|push (?:it|my|the)\b.*\b(back|later)|"
    r"change (?:my|the) (?:appt|appointment|booking|time|day|date)|switch (?:my|it|the)|"
    r"can'?t make it\b.*\b(instead|another|different|other|move|change)|bump (?:it|my))\b"
)
_CANCEL = re.compile(
    rf"\b{_CANCEL_WORD}\b.{{0,40}}\b(appt|apt|appointment|booking|"
    r"haircut|cut|color|colour|mani|manicure|nails|trim|it|session|visit)\b"
    r"|\b(appt|appointment|booking)\b.{0,20}\bcancel"
)
_CHECK = re.compile(
    r"\b(when(?:'s| is| was)? my|what time (?:is|was|am) (?:my|i|it)|do i have (?:an?|any)|"
    r"am i (?:booked|scheduled)|when am i|my (?:appt|appointment|booking) (?:is )?(?:at|on) what|"
    r"who(?:'s| is) (?:doing|cutting|coloring|colouring) my|i thought i booked|"
    r"(?:is|are) my \w+(?: appt| appointment)? still (?:on|booked|happening|good)|"
    r"what do i have|what have i got|what(?:'s| is) left on my|did my \w+ go through)\b"
)
_SPLIT_NEW = re.compile(r"\b(?:to|for|instead|until|til|till|into)\b")
_INSTEAD_OF = re.compile(r"\binstead of\b|\brather than\b")
_BOOK_VERB = re.compile(
    r"\b(book|schedule|appt|appointment|get (?:a|an|me|my)|need (?:a|an)|want (?:a|an)|"
    r"come in|squeeze me in|fit me in|slot|available|availability|opening)\b"
)
_HOURS_Q = re.compile(
    r"\b(are you open|r u open|you open|what time do you (?:open|close|end)|when do you (?:open|close)|"
    r"hours|how late|how early|close today|closing time|opening time)\b"
)
_CONTEXT_TIME = re.compile(
    r"\b(?:make it|how about|what about|try|maybe|switch to|change (?:it )?to|move (?:it )?to|rather|or)\s+"
    r"(\d{1,2}(?::\d{2})?)\b|"
    r"\b(\d{1,2}(?::\d{2})?)\s+(?:would be better|works better|is better|instead|would work)"
)
# Words that mark a message as being about this business at all; a message with none of them
# that the classifier cannot place confidently is out of scope rather than unclear.
_DOMAIN = re.compile(
    r"\b(book|booking|booked|appt|apt|appointment|schedul\w*|resched\w*|cancel\w*|slots?|open|openings|close|"
    r"closed|hours?|salon|stylist|price|cost|how much|charge\w*|refund|pay|paid|deposit|walk|walk-in|located|"
    r"location|address|parking|person|human|someone|manager|email|name|hair|nail|nails|color|colour|cut|"
    r"trim|mani|you guys|visit|come in|available|staff|rude|complain\w*|how long)\b"
)
_WORDS = re.compile(r"[a-z']+")
_STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "you",
        "your",
        "are",
        "was",
        "were",
        "with",
        "what",
        "when",
        "where",
        "who",
        "how",
        "can",
        "could",
        "would",
        "should",
        "will",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "have",
        "has",
        "had",
        "not",
        "but",
        "from",
        "into",
        "about",
        "just",
        "like",
        "idk",
        "one",
        "thing",
        "stuff",
        "some",
        "any",
        "all",
        "its",
        "it's",
        "i'm",
        "im",
        "me",
        "my",
        "mine",
        "our",
        "ours",
        "they",
        "them",
        "their",
        "then",
        "than",
        "too",
        "very",
        "really",
        "also",
        "get",
        "got",
        "do",
        "does",
        "did",
        "done",
        "thx",
        "pls",
        "plz",
        "lol",
        "yeah",
        "yes",
        "okay",
        "ok",
    ]
)
_INTENT_FOR_TOPIC = {"billing": "billing", "refund": "billing", "complaint": "complaint"}


@functools.cache
def _training_vocab() -> frozenset[str]:
    """Every word of the shipped training data: a message with too few of them is gibberish."""
    words: set[str] = set()
    for examples in load_examples(TRAIN_PATH).values():
        for ex in examples:
            words.update(_WORDS.findall(ex.lower()))
    return frozenset(words)


def _fmt_date(d: object) -> str | None:
    return d.isoformat() if d is not None else None  # type: ignore[attr-defined]


def _fmt_time(t: object) -> str | None:
    return t.strftime("%H:%M") if t is not None else None  # type: ignore[attr-defined]


class OfflineProvider:
    name = "offline"

    def __init__(self, classifier: IntentClassifier | None = None) -> None:
        self._classifier = classifier
        self._vocab: frozenset[str] | None = None

    @property
    def vocab(self) -> frozenset[str]:
        if self._vocab is None:
            self._vocab = _training_vocab()
        return self._vocab

    def warm(self) -> None:
        """Train the classifier now (at start-up) rather than on the first customer's turn."""
        _ = self.classifier, self.vocab

    @property
    def classifier(self) -> IntentClassifier:
        if self._classifier is None:
            self._classifier = load_default()
        return self._classifier

    async def understand(self, req: UnderstandRequest) -> Understanding:
        return self.parse(req)

    def parse(self, req: UnderstandRequest) -> Understanding:
        text, st, b = req.text.strip(), req.state, req.business
        low = text.lower()
        when = parse_when(text, req.local_now)
        pending = st.pending
        affirm = detect_affirm(text)
        choice = detect_choice(text) if pending in ("time", "pick_booking", "reminder") else None
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
        moving = (
            req.bookings
            and (slots.date or slots.time)
            and (_INSTEAD_OF.search(low) or re.search(r"\binstead\b|\bcan (?:my|our) \w+ be\b", low))
        )
        if _RESCHEDULE.search(low) or (st.task is None and moving):
            intent, conf = "reschedule_appointment", max(conf, 0.9)
        elif _CANCEL.search(low) and not re.search(r"\bcancel(?:lation)? (?:policy|fee)\b", low):
            intent, conf = "cancel_appointment", max(conf, 0.9)
        elif _CHECK.search(low):
            intent, conf = "check_appointment", max(conf, 0.9)
        elif slots.email and intent not in ("request_human",):
            intent, conf, topic = "update_contact", max(conf, 0.9), None
        elif _HOURS_Q.search(low) and not slots.service:
            intent, conf = "ask_question", max(conf, 0.85)
        elif (
            slots.service
            and (slots.date or slots.time or _BOOK_VERB.search(low))
            and not re.search(r"\b(how much|price|cost|how long|hw much|charge for)\b", low)
        ):
            intent, conf = "book_appointment", max(conf, 0.8)
        if topic in _INTENT_FOR_TOPIC and intent not in ("book_appointment", "reschedule_appointment"):
            intent, conf = _INTENT_FOR_TOPIC[topic], max(conf, 0.85)
        elif intent in ("billing", "complaint") and topic is None and conf < 0.9:
            intent, conf = None, min(conf, 0.4)  # an escalation needs more than a statistical hunch
        words = _WORDS.findall(low)
        content = [w for w in words if len(w) > 2 and w not in _STOPWORDS]
        in_domain = bool(_DOMAIN.search(low) or slots.service or slots.provider or slots.time or slots.email)
        known_service = slots.service or st.slots.get("service") or st.context_service
        faq = answer_faq(b, text, services=[known_service] if known_service else None)
        if words and sum(w in self.vocab for w in words) / len(words) < 0.5 and not slots.given():
            intent, conf = None, 0.2  # keyboard mash or another language: unclear, not out of scope
        elif len(content) < 2 and intent == "out_of_scope" and not in_domain and affirm is None:
            intent, conf = None, min(conf, 0.4)  # "idk the one w the stuff": unclear, ask again
        elif (
            (
                conf < 0.55
                or intent in ("out_of_scope", "ask_question")
                or (intent == "book_appointment" and conf < 0.8)
            )
            and not in_domain
            and faq is None
            and intent not in ("greeting", "request_human")
            and affirm is None
            and topic is None
            and len(content) >= 2
        ):
            intent, conf = "out_of_scope", max(conf, 0.7)
        if (intent is None or conf < 0.55 or intent in ("greeting", "out_of_scope")) and faq is not None:
            intent, conf = "ask_question", max(conf, 0.75)
        if (
            conf < 0.55
            and not slots.given()
            and re.match(r"^(hi+|hello|hey+|good (?:morning|afternoon|evening)|yo)\b", low)
        ):
            intent, conf = "greeting", 0.7
        if slots.time is None and pending in ("confirm", "change", "time", "date"):
            m = _CONTEXT_TIME.search(low)
            if m:
                slots.time = _fmt_time(parse_time("at " + (m.group(1) or m.group(2))))

        if intent == "update_contact" or pending == "contact" or st.task == "update_contact":
            slots.name = extract_name(text)

        # A short answer to the bot's own question continues the active task.
        answers = (
            affirm is not None
            or choice is not None
            or (
                pending in ("service", "date", "time", "change", "contact", "pick_booking", "confirm")
                and (slots.given() or when.part_of_day or when.after)
                and len(tokens(text)) <= 8
            )
        )
        strong_switch = (
            intent in ("reschedule_appointment", "cancel_appointment", "check_appointment")
            and conf >= 0.85
            and intent != st.task
        )
        if (st.task or pending == "reminder") and pending and answers and not strong_switch and topic is None:
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
        if intent == "reschedule_appointment" or st.task == "reschedule_appointment":
            u.same_day = bool(re.search(r"\bsame (?:day|date)\b", low))
            if intent == "reschedule_appointment":
                self._split_reschedule(u, text, req)
        return u

    @staticmethod
    def _split_reschedule(u: Understanding, text: str, req: UnderstandRequest) -> None:
        """ "move my thursday appt to friday at 2": the first date names the booking, the rest is new.
        "friday at 3 instead of thursday" reads the other way round."""
        low = text.lower()
        inst = _INSTEAD_OF.search(low)
        if inst:
            new_part, old_part = low[: inst.start()], low[inst.end() :]
        else:
            parts = _SPLIT_NEW.split(low, maxsplit=1)
            if len(parts) != 2:
                return
            old_part, new_part = parts
        old = parse_when(old_part, req.local_now)
        new = parse_when(new_part, req.local_now)
        if old.date is not None and (new.date is not None or new.time is not None):
            u.target_date = old.date.isoformat()
            u.slots.date = _fmt_date(new.date)
            if new.time is not None:
                u.slots.time = _fmt_time(new.time)
            elif old.time is not None and inst:
                u.slots.time = None
