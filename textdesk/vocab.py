"""What a business file lets textdesk recognise in a customer's text: its services (names,
aliases, and the distinctive words of both, so "sports massage" finds ``massage`` and "my
cracked iphone screen" finds ``screen repair``), its providers (full names, names without a
title, a unique first-name prefix after "with"), its own name, and the words of its FAQ.

Every business-specific word comes from the file; the only words in this module are
English function words and generic service nouns that never single out one service.
Built once per business (``vocabulary(business)`` caches it).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from textdesk.business import Business

__all__ = ["Mention", "Vocabulary", "content_words", "vocabulary", "words"]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Nouns that name a kind of appointment in general, never one service in particular.
GENERIC = frozenset(
    (
        "replacement", "check", "checkup", "appt", "inspection", "first", "second", "initial", "patient",
        "last", "next", "big", "small", "little", "hot", "cold", "deep", "light", "mini", "express",
        "repair", "repairs", "service", "services", "session", "sessions", "appointment", "appt",
        "appointments", "treatment", "treatments", "visit", "visits", "consult", "consultation",
        "booking", "class", "classes", "lesson", "lessons", "job", "work", "fix", "fixing", "new",
        "full", "quick", "basic", "standard", "regular",
    )
)
# English function words and texting filler: never evidence that a text is about a business.
STOP = frozenset(
    (
        "a", "an", "the", "and", "or", "but", "if", "so", "to", "of", "in", "on", "at", "by", "for",
        "with", "w", "from", "into", "onto", "about", "as", "is", "are", "was", "were", "be", "been",
        "being", "am", "do", "does", "did", "done", "doing", "have", "has", "had", "having", "i", "me",
        "my", "mine", "we", "us", "our", "you", "your", "yours", "u", "ur", "ya", "yall", "y'all", "it",
        "its", "it's", "this", "that", "these", "those", "there", "here", "what", "when", "where",
        "who", "whom", "which", "why", "how", "can", "could", "would", "should", "will", "shall", "may",
        "might", "must", "not", "no", "yes", "yeah", "yep", "ok", "okay", "pls", "please", "plz",
        "thanks", "thank", "thx", "ty", "hi", "hey", "hello", "just", "like", "really", "very", "so",
        "too", "also", "get", "got", "gets", "getting", "go", "going", "gonna", "wanna", "want", "need",
        "needs", "know", "tell", "any", "some", "all", "one", "thing", "things", "stuff", "time", "day",
        "today", "tomorrow", "im", "i'm", "ive", "i've", "dont", "don't", "cant", "can't", "wont",
        "won't", "isnt", "isn't", "whats", "what's", "hows", "how's", "wheres", "where's", "much",
        "many", "more", "less", "lot", "lots", "than", "then", "now", "still", "again", "ever", "even",
        "only", "out", "up", "down", "off", "over", "back", "good", "great", "nice", "well", "way",
        "make", "made", "take", "took", "put", "let", "lets", "let's", "see", "say", "said", "give",
        "come", "came",
    )
)


# A few everyday synonyms, so a question and a FAQ answer that say the same thing in other words
# still meet ("will i lose my photos" / "repairs don't erase data"). English, not business words.
SYNONYMS = {
    "photos": "data", "photo": "data", "pictures": "data", "pics": "data", "files": "data",
    "contacts": "data",
    "lose": "erase", "wipe": "erase", "wiped": "erase", "delete": "erase", "deleted": "erase",
    "cost": "price", "costs": "price", "pricing": "price", "prices": "price",
    "bring": "bring", "wear": "wear", "outfit": "wear", "clothes": "wear",
}


def words(text: str) -> list[str]:
    """Lowercase words; a possessive 's comes off ("bike's" -> bike)."""
    return [w[:-2] if w.endswith("'s") else w for w in _WORD.findall(text.lower().replace("’", "'"))]


def content_words(text: str) -> list[str]:
    """Words that carry meaning: not function words, not digits, at least three letters."""
    return [w for w in words(text) if w not in STOP and len(w) >= 3 and not w.isdigit()]


def _stem(w: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            w = w[: -len(suffix)]
            break
    return w[:-1] if len(w) > 4 and w.endswith("e") else w


def _like(word: str, text_words: set[str]) -> bool:
    """Does the text have ``word`` (a FAQ or vocabulary word)? Same stem, a clipped form in the
    text ("pay" for payment), a longer form in the text ("instructions" for instruct), or a typo."""
    for t in text_words:
        if t == word or (len(t) >= 3 and len(word) >= 5 and word.startswith(t)) or (
                len(word) >= 4 and t.startswith(word)):
            return True
        if min(len(t), len(word)) >= 5 and fuzz.ratio(t, word) >= 85:
            return True
    return False


@dataclass(frozen=True)
class Mention:
    """A business item found in a text, with how it was found (for the trace)."""

    value: str
    how: str  # phrase | fuzzy | word | name | prefix | title
    matched: str
    score: float


@dataclass
class Vocabulary:
    business: Business
    phrases: dict[str, str] = field(default_factory=dict)  # name or alias (lowercase) -> service
    distinctive: dict[str, str] = field(default_factory=dict)  # stemmed word -> the one service
    providers: dict[str, str] = field(default_factory=dict)  # spoken form -> provider
    first_names: dict[str, str] = field(default_factory=dict)  # first word of a name -> provider
    name_words: frozenset[str] = frozenset()  # the business's own name
    faq_words: list[frozenset[str]] = field(default_factory=list)  # per FAQ entry: its question's words

    @classmethod
    def build(cls, b: Business) -> Vocabulary:
        v = cls(b)
        v.phrases = dict(b.service_vocabulary())
        # A phrase's head (its last meaningful word: "deep tissue" -> tissue, "cracked screen" ->
        # screen) stands for it alone; a modifier does not ("deep dish spots" is no massage).
        owners: dict[str, set[str]] = defaultdict(set)
        for phrase, service in v.phrases.items():
            meaningful = [w for w in words(phrase.replace("-", " "))
                          if w not in GENERIC and w not in STOP and len(w) >= 3]
            if meaningful:
                owners[_stem(meaningful[-1])].add(service)
        v.distinctive = {w: next(iter(s)) for w, s in owners.items() if len(s) == 1}
        for p in b.providers:
            low = p.lower()
            bare = re.sub(r"^(?:dr|doctor|mr|mrs|ms|miss)\.?\s+", "", low)
            forms = {low, low.replace(".", ""), bare}
            if bare != low:
                forms |= {f"dr {bare}", f"doctor {bare}", f"dr. {bare}"}
            for f in forms:
                v.providers[f] = p
            v.first_names.setdefault(words(bare)[0] if words(bare) else bare, p)
        v.name_words = frozenset(w for w in content_words(b.name) if w not in GENERIC)
        v.faq_words = [frozenset(_stem(w) for w in content_words(item.q)) for item in b.faq]
        return v

    # -- services -------------------------------------------------------------------------------

    def services(self, text: str) -> list[Mention]:
        """Every service the text names, best evidence first (one mention per service)."""
        toks = words(text.replace("-", " "))
        grams = [" ".join(toks[i : i + n]) for n in (3, 2, 1) for i in range(len(toks) - n + 1)]
        joined = ["".join(toks[i : i + 2]) for i in range(len(toks) - 1)]  # "tuneup", "haircut"
        found: dict[str, Mention] = {}

        def add(m: Mention) -> None:
            if m.value not in found or found[m.value].score < m.score:
                found[m.value] = m

        for g in [*grams, *joined]:
            for cand in (g, g.rstrip("s"), g[:-2] if g.endswith("es") else g):
                if cand in self.phrases:
                    add(Mention(self.phrases[cand], "phrase", cand, 1.0 + 0.1 * cand.count(" ")))
        if not found:
            long_phrases = [a for a in self.phrases if len(a) >= 4]
            for g in grams:
                if len(g) < 4:
                    continue
                cutoff = 86 if len(g) >= 6 else 82
                hit = process.extractOne(g, long_phrases, scorer=fuzz.ratio, score_cutoff=cutoff)
                if hit is not None:
                    add(Mention(self.phrases[hit[0]], "fuzzy", g, hit[1] / 100))
        for t in toks:
            service = self.distinctive.get(_stem(t))
            if service is not None:
                add(Mention(service, "word", t, 0.7))
        if not found:  # "eval" for evaluation, "acupunc" for acupuncture: a clipped word
            for t in toks:
                if len(t) < 4 or t in STOP:
                    continue
                owners = {svc for phrase, svc in self.phrases.items() for w in words(phrase)
                          if w.startswith(t) and len(t) >= 0.4 * len(w) and w not in GENERIC}
                if len(owners) == 1:
                    add(Mention(owners.pop(), "prefix", t, 0.65))
        return sorted(found.values(), key=lambda m: -m.score)

    def service(self, text: str) -> str | None:
        """The one service the text names; None when it names none or several equally well."""
        found = self.services(text)
        if not found:
            return None
        if len(found) > 1 and found[1].score >= found[0].score and found[0].how != "phrase":
            return None
        return found[0].value

    # -- providers ------------------------------------------------------------------------------

    def provider(self, text: str) -> Mention | None:
        low = " ".join(words(text.replace(".", " ").replace("-", " ")))
        for form, p in sorted(self.providers.items(), key=lambda kv: -len(kv[0])):
            f = " ".join(words(form.replace(".", " ")))
            if f and re.search(rf"\b{re.escape(f)}\b", low):
                return Mention(p, "name", f, 1.0)
        toks = words(low)
        for t in toks:
            for first, p in self.first_names.items():
                if len(first) >= 4 and len(t) >= 4 and fuzz.ratio(t, first) >= 80:
                    return Mention(p, "fuzzy", t, 0.85)
        for t in toks:  # "any chance jord has...": a 3+ letter prefix of exactly one provider's name
            hits = {p for first, p in self.first_names.items() if len(t) >= 3 and first.startswith(t)
                    and (len(t) >= 4 or len(first) <= 5)}
            if len(hits) == 1 and t not in STOP:
                return Mention(hits.pop(), "prefix", t, 0.8)
        # "with jo", "w/ dr c", "see mar": a prefix of one provider's first name after a cue.
        initial = re.search(r"\b(?:dr|doctor)\s+([a-z])\b", low)  # "dr c"
        if initial:
            titled = {p for form, p in self.providers.items() if form.startswith("dr ")
                      and form[3:].startswith(initial.group(1))}
            if len(titled) == 1:
                return Mention(titled.pop(), "title", initial.group(0), 0.8)
        for m in re.finditer(r"\b(?:with|w|see|seeing|by|from|and)\s+(?:dr\s+)?([a-z]{2,})\b", low):
            prefix = m.group(1)
            hits = {p for first, p in self.first_names.items() if first.startswith(prefix)}
            if len(hits) == 1 and prefix not in STOP:
                return Mention(hits.pop(), "prefix", m.group(0), 0.8)
        return None

    # -- the business itself ------------------------------------------------------------------

    def names_business(self, text: str) -> bool:
        ws = set(content_words(text))
        return bool(self.name_words) and len(self.name_words & ws) >= min(2, len(self.name_words))

    def faq_overlap(self, text: str) -> list[float]:
        """Per FAQ entry, the share of its question's content words that the text has (a word
        counts when its stem matches, one is a prefix of the other, or it is a near-typo). An
        entry whose question has one content word only counts for a short text ("do you take
        walk-ins" yes, a long message that happens to say "phone" no)."""
        mine = content_words(text)
        ws = {_stem(w) for w in mine}
        out = []
        for qws in self.faq_words:
            hit = sum(_like(q, ws) for q in qws)
            share = hit / len(qws) if qws else 0.0
            out.append(share if hit >= 2 or len(mine) <= 6 else share * 0.5)
        return out

    def answer_overlap(self, text: str) -> list[int]:
        """Per FAQ entry, how many of the text's meaningful words (synonyms mapped, business
        vocabulary left out) its answer contains: "lock up my bike out front" meets "bike racks
        out front"."""
        mine = {_stem(SYNONYMS.get(w, w)) for w in content_words(text)
                if w not in GENERIC and w not in self.name_words and w.lower() not in self.first_names}
        out = []
        for item in self.business.faq:
            theirs = {_stem(SYNONYMS.get(w, w)) for w in content_words(item.a)}
            out.append(len(mine & theirs))
        return out

    def unexplained(self, text: str, entry: int | None = None) -> list[str]:
        """The text's content words that neither the business's vocabulary nor (if given) a FAQ
        entry accounts for: "frontier", "airlines", "flight" in a question about a policy."""
        faq = set()
        if entry is not None and 0 <= entry < len(self.business.faq):
            item = self.business.faq[entry]
            faq = {_stem(w) for w in content_words(f"{item.q} {item.a}")}
        return [w for w in content_words(text) if not self.knows(w) and _stem(w) not in faq
                and not _like(_stem(w), faq) and w not in GENERIC]

    def knows(self, word: str) -> bool:
        """Is this word part of the business's own vocabulary (services, providers, name)?"""
        low = word.lower()
        w = _stem(low)
        return (w in self.distinctive or any(low in words(p) or w in words(p) for p in self.phrases)
                or low in self.first_names or low in self.name_words or w in self.name_words)



_CACHE: dict[int, tuple[Business, Vocabulary]] = {}


def vocabulary(b: Business) -> Vocabulary:
    """The business's vocabulary, built once (a business file is loaded once and never changes)."""
    hit = _CACHE.get(id(b))
    if hit is not None and hit[0] is b:
        return hit[1]
    if len(_CACHE) > 256:  # eval runs load many businesses; keep the cache bounded
        _CACHE.clear()
    v = Vocabulary.build(b)
    _CACHE[id(b)] = (b, v)
    return v
