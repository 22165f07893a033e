"""`textdesk check`, deliverability half: what carriers filter, or customers pay extra for, before
a business goes live. Each problem carries its fix.

Checks: the HELP reply (brand, support contact, frequency, "Msg & data rates may apply", STOP and
HELP); the opt-in wording (``opt_in_text:``, else the default in ``R.opt_in_wording``: brand,
frequency, rates, STOP); every message template rendered with sample values through the real
template functions (``agent.replies.R``), FAQ answers and ``auto_replies``: within its segment
budget and GSM-7; links only on ``allowed_link_hosts`` and never on a shortener; quiet hours that
parse and leave time both to send and to rest; and for a US long code, ``number.type`` and the
A2P 10DLC campaign fields, whose sample messages must look like something textdesk really sends.

Segment budgets (``BUDGETS``): one segment for the STOP and START confirmations and for booking
confirmations (asking to confirm and confirming it is done); two for everything else. HELP gets
two: brand, a support phone and email, frequency, rates and STOP/HELP do not fit 160 characters
for a typical business. A non-GSM-7 character is a problem unless it is a letter (a language that
needs UCS-2 may use it; the budget is then counted in UCS-2).

Shortener hosts and 10DLC use cases live in ``deliverability.yaml`` next to this file, loaded and
validated once (``data()``).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import phonenumbers
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from agent.replies import R, when_text
from agent.types import BookingView
from guardrails.output import host_allowed, link_hosts
from textdesk.business import Business
from textdesk.segments import count_segments, non_gsm7

__all__ = [
    "BUDGETS",
    "DATA_FILE",
    "NOT_SMS",
    "DeliverabilityData",
    "Problem",
    "Rendered",
    "data",
    "deliverability",
    "rendered_messages",
    "suggested_samples",
]

DATA_FILE = Path(__file__).with_name("deliverability.yaml")
# Segment budget of each R template; every template not listed here gets two.
BUDGETS: dict[str, int] = {
    name: 1
    for name in (
        "opt_out", "opt_in", "confirm_booking", "booked", "booked_instead", "confirm_reschedule",
        "rescheduled", "confirm_cancel", "cancelled", "confirm_contact", "contact_updated",
    )
}
DEFAULT_BUDGET = 2
# R methods whose words are not sent by SMS (shown on a web form), so have no segment budget.
NOT_SMS = frozenset({"opt_in_wording"})
SAMPLE_COUNT = (2, 5)  # how many sample messages a 10DLC campaign takes
_SIMILAR = 0.8  # a sample message "matches" a rendering when this share of its words line up

_HOST = re.compile(r"^(?:[a-z0-9-]+\.)+[a-z]{2,}$")
_USE_CASE = re.compile(r"^[A-Z0-9_]+$")
_RATES = re.compile(r"\b(?:msg|message)s?\s*(?:&|and)\s*data\s+rates\s+may\s+apply", re.I)
_FREQUENCY = re.compile(
    r"frequen|\b\d+\s*(?:msgs?|messages?|texts?)\s*(?:/|per|a|an|each)\s*(?:day|week|month|year)", re.I
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_WORD = re.compile(r"[a-z']+")
_CALENDAR = frozenset(
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "am", "pm",
     "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
)
_PLAIN = {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
          "\u2026": "...", "\u00a0": "a space", "\u2022": "-"}
# Sample values: a Wednesday in September is the widest date ("Wed Sep 30").
_DATE, _TIME, _DATE2, _TIME2 = "2026-09-30", "10:30", "2026-10-01", "15:00"
_CONTACT = {"name": "Alex Morgan", "email": "alex.morgan@example.com"}


@dataclass(frozen=True)
class Problem:
    """Something to fix before going live, and how to fix it."""

    what: str
    fix: str
    area: str = "deliverability"  # deliverability | understanding

    def __str__(self) -> str:
        return f"{self.what} -> {self.fix}"


@dataclass(frozen=True)
class Rendered:
    """One message as a customer would get it, rendered from the real template or business file."""

    name: str  # "R.help", "faq 'Where are you?'", "auto_replies.HOURS"
    text: str
    budget: int
    shorten: str  # what to shorten when it is over budget


class DeliverabilityData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    shorteners: frozenset[str]
    use_cases: tuple[str, ...]

    @field_validator("shorteners", mode="before")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        bad = [h for h in v if not isinstance(h, str) or not _HOST.match(h)]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"shorteners: lowercase host names, each once (bad: {bad})")
        return v

    @field_validator("use_cases", mode="before")
    @classmethod
    def _use_cases(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if not isinstance(u, str) or not _USE_CASE.match(u)]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"use_cases: UPPER_SNAKE names, each once (bad: {bad})")
        return v


@cache
def data() -> DeliverabilityData:
    """``deliverability.yaml``, validated (once per process)."""
    return DeliverabilityData.model_validate(yaml.safe_load(DATA_FILE.read_text(encoding="utf-8")))


def _templates(b: Business) -> dict[str, Callable[[], str]]:
    """Every R template, called with sample values taken from the business (its longest names)."""
    names = sorted((s.name for s in b.services), key=len, reverse=True) or ["appointment"]
    svc, svc2 = names[0], names[-1]
    people = sorted(b.providers, key=len, reverse=True)
    prov = people[0] if people else None
    prov2 = people[-1] if people else "our team"
    deposit = next((s.deposit for s in b.services if s.deposit), "$25")
    url = f"https://{b.allowed_link_hosts[0] if b.allowed_link_hosts else 'pay.example'}/pay/7Kq2Xw9m"
    line = BookingView(id="b1", service=svc, provider=prov, date=_DATE, time=_TIME).line()
    line2 = BookingView(id="b2", service=svc2, provider=None, date=_DATE2, time=_TIME2).line()
    slots = [(_DATE, _TIME), (_DATE2, "11:15"), (_DATE2, "12:45")]
    return {
        "opt_out": lambda: R.opt_out(b),
        "opt_in": lambda: R.opt_in(b),
        "help": lambda: R.help(b),
        "opt_in_wording": lambda: R.opt_in_wording(b),
        "human": R.human,
        "escalated": R.escalated,
        "rate_limited": R.rate_limited,
        "blocked": lambda: R.blocked(b),
        "out_of_scope": lambda: R.out_of_scope(b),
        "greeting": lambda: R.greeting(b),
        "thanks": R.thanks,
        "clarify": R.clarify,
        "holding": lambda: R.holding(b, when_text(_DATE2, "09:00")),
        "outage": R.outage,
        "ask_service": lambda: R.ask_service(b),
        "ask_date": lambda: R.ask_date(svc),
        "offer_times": lambda: R.offer_times(svc, _DATE, [_TIME, "11:15", "12:45"], prov, R.window_missed()),
        "offer_days": lambda: R.offer_days(svc, slots, prov, R.window_missed()),
        "which_offer": lambda: R.which_offer(3),
        "window_missed": R.window_missed,
        "no_times": lambda: R.no_times(svc, _DATE, "full", R.clash_lead(_TIME)),
        "day_full": lambda: R.day_full(_DATE, "closed"),
        "confirm_booking": lambda: R.confirm_booking(svc, _DATE, _TIME, prov, _CONTACT),
        "booked": lambda: R.booked(svc, _DATE, _TIME, prov),
        "booked_instead": lambda: R.booked_instead(svc, _DATE, _TIME, prov2, prov or "our team"),
        "booked_with_deposit": lambda: R.booked_with_deposit(svc, _DATE, _TIME, deposit, url),
        "reminder": lambda: R.reminder(b, svc, prov, _DATE, _TIME),
        "no_show": lambda: R.no_show(svc),
        "hold_released": lambda: R.hold_released(svc),
        "what_to_change": R.what_to_change,
        "dropped": R.dropped,
        "no_bookings": R.no_bookings,
        "pick_booking": lambda: R.pick_booking("reschedule", [line, line2]),
        "ask_new_date": lambda: R.ask_new_date(svc),
        "confirm_reschedule": lambda: R.confirm_reschedule(svc, when_text(_DATE2, _TIME2), _DATE, _TIME),
        "rescheduled": lambda: R.rescheduled(svc, _DATE, _TIME),
        "confirm_cancel": lambda: R.confirm_cancel(line),
        "cancelled": lambda: R.cancelled(line),
        "kept": R.kept,
        "your_bookings": lambda: R.your_bookings([line, line2]),
        "confirm_contact": lambda: R.confirm_contact(_CONTACT),
        "ask_contact": R.ask_contact,
        "contact_updated": R.contact_updated,
        "clash_lead": lambda: R.clash_lead(_TIME),
        "clash_offer": lambda: R.clash_offer(_TIME, [("11:00", prov), ("11:30", prov2 if people else None)]),
        "taken_lead": R.taken_lead,
        "unknown_question": lambda: R.unknown_question(b),
    }


def rendered_messages(b: Business) -> tuple[list[Rendered], list[Problem]]:
    """Every SMS textdesk can send for ``b``: each R template with sample values, each FAQ answer and
    each auto-reply; plus a problem for a template that cannot be rendered for this business."""
    out: list[Rendered] = []
    problems: list[Problem] = []
    for name, render in _templates(b).items():
        if name in NOT_SMS:
            continue
        try:
            text = render()
        except (IndexError, ValueError) as exc:
            problems.append(Problem(f"template R.{name} cannot be rendered for this business ({exc})",
                                    "fill in the business-file values it needs (services, providers)"))
            continue
        out.append(Rendered(f"R.{name}", text, BUDGETS.get(name, DEFAULT_BUDGET),
                            "the business-file values it shows (name, support, service and provider names)"))
    out += [Rendered(f"FAQ answer to {f.q!r}", f.a, DEFAULT_BUDGET, "that FAQ's `a:`") for f in b.faq]
    out += [Rendered(f"auto-reply {k}", v, DEFAULT_BUDGET, f"`auto_replies.{k}`")
            for k, v in b.auto_replies.items()]
    return out, problems


def suggested_samples(b: Business) -> list[str]:
    """Sample messages for a 10DLC campaign, rendered from the real templates."""
    t = _templates(b)
    return [t["reminder"](), t["booked"](), t["help"]()]


def deliverability(b: Business) -> list[Problem]:
    """Every deliverability problem of ``b``, each with its fix."""
    messages, out = rendered_messages(b)
    out += _help(b) + _opt_in(b) + _segments(messages) + _gsm(b, messages) + _links(b) + _quiet(b)
    out += _number(b, messages)
    return out


# -- the parts a HELP reply and an opt-in need ---------------------------------------------------


def _region(b: Business) -> str:
    return b.locale.partition("-")[2] or "US"


def _has_contact(text: str, region: str) -> bool:
    return bool(_EMAIL.search(text)) or any(True for _ in phonenumbers.PhoneNumberMatcher(text, region))


def _help(b: Business) -> list[Problem]:
    text = R.help(b)
    out = []
    if b.name.lower() not in text.lower():
        out.append(Problem("HELP reply does not name the business",
                           "R.help in agent/replies.py must include `name:`"))
    if not _has_contact(text, _region(b)):
        out.append(Problem("HELP reply has no support contact",
                           "set `support:` to a phone number or email, "
                           "e.g. \"Call (555) 555-0100 or email help@example.com\""))
    if not _FREQUENCY.search(text):
        out.append(Problem("HELP reply does not state the message frequency",
                           "set `frequency:`, e.g. \"Msg frequency varies\" or \"Up to 4 msgs/month\""))
    if not _RATES.search(text):
        out.append(Problem("HELP reply does not say \"Msg & data rates may apply\"",
                           "R.help in agent/replies.py must say \"Msg & data rates may apply\""))
    for word in ("STOP", "HELP"):
        if not re.search(rf"\b{word}\b", text):
            out.append(Problem(f"HELP reply does not tell how to use {word}",
                               f"R.help in agent/replies.py must say \"Reply {word} ...\""))
    return out


def _opt_in(b: Business) -> list[Problem]:
    text = R.opt_in_wording(b)
    where = "`opt_in_text:`" if b.opt_in_text else "`opt_in_text:` (the default wording lacks it)"
    missing = [
        label for label, ok in (
            ("the business name", b.name.lower() in text.lower()),
            ("the message frequency (e.g. \"Msg frequency varies\")", bool(_FREQUENCY.search(text))),
            ("\"Msg & data rates may apply\"", bool(_RATES.search(text))),
            ("how to opt out (\"Reply STOP to opt out\")", bool(re.search(r"\bSTOP\b", text))),
        ) if not ok
    ]
    return [Problem(f"opt-in wording lacks {label}", f"add it to {where}") for label in missing]


# -- segments and alphabet -----------------------------------------------------------------------


def _limit(budget: int, gsm: bool) -> int:
    single, multi = (160, 153) if gsm else (70, 67)
    return single if budget == 1 else multi * budget


def _segments(messages: list[Rendered]) -> list[Problem]:
    out = []
    for m in messages:
        info = count_segments(m.text)
        if info.segments > m.budget:
            gsm = info.encoding == "GSM-7"
            out.append(Problem(
                f"{m.name} takes {info.segments} segments, over its budget of {m.budget} "
                f"({info.units} {'characters' if gsm else 'UCS-2 units'}): {_clip(m.text)!r}",
                f"shorten {m.shorten} to fit {_limit(m.budget, gsm)} {info.encoding} characters",
            ))
    return out


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _offenders(text: str) -> list[str]:
    """Non-GSM-7 characters a message could do without (letters are a language's own)."""
    return [ch for ch in non_gsm7(text) if not unicodedata.category(ch).startswith("L")]


def _describe(chars: list[str]) -> tuple[str, str]:
    named = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in chars)
    swaps = ", ".join(f"{ch!r} with {_PLAIN[ch]!r}" if ch in _PLAIN else f"drop {ch!r}" for ch in chars)
    return named, swaps


def _business_texts(b: Business) -> list[tuple[str, str]]:
    """Business-file values that reach customers by SMS, with where they are set."""
    out = [("`name:`", b.name), ("`support:`", b.support), ("`frequency:`", b.frequency)]
    out += [(f"service {s.name!r}", " ".join((s.name, s.price, s.deposit or ""))) for s in b.services]
    out += [("`providers:`", " ".join(b.providers))]
    out += [(f"FAQ answer to {f.q!r}", f.a) for f in b.faq]
    out += [(f"`auto_replies.{k}`", v) for k, v in b.auto_replies.items()]
    if b.a2p_10dlc is not None:
        out += [(f"`a2p_10dlc.sample_messages[{i}]`", s) for i, s in enumerate(b.a2p_10dlc.sample_messages)]
    return out


def _gsm(b: Business, messages: list[Rendered]) -> list[Problem]:
    out = []
    from_file: set[str] = set()
    for where, text in _business_texts(b):
        chars = _offenders(text)
        from_file.update(chars)
        if chars:
            named, swaps = _describe(chars)
            out.append(Problem(f"{where} has non-GSM-7 characters {named}: every message with it costs "
                               "UCS-2 segments (70 characters)", f"in {where}, replace {swaps}"))
    for m in messages:
        chars = [ch for ch in _offenders(m.text) if ch not in from_file]
        if chars:
            named, swaps = _describe(chars)
            out.append(Problem(f"{m.name} has non-GSM-7 characters {named}",
                               f"in agent/replies.py {m.name}, replace {swaps}"))
    return out


# -- links ---------------------------------------------------------------------------------------


def _links(b: Business) -> list[Problem]:
    shorteners = data().shorteners
    out = [
        Problem(f"`allowed_link_hosts` lists the URL shortener {h!r}",
                "remove it; link to the business's own domain")
        for h in b.allowed_link_hosts if host_allowed(h, shorteners)
    ]
    texts = [*_business_texts(b), ("`opt_in_text:`", b.opt_in_text or "")]
    if b.a2p_10dlc is not None:
        texts.append(("`a2p_10dlc.opt_in_description`", b.a2p_10dlc.opt_in_description))
    for where, text in texts:
        for host in dict.fromkeys(link_hosts(text)):
            if host_allowed(host, shorteners):
                out.append(Problem(f"{where} links through the URL shortener {host!r}; carriers filter "
                                   "shared shorteners", f"in {where}, use the full link on your own domain"))
            elif not host_allowed(host, b.allowed_link_hosts):
                out.append(Problem(f"{where} links to {host!r}, which is not in `allowed_link_hosts` "
                                   "(the output guard blocks it)",
                                   f"add {host!r} to `allowed_link_hosts` or drop the link from {where}"))
    return out


# -- quiet hours ---------------------------------------------------------------------------------


def _quiet(b: Business) -> list[Problem]:
    example = "e.g. \"21:00-08:00\" (recipient's local time)"
    try:
        start, end = b.quiet_span()
    except ValueError as exc:
        return [Problem(f"quiet hours {b.quiet_hours!r} cannot be read ({exc})",
                        f"write `quiet_hours:` as HH:MM-HH:MM, {example}")]
    quiet = (end.hour * 60 + end.minute - start.hour * 60 - start.minute) % (24 * 60)
    if quiet == 0 and b.quiet_hours.replace(" ", "").endswith("24:00"):
        quiet = 24 * 60
    if quiet == 0:
        return [Problem(f"quiet hours {b.quiet_hours!r} are empty: reminders may go out at any hour",
                        f"set `quiet_hours:` to the night, {example}")]
    if quiet > 23 * 60:
        return [Problem(f"quiet hours {b.quiet_hours!r} cover (almost) the whole day: reminders never go out",
                        f"set `quiet_hours:` to the night only, {example}")]
    return []


# -- the number and its A2P 10DLC campaign -------------------------------------------------------


def _number(b: Business, messages: list[Rendered]) -> list[Problem]:
    if b.number is None:
        return []
    e164, kind = b.number.e164, b.number.type
    if kind == "short_code":
        if not re.fullmatch(r"\d{5,6}", e164):
            return [Problem(f"short code {e164!r} is not 5 or 6 digits",
                            "set `number.e164:` to the short code")]
        return []
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        return [Problem(f"`number.e164` {e164!r} is not a valid E.164 number",
                        "write it with + and the country code, e.g. \"+12125550100\"")]
    toll_free = phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.TOLL_FREE
    looks = "toll_free" if toll_free else "long_code"
    out = []
    if kind is None:
        out.append(Problem(f"`number.type` is not set for {e164}",
                           "set `number.type:` to long_code, toll_free or short_code "
                           f"(it looks like {looks})"))
    elif kind != looks:
        out.append(Problem(f"`number.type` is {kind} but {e164} is a {looks.replace('_', ' ')}",
                           f"set `number.type: {looks}` or correct `number.e164`"))
    if phonenumbers.region_code_for_number(parsed) == "US" and not toll_free and kind != "toll_free":
        out += _campaign(b, e164, messages)
    return out


def _shape(text: str, b: Business) -> list[str]:
    """A message's fixed words: names, dates and times (what a template fills in) taken out."""
    t = text.lower()
    values = {b.name, *b.providers, *(p for s in b.services for p in (s.name, *s.aliases))}
    for v in sorted(values, key=len, reverse=True):
        t = t.replace(v.lower(), " ")
    return [w for w in _WORD.findall(t) if w not in _CALENDAR]


def _like_a_template(sample: str, b: Business, messages: list[Rendered]) -> bool:
    mine = _shape(sample, b)
    return any(
        difflib.SequenceMatcher(None, mine, _shape(m.text, b), autojunk=False).ratio() >= _SIMILAR
        for m in messages
    )


def _campaign(b: Business, e164: str, messages: list[Rendered]) -> list[Problem]:
    c = b.a2p_10dlc
    samples = "; ".join(repr(s) for s in suggested_samples(b))
    if c is None:
        return [Problem(f"{e164} is a US long code without an A2P 10DLC campaign: carriers filter "
                        "unregistered traffic",
                        "add `a2p_10dlc:` with brand, use_case, sample_messages and opt_in_description "
                        f"(`textdesk check --samples` prints samples: {samples})")]
    out = []
    if not c.brand.strip():
        out.append(Problem("`a2p_10dlc.brand` is empty",
                           "set it to the brand registered with The Campaign Registry"))
    use_cases = data().use_cases
    if not c.use_case.strip():
        out.append(Problem("`a2p_10dlc.use_case` is empty",
                           "set it to the campaign's use case, e.g. CUSTOMER_CARE or MIXED "
                           f"(one of {', '.join(use_cases)})"))
    elif c.use_case not in use_cases:
        out.append(Problem(f"`a2p_10dlc.use_case` {c.use_case!r} is not a 10DLC use case",
                           f"use one of {', '.join(use_cases)}"))
    low, high = SAMPLE_COUNT
    if not low <= len(c.sample_messages) <= high:
        out.append(Problem(f"`a2p_10dlc.sample_messages` has {len(c.sample_messages)} messages, "
                           f"not {low} to {high}",
                           f"list {low} to {high} messages rendered from the templates, e.g. {samples}"))
    for i, s in enumerate(c.sample_messages):
        if not _like_a_template(s, b, messages):
            out.append(Problem(f"`a2p_10dlc.sample_messages[{i}]` {s!r} matches no message textdesk sends",
                               f"replace it with a rendered template, e.g. {samples}"))
    if c.sample_messages and not any(b.name.lower() in s.lower() for s in c.sample_messages):
        out.append(Problem("no `a2p_10dlc.sample_messages` names the business",
                           f"include one that does, e.g. {suggested_samples(b)[0]!r}"))
    if c.sample_messages and not any(re.search(r"\bSTOP\b", s) for s in c.sample_messages):
        out.append(Problem("no `a2p_10dlc.sample_messages` shows how to opt out",
                           f"include one with \"Reply STOP\", e.g. {suggested_samples(b)[-1]!r}"))
    if not c.opt_in_description.strip():
        out.append(Problem("`a2p_10dlc.opt_in_description` is empty",
                           "describe where and how customers agree to texts (e.g. the web chat consent "
                           "checkbox with the `opt_in_text:` wording, or by texting first)"))
    return out
