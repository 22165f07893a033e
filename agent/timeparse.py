"""Deterministic date/time extraction from free-form SMS text (stdlib only, no LLM).

Dates are resolved against ``now``, a datetime already in the business time zone; only
``now.date()`` matters. Rules chosen for ambiguous input:

* Hour without am/pm: 1-7 -> PM, 8-11 -> AM, 12 -> noon (businesses open ~9-20). A part of
  day overrides it: "7 in the morning" -> 07:00, "tonight at 10" -> 22:00. A part of day
  said elsewhere in the message only forces AM for 5-11 ("tomorrow morning at 8").
* A bare number is never a time ("2" is a menu choice, "for 2 people" a count). It needs
  am/pm, a colon, "o'clock", "ish", a part of day, or a lead-in: at, @, around, about, like,
  after, before, from, between, or a date right before it ("tmrw 3").
* Weekdays: "friday" / "on friday" / "this friday" -> the nearest friday strictly after
  today (today counts only via "today"/"tonight"). "next friday" -> the friday of the
  following Mon-Sun week if friday is still ahead this week, else the nearest friday.
  "friday next week" -> the friday of the following Mon-Sun week. "last/every friday" -> none.
* "this weekend" -> the coming Saturday (today on Sat/Sun); "next weekend" follows the
  "next saturday" rule. "next week" alone gives no date.
* "the 5th" -> the next 5th on or after today (skipping months without that day). A month
  and day without a year that already passed this year -> next year. "3/5" is US month/day.
* "sat"/"sun" count as weekdays only with date context ("on sat", "sat at 3", "sat or sun",
  "sun 10am", or the whole message) and never after "the", because they are also ordinary
  words; "may" + a bare number is no date next to a pronoun or a count ("may 2 of us").
  Tokens match whole ("mon" in "money" never does); one-edit typos of weekday names and of
  month names of 6+ letters are accepted ("thrusday", "febuary"), plurals are not.
* "after 5", "before noon", "no later than 5", "between 2 and 4", "from 10 to 2" fill
  ``after``/``before`` and leave ``time`` None; "after work" is after 17:00.
* Several dates: absolute dates win over today/tomorrow-style words, which win over
  weekdays and "the 5th"; among those the last mention wins ("tuesday the 10th" -> the 10th).
  Several times: the first one wins.
"""

from __future__ import annotations

import datetime as dt
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent import _timewords as W

__all__ = ["When", "format_date", "format_time", "parse_date", "parse_time", "parse_when"]


@dataclass(frozen=True)
class When:
    date: dt.date | None
    time: dt.time | None
    part_of_day: str | None  # "morning" | "afternoon" | "evening", only when no exact time
    after: dt.time | None
    before: dt.time | None
    date_text: str | None
    time_text: str | None


def _alt(words: Iterable[str]) -> str:
    """Regex alternation, longest first; a space in a phrase also matches a hyphen."""
    alts = (re.escape(w).replace(r"\ ", r"[\s-]?") for w in words)
    return "|".join(sorted(alts, key=len, reverse=True))


_WD = _alt(W.WEEKDAYS)
_MON = _alt(W.MONTHS)
_ORD = _alt(W.ORDINALS)
_HW = _alt(W.HOUR_WORDS)
_H = rf"(?:\d{{1,2}}|{_HW})"
_MER = r"(?:\s*(?P<mer>[ap])\.?\s?m(?![a-z])\.?|(?P<mer1>[ap])(?![a-z]))"
_ISH = r"(?P<ish>\s?-?ish\b)?"
_MW = _alt(k for k in W.MINUTE_WORDS if k not in ("half", "quarter"))
_MASK = "\x01"  # replaces recognised date spans so their digits are not read as times

_NOISE = re.compile(
    r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # urls, emails
    r"|\$\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?(?:\$|dollars?\b|bucks\b|usd\b)"  # money
    r"|(?<![\w/])\+?\d(?:[\s().-]{0,2}\d){6,}(?![\w/])"  # phone numbers
)
_ISO_SHAPE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_LOOKBEHIND = re.compile(r"[\w$.:/+#-]")


# ---------------------------------------------------------------- normalisation


class _Text:
    """The message lowercased, de-noised and canonicalised, with a map back to the original."""

    def __init__(self, text: str) -> None:
        self.text = text
        # Per-char lowercasing keeps offsets aligned with the original text.
        low = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
        low = low.replace("\u2019", "'").replace("\u2018", "'")
        low = _NOISE.sub(
            lambda m: m[0] if _ISO_SHAPE.fullmatch(m[0]) else " " * len(m[0]), low
        )
        toks = list(re.finditer(r"[a-z0-9]+", low))
        out: list[str] = []
        self._spans: list[tuple[int, int, int, int]] = []
        pos = cpos = 0
        for i, m in enumerate(toks):
            out.append(low[pos : m.start()])
            cpos += m.start() - pos
            prev = toks[i - 1][0] if i else ""
            nxt = toks[i + 1][0] if i + 1 < len(toks) else ""
            word = W.canonical(m[0], prev, nxt, alone=len(toks) == 1)
            out.append(word)
            self._spans.append((cpos, cpos + len(word), m.start(), m.end()))
            cpos += len(word)
            pos = m.end()
        out.append(low[pos:])
        self.c = "".join(out)
        self.masked = self.c
        self._starts = [s[0] for s in self._spans]

    def _orig(self, p: int) -> int:
        k = bisect_right(self._starts, p) - 1
        if k < 0:
            return p
        cs, ce, os_, oe = self._spans[k]
        return (os_ if p == cs else min(os_ + p - cs, oe)) if p <= ce else oe + p - ce

    def orig(self, start: int, end: int) -> str:
        return self.text[self._orig(start) : self._orig(end)].strip()

    def mask(self, start: int, end: int) -> None:
        self.masked = self.masked[:start] + _MASK * (end - start) + self.masked[end:]


# ------------------------------------------------------------------------ dates

_Resolver = Callable[[dt.date], dt.date | None]


def _nearest(today: dt.date, wd: int) -> dt.date:
    return today + dt.timedelta(days=(wd - today.weekday() - 1) % 7 + 1)


def _next(today: dt.date, wd: int) -> dt.date:
    near = _nearest(today, wd)
    return near + dt.timedelta(days=7) if wd > today.weekday() else near


def _next_week(today: dt.date, wd: int) -> dt.date:
    return today + dt.timedelta(days=7 - today.weekday() + wd)


def _month_day(month: int, day: int, year: str | None) -> _Resolver:
    def resolve(today: dt.date) -> dt.date | None:
        if year:
            try:
                return dt.date(int(year) + (2000 if len(year) == 2 else 0), month, day)
            except ValueError:
                return None
        for y in range(today.year, today.year + 5):  # +5 so "feb 29" finds a leap year
            try:
                if (d := dt.date(y, month, day)) >= today:
                    return d
            except ValueError:
                continue
        return None

    return resolve


def _nth(day: int) -> _Resolver:
    def resolve(today: dt.date) -> dt.date | None:
        y, m = today.year, today.month
        for _ in range(13):
            try:
                if (d := dt.date(y, m, day)) >= today:
                    return d
            except ValueError:
                pass
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return None

    return resolve


def _weekend(mod: str) -> _Resolver:
    def resolve(today: dt.date) -> dt.date | None:
        if mod == "next":
            return _next(today, 5)
        return today if today.weekday() >= 5 else _nearest(today, 5)

    return resolve


def _weekday(mod: str, wd: int) -> _Resolver | None:
    if mod in ("last", "every", "past", "this past"):
        return None
    if mod == "next":
        return lambda today: _next(today, wd)
    return lambda today: _nearest(today, wd)


def _day_num(digits: str | None, word: str | None) -> int:
    return int(digits) if digits else W.ORDINALS[re.sub(r"[\s-]+", " ", word or "")]


def _shift(days: int) -> _Resolver:
    return lambda today: today + dt.timedelta(days=days)


_YEAR = r"(?:,?\s+(?P<y>\d{4}))?"
_DATE_RULES: list[tuple[int, re.Pattern[str]]] = [
    (0, re.compile(r"(?<![\d/-])(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?![\d/-])")),
    (0, re.compile(r"(?<![\w/.-])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?"
                   r"(?![\w/]|\.\d)(?!\s*(?:hours?|hrs?|price|off)\b)")),
    (0, re.compile(rf"\b(?P<mon>{_MON})\.?\s+(?:the\s+)?(?:(?P<d>\d{{1,2}})(?P<sfx>st|nd|rd|th)?"
                   rf"|(?P<ow>{_ORD}))(?![\w:]|\.\d)(?!\s*(?:[ap]\.?m\b|o'?\s?clock|-?ish)){_YEAR}")),
    (0, re.compile(rf"(?<![\w/.-])(?:(?P<d>\d{{1,2}})(?P<sfx>st|nd|rd|th)?|(?P<ow>{_ORD}))"
                   rf"\s+(?P<of>of\s+)?(?P<mon>{_MON})\b{_YEAR}")),
    (1, re.compile(r"\b(?:the\s+)?day\s+after\s+(?P<rel>tomorrow)\b")),
    (1, re.compile(r"\b(?P<rel>today|tonight|tomorrow)\b|\bthis\s+(?:morning|afternoon|evening)\b")),
    (1, re.compile(rf"\bin\s+(?:a\s+)?(?P<n>\d{{1,2}}|{_alt(W.COUNT_WORDS)})(?:\s+of)?\s+"
                   r"(?P<unit>days?|weeks?)\b")),
    (1, re.compile(r"\b(?:(?P<wmod>this|next|the)\s+)?weekend\b")),
    (2, re.compile(rf"\b(?P<wd>{_WD})\s+(?:of\s+)?next\s+week\b|\bnext\s+week\s+(?:on\s+)?(?P<wd2>{_WD})\b")),
    (2, re.compile(rf"\b(?:(?P<mod>this\s+coming|this\s+past|this|next|coming|on|last|every|past)\s+)?"
                   rf"(?P<wd>{_WD})\b")),
    # "tuesday the 10th" is one date: the weekday is decoration, the number decides.
    (2, re.compile(rf"\b(?:(?P<wdn>{_WD}),?\s+(?:the\s+)?|(?P<pre>(?:on|by|for|until|till)\s+)?the\s+)"
                   rf"(?:(?P<d>\d{{1,2}})(?:st|nd|rd|th)|(?P<ow>{_ORD}))\b(?!\s*(?:of\s+)?(?:{_MON})\b)")),
]


def _date_resolver(m: re.Match[str], prio: int, text: _Text) -> _Resolver | None:
    g = m.groupdict()
    if prio == 0:
        if g.get("mon"):
            month = W.MONTHS.index(g["mon"]) + 1
            day = _day_num(g["d"], g["ow"])
            if g["mon"] == "may" and not (g["sfx"] or g["ow"] or g["y"] or g.get("of")):
                # "may" is also a verb: "may 2 of us come", "can 2 may i".
                prev = re.search(r"([a-z]+)\W*$", text.c[: m.start()])
                nxt = re.match(r"\W*([a-z]+)", text.c[m.end() :])
                if (prev and prev[1] in W.PRONOUNS) or (nxt and nxt[1] in W.PRONOUNS) or (
                    _quantity_follows(text, m.end())
                ):
                    return None
        else:
            month, day = int(g["m"]), int(g["d"])
        return _month_day(month, day, g.get("y")) if 1 <= month <= 12 else None
    if prio == 1:
        if g.get("n"):
            n = int(g["n"]) if g["n"].isdigit() else W.COUNT_WORDS[g["n"]]
            return _shift(n * (7 if g["unit"].startswith("week") else 1))
        if "wmod" in g:
            return _weekend(g["wmod"] or "")
        if g.get("rel") == "tomorrow":
            return _shift(2 if "after" in m[0] else 1)
        return _shift(0)
    if prio == 2 and "wdn" not in g:
        wd = W.WEEKDAYS.index(g["wd"] or g["wd2"])
        if "mod" not in g:
            return lambda today: _next_week(today, wd)
        return _weekday(re.sub(r"\s+", " ", g["mod"] or ""), wd)
    after = re.match(r"\s*([a-z]+)", text.c[m.end() :])
    if (not g["d"] and not g["pre"] and not g["wdn"]) or (after and after[1] in W.ORDINAL_NOUNS):
        return None
    return _nth(_day_num(g["d"], g["ow"]))


def _find_date(text: _Text, today: dt.date | None) -> tuple[dt.date | None, str | None]:
    cands: list[tuple[int, int, int, _Resolver]] = []
    for prio, rx in _DATE_RULES:
        for m in rx.finditer(text.c):
            res = _date_resolver(m, prio, text)
            if res is not None:
                cands.append((prio, m.start(), -m.end(), res))
    for _, start, neg_end, _res in cands:
        text.mask(start, -neg_end)
    if today is None:
        return None, None
    # Explicit calendar dates win. Among relative words and weekdays the LAST mention wins,
    # because texters correct themselves as they go ("quit my job today so i'm free friday",
    # "can't do tmrw, friday?") -- unless the mentions are alternatives ("sat or sun").
    cands = [c for c in cands if not any(o is not c and o[1] <= c[1] and -c[2] <= -o[2]
                                         and (o[1], o[2]) != (c[1], c[2]) for o in cands)]
    rel = sorted((c for c in cands if c[0] != 0), key=lambda c: c[1])
    last_wins = len(rel) > 1 and not re.search(r"\bor\b", text.c[-rel[-2][2]:rel[-1][1]])

    def order(c: tuple[int, int, int, _Resolver]) -> tuple[int, int, int]:
        if c[0] == 0:
            return (0, c[1], c[2])
        return (1, -c[1] if last_wins else c[1], c[2])

    for _, start, neg_end, res in sorted(cands, key=order):
        if (d := res(today)) is not None:
            return d, text.orig(start, -neg_end)
    return None, None


# ------------------------------------------------------------------------ times

_TIME_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("clock", re.compile(rf"(?P<h>\d{{1,2}})(?P<sep>[:.])(?P<m>\d{{2}})(?!\d)(?:{_MER})?{_ISH}")),
    ("compact", re.compile(rf"(?P<hm>\d{{3,4}})(?!\d)(?:{_MER})?")),
    ("wordmin", re.compile(rf"(?P<mw>half|quarter|twenty[\s-]?five|twenty|ten|five|\d{{1,2}})\s+"
                           rf"(?:min(?:ute)?s?\s+)?(?P<dir>past|after|to|til|till|of)\s+"
                           rf"(?P<h>{_H})(?![\w:])")),
    ("half", re.compile(rf"half\s+(?P<h>{_H})(?![\w:])")),
    ("wordhm", re.compile(rf"(?P<h>{_HW})[\s-]+(?P<mw>{_MW})(?![\w])")),
    ("oclock", re.compile(rf"(?P<h>{_H})\s*o\s?'?\s?clock\b")),
    ("mer", re.compile(rf"(?P<h>{_H}){_MER}{_ISH}")),
    ("ish", re.compile(rf"(?P<h>{_H})\s?-?ish\b")),
    ("bare", re.compile(rf"(?P<h>{_H})(?![\w:/]|[.,]\d)")),
    ("noon", re.compile(r"(?:12\s*)?(?:noon|midday|mid[\s-]day)\b")),
    ("lunch", re.compile(r"lunch(?:\s?time|\s?break)?\b")),
    ("work", re.compile(r"after\s+work\b")),
]
_CONTEXT = re.compile(r"(?:\b(?:at|around|round|about|after|before|from|between|than|like)|[@~])\s*$")
_BOUND = re.compile(r"\b(not\s+before|no\s+earlier\s+than|later\s+than|after|from|between"
                    r"|not\s+after|no\s+later\s+than|earlier\s+than|before)\s*$")
_POD_AFTER = re.compile(r"\s*(?:-?ish)?\s*(?:(?:in\s+the|this|at|tomorrow|today)\s+)?"
                        r"(morning|afternoon|evening|night|tonight)\b|\s+in\s+the\s+([ap])m\b")
_POD = re.compile(r"\b(morning|afternoon|evening|night|tonight)\b")
_RANGE = re.compile(r"\s*(?:and|to|till|til|until|-)\s*")


def _hour(word: str) -> int:
    return int(word) if word.isdigit() else W.HOUR_WORDS[word]


def _to_24h(h: int, mer: str | None, pod: str | None, adjacent: bool) -> int | None:
    if mer:
        return h % 12 + (12 if mer == "p" else 0) if 1 <= h <= 12 else None
    if h == 0 or 13 <= h <= 23:
        return h
    if not 1 <= h <= 12:
        return None
    if pod in ("afternoon", "evening") and h < 12:
        return h + 12
    if pod == "morning" and (adjacent or 5 <= h <= 11):
        return h % 12
    return h + 12 if h <= 7 else h


def _global_pod(text: _Text) -> tuple[str | None, tuple[int, int] | None]:
    for m in _POD.finditer(text.c):
        before = text.c[: m.start()]
        if re.search(r"\b(?:good|last)\s*$", before):
            continue  # "good morning", "last night"
        if not before.strip() and re.match(r"\s*[,!.]", text.c[m.end() :]):
            continue  # greeting at the start: "Morning! ..."
        return ("evening" if m[1] in ("night", "tonight") else m[1]), m.span()
    if m2 := re.search(rf"{_MASK}\s+(([ap])m)\b", text.masked):  # "tmrw am", "fri pm"
        return ("morning" if m2[2] == "a" else "afternoon"), m2.span(1)
    return None, None


def _quantity_follows(text: _Text, end: int) -> bool:
    nxt = re.match(r"\s*([a-z]+)", text.c[end:])
    if not nxt:
        return False
    word = nxt[1]
    return word in W.UNIT_WORDS or (
        len(word) >= 4 and word.endswith("s") and not word.endswith("ss") and word not in W.PLURAL_OK
    )


def _eval(kind: str, m: re.Match[str], text: _Text, pod: str | None,
          linked: bool = False) -> tuple[dt.time, str | None, int] | None:
    """Turn one candidate into (time, bound keyword or None, end offset), or reject it."""
    start, end, c = m.start(), m.end(), text.c
    if start and _LOOKBEHIND.match(text.masked[start - 1]) and not linked:
        return None
    prefix = c[:start]
    kw_m = _BOUND.search(prefix)
    kw = None if linked or not kw_m else re.sub(r"\s+", " ", kw_m[1])
    if kind == "work":
        return dt.time(17), "after", end
    if kind == "noon":
        return dt.time(12), kw, end
    if kind == "lunch":
        if kw in ("after", "before"):
            return dt.time(13 if kw == "after" else 12), kw, end
        ok = m[0] != "lunch" or re.search(r"\b(?:at|around|about|over|during|for|my)\s*$", prefix)
        return (dt.time(12), None, end) if ok else None
    label = re.search(r"([a-z]+)\W*$", prefix)
    if label and label[1] in W.LABEL_WORDS:
        return None
    g = m.groupdict()
    mer = g.get("mer") or g.get("mer1")
    if g.get("mer1") and not g["h" if "h" in g else "hm"][0].isdigit():
        return None
    pod_m = _POD_AFTER.match(c, end)
    local = (pod_m[1] or ("morning" if pod_m[2] == "a" else "afternoon")) if pod_m else None
    if local in ("night", "tonight"):
        local = "evening"
    # "tmrw 3" is a time, but "the friday one" is a choice of appointment, not 1 PM.
    after_date = bool(re.search(rf"{_MASK}[\s,]*$", text.masked[:start])) and c[start:end].strip() != "one"
    context = (linked or bool(_CONTEXT.search(prefix)) or bool(local) or bool(g.get("ish")) or after_date)
    if kind in ("bare", "compact") and not mer and not context:
        return None
    if kind == "clock" and g["sep"] == "." and not mer and not context:
        return None
    if not mer and kind not in ("oclock", "ish") and _quantity_follows(text, end):
        return None
    if kind == "compact":
        hm = g["hm"]
        h, minute = int(hm[:-2]), int(hm[-2:])
    else:
        h, minute = _hour(g["h"]), int(g.get("m") or 0)
    if kind == "bare" and h == 0:
        return None
    if kind == "wordhm":
        minute = W.MINUTE_WORDS[re.sub(r"[\s-]+", " ", g["mw"])]
    h24 = _to_24h(h, mer, local or pod, local is not None)
    if h24 is None or minute > 59:
        return None
    total = h24 * 60 + minute
    if kind in ("wordmin", "half"):
        mw, direction = g.get("mw", "half"), g.get("dir", "past")
        if mw.isdigit() and direction != "past":
            return None
        if (mw == "half" and direction not in ("past", "after")) or (
            direction == "of" and mw != "quarter"
        ):
            return None
        if direction in ("to", "til", "till") and kw in ("from", "between"):
            return None  # "from ten to five" is a range, not 4:55
        delta = int(mw) if mw.isdigit() else W.MINUTE_WORDS[re.sub(r"[\s-]+", " ", mw)]
        total += -delta if direction in ("to", "til", "till", "of") else delta
    if pod_m:
        end = pod_m.end()
    total %= 24 * 60
    return dt.time(total // 60, total % 60), kw, end


_AFTER_KW = frozenset({"after", "not before", "no earlier than", "later than", "from", "between"})


def _times(text: _Text, pod: str | None) -> tuple[dict[str, dt.time], str | None]:
    """First exact time, first lower bound and first upper bound, plus the text behind them."""
    cands = [(m.start(), -m.end(), kind, m) for kind, rx in _TIME_RULES
             for m in rx.finditer(text.masked)]
    taken: list[tuple[int, int]] = []
    found: dict[str, dt.time] = {}
    texts: dict[str, str] = {}
    for start, neg_end, kind, m in sorted(cands, key=lambda c: c[:2]):
        if any(s < -neg_end and start < e for s, e in taken):
            continue
        hit = _eval(kind, m, text, pod)
        if hit is None:
            continue
        t, kw, end = hit
        bound = _BOUND.search(text.c[:start]) if kw else None
        span_start = bound.start() if bound else start
        slot = "time" if kw is None else ("after" if kw in _AFTER_KW else "before")
        if kw in ("from", "between") and (link := _RANGE.match(text.c, end)):
            for kind2, rx in _TIME_RULES:
                m2 = rx.match(text.masked, link.end())
                if m2 and (hit2 := _eval(kind2, m2, text, pod, linked=True)):
                    found.setdefault("before", hit2[0])
                    end = hit2[2]
                    break
        found.setdefault(slot, t)
        texts.setdefault(slot, text.orig(span_start, end))
        taken.append((start, end))
    return found, texts.get("time") or texts.get("after") or texts.get("before")


# ------------------------------------------------------------------------ API


def parse_when(text: str, now: dt.datetime) -> When:
    return _parse(text, now.date())


def _parse(text: str, today: dt.date | None) -> When:
    t = _Text(text)
    date, date_text = _find_date(t, today)
    pod, pod_span = _global_pod(t)
    found, time_text = _times(t, pod)
    exact = found.get("time")
    if exact is None and time_text is None and pod_span is not None:
        time_text = t.orig(*pod_span)
    return When(
        date=date,
        time=exact,
        part_of_day=pod if exact is None else None,
        after=found.get("after"),
        before=found.get("before"),
        date_text=date_text,
        time_text=time_text,
    )


def parse_date(text: str, now: dt.datetime) -> dt.date | None:
    return parse_when(text, now).date


def parse_time(text: str) -> dt.time | None:
    """The exact time in ``text``; bounds like "after 5" are not exact times and give None."""
    return _parse(text, None).time


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_time(t: dt.time, *, hour12: bool = True, seconds: bool = False) -> str:
    """"9:30 AM" (what the bot writes), or "09:30" on a 24-hour clock; ":05" seconds if asked."""
    sec = f":{t.second:02d}" if seconds else ""
    if not hour12:
        return f"{t.hour:02d}:{t.minute:02d}{sec}"
    return f"{t.hour % 12 or 12}:{t.minute:02d}{sec} {'AM' if t.hour < 12 else 'PM'}"


def format_date(d: dt.date) -> str:
    # Own tables rather than strftime("%a"), which follows the process locale.
    return f"{_DAYS[d.weekday()]} {_MONTHS[d.month - 1]} {d.day}"
