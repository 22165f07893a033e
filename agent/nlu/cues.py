"""English cues for what a text asks for, independent of any business.

These are language, not business vocabulary: the verbs of cancelling, moving and booking, the
shapes of a question about one's own appointment, second-person address, and references to
something the customer already has ("my", "thursday's", "the one on friday"). Which services,
providers and topics exist comes from the business file (textdesk.vocab), never from here.
Each cue is a small named pattern so the trace can say which one fired.
"""

from __future__ import annotations

import re

__all__ = ["BOOK", "CANCEL", "CHECK", "MOVE", "OWN", "QUESTION", "YOU", "fired", "mentions_later"]

_ROLE = (r"(?:therapist|stylist|barber|doctor|dr|physio|physiotherapist|tech|technician|mechanic|"
         r"provider|practitioner|person|guy|girl|lady|dude|one|who)")
_ITEM = r"(?:appt|apt|appointment|booking|reservation|session|visit|slot|spot|time|one|it|thing)"

CANCEL = {
    "cancel_verb": re.compile(
        r"\b(?:cancel+(?:l?ed|l?ing|ation)?|cancl|cancle|canel|cncl|cxl|call(?:ing)? off|scrap|"
        r"drop (?:my|the) (?:appt|apt|appointment|booking|session|visit|reservation)|delete (?:my|the))\b"
        r"|\bstop (?:my|the|our) (?:[\w:]+ ){0,3}?(?:appt|apt|appointment|booking|session|visit)\b"),
    "cant_come": re.compile(
        r"\b(?:can'?t|cannot|cant|won'?t|wont|not gonna|unable to|not able to) (?:make it|come|go|attend|"
        r"be there|do (?:it|my|the))\b(?!.*\b(?:instead|another|other|different|later|earlier|move|"
        r"resched\w*|change|switch|push)\b)"),
}
# "cancellation policy", "if i cancel": asking about cancelling, not doing it.
CANCEL_ABOUT = re.compile(
    r"\bcancel+(?:l?ation)? (?:policy|fee|fees|charge|rules?)\b"
    r"|\bif (?:i|we) (?:cancel|have to cancel|need to "
    r"cancel)|\bwhat happens if\b|\b(?:how|can) (?:do|can) i cancel\b|\bis there a (?:fee|charge)\b")

MOVE = {
    "resched": re.compile(r"\b(?:re-?schedul\w*|resched|rebook|re-?book|postpone)\b"),
    "move_verb": re.compile(
        r"\b(?:move|moving|push(?:ed|ing)? (?:it|my|the|back|out|forward)|"
        r"bump|shift|swap|switch|change (?:my|the|it|to)|bring (?:it|my \w+) forward)\b"),
    "other_time": re.compile(
        r"\b(?:another|a different|other|diff) (?:day|time|date|slot)\b|\binstead\b|\brather\b"),
    "be_later": re.compile(
        r"\b(?:be|come in|go|start|make it|do it|move it|push it|be moved) (?:a bit |an hour |a little |"
        r"abit )?(?:later|earlier|sooner)\b|\b(?:later|earlier) (?:in the day|slot|time)\b"),
}

CHECK = {
    "thought_i": re.compile(r"\bi thought (?:i|we|it) (?:booked|was|were|had|is)\b"),
    "when_was_i": re.compile(
        r"\bwhat (?:time|day) (?:was|am|do|should|did) (?:i|we) (?:supposed|meant|booked|coming|due|come|"
        r"need to|have to|bring|drop)\b"),
    "when_mine": re.compile(
        r"\b(?:when(?:'s| is| was|s)?|what time(?:'s| is| was)?|what day(?:'s| is)?|wat time) "
        r"(?:is )?(?:my|our|me)\b"),
    "am_i": re.compile(
        r"\b(?:am i|are we|i'?m|im) (?:booked|scheduled|down|on the (?:books|schedule)|seeing|with|"
        r"confirmed|all set|still on)\b"),
    "who_mine": re.compile(
        rf"\b(?:who|which {_ROLE}|what {_ROLE}|whos|who'?s|who is) (?:am i|is|will|do i|did i|'s)?\s*"
        r"(?:seeing|doing|working on|with|taking|handling|do|have|booked)\b"),
    "do_i_have": re.compile(
        r"\b(?:do|did) i (?:have|still have|got) (?:an?|my|any|the)\b|\bwhat do i have\b|"
        r"\bis my \w+(?: \w+)? still\b|\bdid (?:my|the) \w+ (?:go through|get booked)\b|"
        r"\bconfirm(?:ing)? (?:my|the) (?:appt|appointment|booking|time)\b|\bremind me (?:when|what time)\b"),
}

BOOK = {
    "book_verb": re.compile(
        r"\b(?:book|schedule|make an? (?:appt|appointment|booking)|set up|sign (?:me )?up|come in|get in|"
        r"squeeze|fit (?:me|us) in|get (?:me |us )?(?:a|an|my|in)|need (?:a|an)|want (?:a|an)|"
        r"like (?:a|an|to get)|reserve|grab (?:a|an))\b"),
    "availability": re.compile(
        r"\b(?:any|have|got|next|your|an?) openings?\b"
        r"|\bopenings? (?:on|for|this|next|tomorrow|today|at|in)\b|"
        r"\b(?:availability|available|any (?:time|spots?|slots?|room|space)|free (?:slot|spot|time)|"
        r"do you have (?:anything|any|time|a slot|room)"
        r"|what(?:'s| is| do you have) (?:open|free|available))\b"),
    "new_one": re.compile(r"\b(?:another|one more|a second|an extra|additional|also book|also get)\b"),
}

# Something the customer already has: "my massage", "thursday's appt", "the one on friday".
OWN = re.compile(
    r"\b(?:my|our|me and my) (?:\w+ ){0,2}?(?:appt|apt|appointment|booking|reservation|session|visit|"
    r"slot|spot|time)\b"
    r"|\b(?:my|our)\s+(?P<thing>[a-z][a-z'-]+)"
    r"|\b(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?'?s\b"
    r"|\b(?:today|tomorrow|tmrw|tonight)'?s\b"
    r"|\bthe (?:\w+ )?(?:one|appt|appointment|booking) (?:on|at|for|tomorrow|today)\b"
    r"|\bi (?:have|had|got) (?:an?|my)\b(?!.*\b(?:question|problem|issue)\b)")

QUESTION = re.compile(r"\?|\b(?:who|what|whats|wats|when|where|wheres|why|how|hows|which)\b|"
                      r"^(?:is|are|do|does|did|can|could|will|would|should)\b")
YOU = re.compile(r"\b(?:you|u|ur|your|yours|y'?all|ya|yous|you guys)\b")


def fired(cues: dict[str, re.Pattern[str]], text: str) -> str | None:
    """The name of the first cue of a family that matches ``text`` (lowercase)."""
    for name, rx in cues.items():
        if rx.search(text):
            return name
    return None


def mentions_later(text: str) -> str | None:
    """"later"/"earlier" without a time: which way the customer wants to move."""
    m = re.search(r"\b(later|earlier|sooner)\b", text)
    if m is None:
        return None
    return "later" if m.group(1) == "later" else "earlier"
