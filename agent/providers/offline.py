"""The offline understanding provider: rules, fuzzy matching, a small trained classifier and
deterministic date/time parsing. No network. It is the default provider and the fast path of
hybrid mode, so its confidence must mean something: hybrid calls the LLM below it, and the
policy asks a clarifying question below the clarify threshold instead of guessing.

How a turn is read, in order:
1. Dialogue acts that answer the bot's pending question (a yes, a pick, a missing slot).
2. Slots, from the business file only: services (names, aliases, their distinctive words),
   providers, dates, times, ranges of days, windows and preferences, a name or email.
3. References to the sender's own bookings: which ones the text names by service, day, time or
   provider, or by "my"/"thursday's". A text about a booking the customer has is a check, a
   cancel or a move, never a new booking.
4. English cues for cancelling, moving, checking and booking (agent/nlu/cues.py), the escalation
   topics of this business, and grounding: a question is about this business only when a FAQ
   entry, a service, a provider, the business itself or a "you" grounds it (tools/faq.py).
5. The trained classifier. Its vote decides only what the cues leave open, and the confidence
   reported is the evidence behind the decision: high for a cue the classifier agrees with,
   lower for a cue alone, the classifier's own probability (capped where slots contradict it)
   for the rest, and low for text the training data never saw. ``evidence`` names the reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from agent.daterange import parse_span
from agent.extract import (
    detect_abandon,
    detect_affirm,
    detect_choice,
    detect_topic,
    extract_email,
    extract_name,
    pick_offer,
    tokens,
)
from agent.nlu import cues
from agent.nlu.intents import IntentClassifier, load_default, load_examples, training_files
from agent.providers.base import UnderstandRequest
from agent.timeparse import parse_time, parse_when
from agent.types import BookingView, Slots, Understanding
from textdesk.vocab import content_words, vocabulary
from tools.faq import answer, outside_subject

__all__ = ["OfflineProvider"]

_SPLIT_NEW = re.compile(r"\b(?:to|for|instead|until|til|till|into)\b")
_INSTEAD_OF = re.compile(r"\binstead of\b|\brather than\b")
_CONTEXT_TIME = re.compile(
    r"\b(?:make it|how about|what about|try|maybe|switch to|change (?:it )?to|move (?:it )?to|rather|or|"
    r"(?:push|move|bump|change|switch|shift)\b.{0,30}?\bto|do)\s+"
    r"(\d{1,2}(?::\d{2})?)\b|"
    r"\b(\d{1,2}(?::\d{2})?)\s+(?:would be better|works better|is better|instead|would work)"
)
_HUMAN = re.compile(
    r"\b(?:talk|speak|chat|text) (?:to|with) (?:a |an |the |some )?(?:real |actual |live )?"
    r"(?:person|human|someone|somebody|manager|owner|staff|receptionist|people|agent|rep)\b"
    r"|\b(?:real|actual|live) (?:person|human)\b|\bis (?:this|there) a (?:real )?(?:person|human|bot)\b"
    r"|\bcan (?:someone|somebody|a person|a human) (?:call|text|contact) me\b|\bcall me back\b")
_GREETING = re.compile(r"^(?:hi+|hello+|hey+|hiya|howdy|good (?:morning|afternoon|evening)|yo|sup|"
                       r"thanks?|thank you|thx|ty|cheers|bye|ok thanks|great thanks)\b"
                       r"[\s!.,:)]*\w{0,12}[\s!.]*$")
_THANKS = re.compile(r"\b(thank|thx|ty\b|appreciate|cheers)")
_CAN_BE = re.compile(r"\b(?:can|could) (?:my|our|the|it|that) .{0,40}\bbe "
                     r"(?:at|on|moved|changed|later|earlier)\b"
                     r"|\b(?:can|could) (?:i|we) (?:come|do it|go) (?:in )?(?:later|earlier|at \d|on )")
_CONDITIONAL = re.compile(r"\b(?:if|when|once|after) (?:i|we) (?:get|book|do|come|bring|have|go)\b")
_CONTACT = re.compile(r"\b(?:my|the|our|a new|new|updated|different|correct) (?:email|e-mail|name|last name|"
                      r"surname|contact (?:info|details)|details on file|email address)\b"
                      r"|\bon (?:my )?file\b|"
                      r"\bin your (?:system|records)\b|\bspelled wrong\b|\bmisspelled\b")
_CONTACT_VERB = re.compile(r"\b(?:update|change|fix|correct|new|wrong|changed|switch|replace|edit|not)\b")
_ESCALATE_INTENT = {"billing": "billing", "refund": "billing", "complaint": "complaint"}
_WORDS = re.compile(r"[a-z']+")


@functools.cache
def _training_vocab() -> frozenset[str]:
    """Every word of the shipped training data: a message with too few of them is gibberish or
    another language, which the classifier cannot judge."""
    words: set[str] = set()
    for path in training_files():
        for examples in load_examples(path).values():
            for ex in examples:
                words.update(_WORDS.findall(ex.lower()))
    return frozenset(words)


def _fmt_date(d: dt.date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _fmt_time(t: dt.time | None) -> str | None:
    return t.strftime("%H:%M") if t is not None else None


def _matching(bookings: tuple[BookingView, ...], slots: Slots) -> list[BookingView]:
    """The bookings a text's slots describe: the service and provider it names must match, and of
    a day and time it gives one must ("the friday one, can we do 4pm": friday names it, 4pm is
    new). A text that names nothing describes none."""
    if not (slots.service or slots.provider or slots.date or slots.time):
        return []
    out = []
    for bk in bookings:
        if slots.service and bk.service != slots.service:
            continue
        if slots.provider and bk.provider != slots.provider:
            continue
        if (slots.date or slots.time) and not (bk.date == slots.date or bk.time == slots.time):
            continue
        out.append(bk)
    return out


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
        low = " ".join(text.lower().replace("’", "'").split())
        v = vocabulary(b)
        today = req.local_now.date()
        when = parse_when(text, req.local_now)
        span = parse_span(text, today)
        pending = st.pending
        affirm = detect_affirm(text)
        choice: int | None = None
        if pending == "time" and st.offers:
            choice = pick_offer(text, st.offers, today)
        elif pending in ("pick_booking", "reminder"):
            choice = detect_choice(text)
        provider = v.provider(text)
        slots = Slots(
            service=v.service(text),
            provider=provider.value if provider else None,
            date=_fmt_date(when.date),
            time=_fmt_time(when.time),
            email=extract_email(text),
            name=extract_name(text, b),
        )
        topic = detect_topic(text, list(b.escalate_topics))
        pred = self.classifier.predict(text)
        ranking = list(getattr(pred, "ranking", None) or [(pred.intent, pred.confidence)])
        prob = dict(ranking)
        evidence: dict[str, str] = {"classifier": f"{pred.intent}:{pred.confidence:.2f}"}

        booked = tuple(req.booked)
        refs = _matching(booked, slots) if booked else []
        own = cues.OWN.search(low)
        if own and own.group("thing"):  # "my color" counts when they have one; "my son" never does
            thing = v.service(own.group("thing"))
            own = own if thing and any(bk.service == thing for bk in booked) else None
        cancel = None if cues.CANCEL_ABOUT.search(low) else cues.fired(cues.CANCEL, low)
        move = cues.fired(cues.MOVE, low) or ("can_be" if _CAN_BE.search(low) else None)
        check = cues.fired(cues.CHECK, low)
        book = cues.fired(cues.BOOK, low)
        if book and _CONDITIONAL.search(low):  # "is there a warranty if i get my battery done"
            book = None
        question = bool(cues.QUESTION.search(low))
        known_service = slots.service or st.slots.get("service") or st.context_service
        grounded = answer(b, text, services=[known_service] if known_service else None,
                          day=when.date, context=bool(st.task or st.context_service))
        if grounded is not None:
            evidence["grounded"] = f"{grounded.source}:{grounded.score}:{grounded.grounded_by}"
        outside = outside_subject(b, text) if question else None
        when_said = bool(when.date or when.time or span.flexible)
        # A question whose words the business can't account for, that the classifier reads as
        # about the world: "whats the cancellation policy on frontier airlines", "how much is a
        # massage gun on amazon" (a FAQ entry or a service word matched, the rest is elsewhere).
        entry = (int(grounded.source.split(":")[1])
                 if grounded and grounded.source.startswith("faq:") else None)
        loose = v.unexplained(text, entry)
        addressed = bool(cues.YOU.search(low))
        world_question = (question and not (book or when_said or (booked and own))
                          and prob.get("out_of_scope", 0.0) >= 0.7 and len(loose) >= 2 and not addressed
                          and (grounded is None or grounded.grounded_by in ("service", "faq", "bare")))
        if loose:
            evidence["unexplained"] = " ".join(loose[:5])
        # A FAQ entry that matches well, with no booking verb or day: the customer asks, not books.
        faq_item = grounded is not None and grounded.source.startswith("faq") and grounded.score >= 0.6
        faq_first = faq_item and not book and not when_said
        # What a booking request needs: a booking verb with a service or a day, or a service with a
        # day or window, or a service the classifier reads as a booking. Asking a service's price
        # is a question; asking the hours with a service and a day is a booking ("has jordan got
        # a rubdown open today after 5").
        price_q = grounded is not None and grounded.source == "price"
        wants_booking = not price_q and (
            (book and slots.service)
            or (book and when_said and not faq_item)
            or (slots.service and when_said)
            or (slots.service and pred.intent == "book_appointment" and not question)
            or (slots.service and book == "availability")
        )
        # About a booking the customer already has: the slots name one of theirs, or "my ...". A
        # service none of their bookings has is a new booking ("a trim right after my color").
        new_service = bool(slots.service) and not any(bk.service == slots.service for bk in booked)
        about_booking = bool(booked) and not (new_service and not cancel and not move) and (
            bool(own) or bool(refs))

        def cue_conf(intent: str, base: float = 0.9) -> float:
            """A high-precision cue: trust it more when the classifier agrees."""
            p = prob.get(intent, 0.0)
            return max(base, p) if pred.intent == intent else (base - 0.05 if p >= 0.1 else base - 0.12)

        intent: str | None = pred.intent
        conf = pred.confidence
        why = "classifier"

        if _HUMAN.search(low) and not (grounded is not None and grounded.source == "contact"):
            intent, conf, why = "request_human", 0.92, "cue.human"
        elif slots.email and not (cancel or book):
            intent, conf, why, topic = "update_contact", 0.9, "email", None
        elif topic in _ESCALATE_INTENT and not (question and grounded is not None and grounded.score >= 0.5
                                                and grounded.source.startswith("faq") and topic == "billing"):
            intent, conf, why = _ESCALATE_INTENT[topic], 0.9, f"topic.{topic}"
        elif cancel and (about_booking or booked or not book):
            intent, conf, why = "cancel_appointment", cue_conf("cancel_appointment"), f"cue.{cancel}"
        elif booked and (
            (move and about_booking)
            or move in ("resched", "move_verb", "be_later", "can_be")
            or (move == "other_time" and (slots.date or slots.time or cues.mentions_later(low)))
        ) and not (new_service and book):
            intent, conf, why = "reschedule_appointment", cue_conf("reschedule_appointment"), f"cue.{move}"
        elif not booked and not book and (move == "resched" or (move == "move_verb" and own)):
            intent, conf, why = "reschedule_appointment", cue_conf("reschedule_appointment", 0.8), "cue.move"
        elif check and (booked or not book):
            intent, conf, why = "check_appointment", cue_conf("check_appointment"), f"cue.{check}"
        elif about_booking and question and not book and (grounded is None or grounded.score < 0.6
                                                          or check):
            intent, conf, why = "check_appointment", cue_conf("check_appointment", 0.8), "booking_reference"
        elif (slots.name and not (slots.service or book or when.date or when.time)
              and len(content_words(low)) <= 5) or (_CONTACT.search(low) and _CONTACT_VERB.search(low)
                                                   and not (slots.service or when.date or when.time)):
            intent, conf, why = "update_contact", 0.85, "contact"
        elif question and outside and not (book or when.date or when.time or span.flexible):
            intent, conf, why = "out_of_scope", 0.8, f"outside_subject.{outside}"
        elif world_question:
            intent, conf, why = "out_of_scope", 0.75, "unexplained_words"
        elif faq_first:
            intent, conf, why = "ask_question", 0.9, "grounded.faq"
        elif wants_booking:
            intent, conf = "book_appointment", cue_conf("book_appointment", 0.88)
            why = f"cue.{book or 'service'}"
        elif pred.intent == "book_appointment" and pred.confidence >= 0.7 and when_said and not (
                grounded is not None and grounded.source == "hours"):
            intent, conf, why = "book_appointment", min(pred.confidence, 0.85), "classifier.with_day"
        elif grounded is not None and (question or intent not in ("greeting", "request_human")):
            intent = "ask_question"
            conf, why = (0.9 if grounded.grounded_by != "context" else 0.8), "grounded"
        elif topic is not None:  # a business topic (injury, legal...): the policy hands it over
            conf, why = max(conf, 0.85), f"topic.{topic}"
        elif (_GREETING.match(low) or (v.names_business(text) and len(content_words(low)) <= 5)) and not (
                slots.service or slots.date or slots.time):
            intent, conf, why = "greeting", 0.9, "cue.greeting"
        else:
            intent, conf, why = self._fallback(ranking, low, slots, question, booked, span.flexible,
                                               bool(book))

        # A short answer to the bot's own question continues the active task.
        if slots.time is None and (pending in ("confirm", "change", "time", "date")
                                   or intent == "reschedule_appointment"):
            m = _CONTEXT_TIME.search(low)
            if m:
                slots.time = _fmt_time(parse_time("at " + (m.group(1) or m.group(2))))
        answers = (
            affirm is not None
            or choice is not None
            or (
                pending in ("service", "date", "time", "change", "contact", "pick_booking", "confirm")
                and (slots.given() or when.part_of_day or when.after or span.flexible)
                and len(tokens(text)) <= 10
            )
        )
        strong_switch = (
            intent in ("reschedule_appointment", "cancel_appointment", "check_appointment", "request_human")
            and conf >= 0.85
            and intent != st.task
            and why.startswith("cue")
        )
        if (st.task or pending == "reminder") and pending and answers and not strong_switch and topic is None:
            intent, conf, why = None, 0.95, "answers_pending"
        elif len(loose) >= 4 and why not in ("cue.human", "email") and not why.startswith("topic"):
            # Much of the text is words neither the business nor the cues account for: the reading
            # rests on less of it, so it is less sure (a long story with one cue word in it).
            conf -= 0.05 * min(len(loose) - 3, 4)
            evidence["unexplained_penalty"] = f"{len(loose)} words"
        evidence["decided_by"] = why
        if intent in ("cancel_appointment", "reschedule_appointment", "check_appointment") and refs:
            evidence["refs"] = ",".join(bk.id for bk in refs)
        u = Understanding(
            intent=intent,  # type: ignore[arg-type]
            confidence=round(min(max(conf, 0.0), 1.0), 4),
            slots=slots,
            affirm=affirm if pending == "confirm" or affirm is not None else None,
            choice=choice,
            part_of_day=when.part_of_day,
            after=_fmt_time(when.after or span.after),
            before=_fmt_time(when.before or span.before),
            span_first=_fmt_date(span.first),
            span_last=_fmt_date(span.last),
            prefer=span.prefer,
            later=cues.mentions_later(low) if intent == "reschedule_appointment" or st.task else None,
            refs=[bk.id for bk in refs] if about_booking else [],
            topic=topic,
            abandon=bool(st.task) and detect_abandon(text),
            provider=self.name,
            evidence=evidence,
        )
        if intent == "reschedule_appointment" or st.task == "reschedule_appointment":
            u.same_day = bool(re.search(r"\bsame (?:day|date)\b", low))
            if intent == "reschedule_appointment":
                self._split_reschedule(u, text, req)
        return u

    def _fallback(
        self, ranking: list[tuple[str, float]], low: str, slots: Slots, question: bool,
        booked: tuple[BookingView, ...], flexible: bool, book_cue: bool,
    ) -> tuple[str | None, float, str]:
        """No cue decided: the classifier's vote among the intents the text can support.

        Intents the text has no evidence for are struck out (a booking with no service, day or
        booking verb; a question nothing grounds; an escalation with no topic) and the rest is
        renormalised: the probability of each remaining intent given that it is not one of those.
        """
        words = _WORDS.findall(low)
        known = sum(w in self.vocab for w in words) / len(words) if words else 0.0
        if words and known < 0.5 and not slots.given():
            return None, 0.2, "unknown_words"  # keyboard mash or another language: ask, don't guess
        content = content_words(low)
        if not content and not slots.given() and ranking[0][0] != "greeting":
            return None, 0.3, "no_content"  # "the thing w the from b4??": nothing to go on

        def supported(intent: str) -> bool:
            if intent == "book_appointment":
                return bool(slots.service or slots.date or slots.time or flexible or book_cue)
            if intent == "ask_question":
                return False  # a grounded question was decided before: this one nothing grounds
            if intent in ("billing", "complaint"):
                return prob.get(intent, 0.0) >= 0.85  # no topic word: only a confident classifier
            if intent == "greeting":
                return len(content) <= 3 and not slots.given()
            if intent == "update_contact":
                return bool(slots.name or slots.email or _CONTACT.search(low))
            return True

        prob = dict(ranking)
        top, top_p = ranking[0]
        if top == "ask_question" and top_p >= 0.5:  # a question the file can't answer
            about_us = bool(cues.YOU.search(low) or slots.service or slots.provider)
            return ("ask_question", min(top_p, 0.8), "unanswerable_question") if about_us else (
                "out_of_scope", 0.7, "ungrounded_question")
        kept = [(i, p) for i, p in ranking if supported(i)]
        mass = sum(p for _, p in kept)
        if not kept or mass <= 0:
            return None, 0.3, "nothing_supported"
        intent, p = kept[0]
        total = sum(q for _, q in ranking)
        # Conditioned on not being one of the struck intents, but never more than 0.3 above the
        # classifier's own probability: a weak guess stays a guess.
        conf = p if mass >= total else min(p / mass, p + 0.3, 0.85)
        why = "classifier" if intent == ranking[0][0] else f"classifier.not_{ranking[0][0]}"
        if intent == "out_of_scope" and (not content or (len(content) < 2 and not question and p < 0.8)):
            return None, min(conf, 0.4), "too_short"  # "idk the one w the stuff": ask again
        if intent in ("cancel_appointment", "reschedule_appointment", "check_appointment") and not booked:
            return intent, min(conf, 0.6), "no_bookings"
        return intent, conf, why

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
            elif old.time is not None:
                u.slots.time = None  # "move my 3pm thursday to friday": 3pm names the booking

