"""Word tables for :mod:`agent.timeparse`, kept apart so the parser itself stays readable."""

from __future__ import annotations

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
PARTS_OF_DAY = ("morning", "afternoon", "evening", "night", "tonight")

# Exact SMS spellings -> canonical word. Every canonical word maps to itself too.
ALIASES: dict[str, str] = {}


def _add(canon: str, *forms: str) -> None:
    ALIASES[canon] = canon
    for form in forms:
        ALIASES[form] = canon


_add("monday", "mon", "mondy", "mnday", "monady")
_add("tuesday", "tue", "tues", "tuesdy", "teusday", "tusday", "tuseday")
_add("wednesday", "wed", "weds", "wensday", "wednsday", "wendsday", "wedensday", "wednesdy")
_add("thursday", "thu", "thur", "thurs", "thrus", "thurday", "thirsday", "thrusday")
_add("friday", "fri", "fryday", "frid", "firday")
_add("saturday", "saterday", "satuday", "satur", "satday")
_add("sunday", "sundy")
_add("january", "jan", "janurary", "janary")
_add("february", "feb", "febuary", "feburary", "febrary")
_add("march", "mar", "marhc")
_add("april", "apr", "apirl", "aprl")
_add("june", "jun")
_add("july", "jul")
_add("august", "aug", "agust")
_add("september", "sep", "sept", "septmber")
_add("october", "oct")
_add("november", "nov")
_add("december", "dec")
_add("today", "2day", "tday", "tdy", "todya")
_add("tonight", "tonite", "2nite", "2night", "tnite", "tonght")
_add(
    "tomorrow",
    "tmrw", "tmr", "tmw", "tmrow", "tmro", "tmoro", "tmrrw", "tmmrw", "tomm", "tomo", "tomoz",
    "tomorow", "tommorow", "tommorrow", "tomorrrow", "tomoro", "tomorro", "tomrw", "tomrow",
    "tmrrow", "2moro", "2morro", "2morrow", "2morow", "2mrw", "2mro", "2mrow", "2mr",
)  # fmt: skip
_add("morning", "mornin", "morn", "mrng", "mornings")
_add("afternoon", "aftn", "arvo", "afternoons", "aftrnoon", "afternon")
_add("evening", "evenin", "evning", "evenings")
_add("night", "nite", "nights")
_add("weekend", "wknd", "wkend")
_add("week", "wk")
_add("next", "nxt")
_add("around", "arnd", "aroun")
_add("about", "abt", "bout", "approx", "approximately")
_add("after", "aftr", "afta")
_add("before", "b4", "bfr", "befor")
_add("quarter", "qtr")

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Read as weekdays only with date context: "I sat down", "out in the sun".
AMBIGUOUS_WEEKDAYS = {"sat": "saturday", "sun": "sunday"}
WEEKDAY_CONTEXT_BEFORE = _words(
    "on this next nxt coming til till until by for or and from thru through to every last"
)
WEEKDAY_CONTEXT_AFTER = _words(
    "at morning afternoon evening night am pm or next nxt mornin aftn nite"
)

# Targets for one-edit typo tolerance. Short month names (march, april, june...) are
# excluded: too many ordinary words ("match", "marsh") sit one edit away from them.
FUZZY_TARGETS = (
    *WEEKDAYS,
    *(m for m in MONTHS if len(m) >= 6),
    "tomorrow", "tonight", "weekend", "morning", "afternoon", "evening",
)  # fmt: skip
# A plural weekday/month is a habit ("open on sundays"), never a specific date.
NO_PLURAL = frozenset((*WEEKDAYS, *MONTHS, "tomorrow", "tonight", "weekend"))
FUZZY_STOP = frozenset({"sundae", "mondo", "moaning", "monkey"})

HOUR_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
COUNT_WORDS = {**HOUR_WORDS, "a": 1, "an": 1, "couple": 2}
MINUTE_WORDS = {
    "oh five": 5, "o five": 5, "five": 5, "ten": 10, "quarter": 15, "fifteen": 15,
    "twenty": 20, "twenty five": 25, "half": 30, "thirty": 30, "thirty five": 35,
    "forty": 40, "forty five": 45, "fifty": 50, "fifty five": 55,
}  # fmt: skip

_UNITS = [
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
]
ORDINALS: dict[str, int] = {w: i for i, w in enumerate(_UNITS, 1)}
ORDINALS.update(
    tenth=10, eleventh=11, twelfth=12, thirteenth=13, fourteenth=14, fifteenth=15,
    sixteenth=16, seventeenth=17, eighteenth=18, nineteenth=19, twentieth=20, thirtieth=30,
)  # fmt: skip
ORDINALS.update({f"twenty {w}": 20 + i for i, w in enumerate(_UNITS, 1)})
ORDINALS["thirty first"] = 31

# A number followed by one of these is a quantity, not a clock time ("at 3 locations").
UNIT_WORDS = _words(
    """people ppl person persons guests guest of kids kid children adults ladies guys girls
    min mins minute minutes hr hrs hour hours day days week weeks month months year years yr
    yrs yo dollars dollar bucks usd x percent more others friends inch inches"""
)
# Words ending in "s" that are not plural nouns.
PLURAL_OK = _words(
    "is was has does this thanks thx yes its lets works unless tues weds thurs plus pls plz "
    "always perhaps as us"
)
# A number after these is a label ("room 4", "option 2"), not a time.
LABEL_WORDS = _words(
    """room rm unit apt apartment suite ste floor fl bldg building no number table chair
    station option choice page step lot gate seat row bay box"""
)
PRONOUNS = _words("i we you they he she it me us them")
# "the 5th time" / "my 3rd visit": ordinals that count things, not days.
ORDINAL_NOUNS = _words(
    """time times visit visits floor street st ave avenue birthday anniversary grade place
    row person one appointment appt booking session treatment kid child customer client
    try attempt year week day month century edition seat round"""
)


def _edit1(a: str, b: str) -> bool:
    """True if a and b differ by at most one insert/delete/substitute/adjacent swap."""
    if a == b:
        return True
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    if abs(len(a) - len(b)) != 1:
        return False
    short, long_ = sorted((a, b), key=len)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1 :]


def canonical(tok: str, prev: str, nxt: str, alone: bool) -> str:
    """The canonical spelling of one lowercase token, given its neighbours."""
    if tok in AMBIGUOUS_WEEKDAYS:
        ctx = alone or prev in WEEKDAY_CONTEXT_BEFORE or nxt in WEEKDAY_CONTEXT_AFTER
        if prev == "the" or not (ctx or nxt[:1].isdigit()):  # "in the sun at 3"
            return tok
        return AMBIGUOUS_WEEKDAYS[tok]
    if tok in ALIASES:
        return ALIASES[tok]
    if len(tok) < 5 or not tok.isalpha() or tok in FUZZY_STOP:
        return tok
    for target in FUZZY_TARGETS:
        if tok == target + "s" and target in NO_PLURAL:
            return tok
        if _edit1(tok, target):
            return target
    return tok
