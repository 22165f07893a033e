"""Text normalization for the prompt-injection screen.

An SMS number is public input, and the cheapest way to slip an instruction past a
keyword screen is to make the bytes differ from the words: fullwidth or Cyrillic
look-alike letters, zero-width characters inside a word, bidi overrides, leetspeak,
s p a c e d letters, or a base64/hex blob the model will happily decode. This module
undoes those tricks so that the later layers match on what a reader (or an LLM) would
actually see. It never changes what the business sees: the output is only used for
screening.

`normalize(text)` returns a `Normalized` with:

* ``text``     -- the clean text: invisibles stripped, NFKC, homoglyphs folded;
* ``variants`` -- every string worth screening: the clean text, a de-leeted copy, a copy
                  with spaced letters collapsed, and decoded base64/hex/percent chunks
                  (each normalized in turn, up to two levels: base64 of base64);
* ``signals``  -- which obfuscation tricks were seen, e.g. ``["zero_width", "homoglyph"]``.
                  A signal is evidence of obfuscation, not of an attack on its own.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from urllib.parse import unquote

__all__ = ["SIGNALS", "Normalized", "normalize"]

#: Every signal this module can emit (stable strings; tests and reports rely on them).
SIGNALS = (
    "zero_width",
    "bidi",
    "fullwidth",
    "homoglyph",
    "leet",
    "spaced",
    "base64",
    "hex",
    "percent",
)

# --- invisible characters -------------------------------------------------------------
# Zero-width / invisible formatting characters. ZWJ (U+200D) also glues emoji sequences
# together, so removing one between two emoji is not evidence of anything: we only raise
# the signal when an invisible sits between two letters or digits.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064"
# Bidi embedding/override/isolate controls plus the LRM/RLM marks.
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
_ZW_RE = re.compile(f"[{_ZERO_WIDTH}]+")
_BIDI_RE = re.compile(f"[{_BIDI}]+")
_ZW_BETWEEN_LETTERS = re.compile(rf"\w[{_BIDI}]*[{_ZERO_WIDTH}][{_ZERO_WIDTH}{_BIDI}]*\w")

# --- homoglyphs -----------------------------------------------------------------------
# Cyrillic and Greek letters that render like Latin ones. NFKC already folds fullwidth
# and mathematical alphanumerics, so this table only covers cross-script look-alikes.
_HOMOGLYPHS: dict[str, str] = {
    # Cyrillic lower
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
    "ј": "j", "ԁ": "d", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ү": "y", "һ": "h", "ɡ": "g",
    "ɑ": "a", "ı": "i", "ո": "n", "օ": "o", "ս": "u", "ց": "g",
    # Cyrillic upper
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q",
    "Ԝ": "W", "Ү": "Y", "Һ": "H", "Ӏ": "I",
    # Greek lower
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ϲ": "c", "ѵ": "v",
    # Greek upper
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Χ": "X", "Υ": "Y",
}
_HOMOGLYPH_TABLE = str.maketrans(_HOMOGLYPHS)
_WORD_RE = re.compile(r"\w+")

# --- leetspeak ------------------------------------------------------------------------
_LEET = {"3": "e", "4": "a", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s", "|": "l"}
_LEET_CHARS = set(_LEET) | {"1", "!"}
_TOKEN_RE = re.compile(r"\S+")
# Tokens that are ordinary SMS numbers (times, prices, ordinals, durations) stay as-is.
_NUMERICISH = re.compile(
    r"^[$#+(]?\d+(?:[.:,/-]\d+)*(?:am|pm|a|p|th|st|nd|rd|s|min|mins|hr|hrs|h|x|k|ish)?[).,!?]*$",
    re.IGNORECASE,
)

# --- spaced-out letters ---------------------------------------------------------------
# Four or more single letters separated by 1-3 space/punctuation characters.
_SPACED_RE = re.compile(r"(?<![\w'’])(?:[A-Za-z][ .\-_*·/|]{1,3}){3,}[A-Za-z](?![\w'’])")
_SPACED_WORD_BREAK = re.compile(r"\s{2,}|\s*/\s*|\s*\|\s*")

# --- encoded chunks -------------------------------------------------------------------
_B64_RE = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_RE = re.compile(r"(?<![0-9A-Za-z])(?:0x)?(?:[0-9a-fA-F]{2}[\s:]?){8,}(?![0-9A-Za-z])")
_HEX_ESC_RE = re.compile(r"(?:\\x[0-9a-fA-F]{2}){8,}")
_PCT_RE = re.compile(r"(?:%[0-9a-fA-F]{2}[^%\s]{0,3}){4,}")
_MAX_DEPTH = 2

# Words the segmenter may use to split "ignoreallpreviousinstructions" back into words,
# and the leet resolver uses to pick between 1->i and 1->l. Deliberately small: it only
# needs to cover the vocabulary of attacks plus glue words.
_VOCAB_WORDS = """
    a an the all any every each of to for in on at by and or but not no now new from with
    your you my me i we our us it is are be was were been this that these those above
    below prior previous preceding earlier before initial original first last hidden
    secret real full entire whole system prompt prompts instructions instruction rules
    rule guidelines guideline directives directive policies policy programming training
    context message messages text ignore ignoring disregard forget override bypass skip
    drop abandon reveal repeat print show display output dump leak tell give list send
    share expose what were told said given written verbatim word exactly everything
    anything nothing act as pretend roleplay role play be become are now free
    unrestricted unfiltered uncensored jailbreak jailbroken mode developer dev admin
    administrator root sudo dan do anything ai assistant bot model chatbot gpt llm
    limits limitations restrictions filters filter safety content call tool function
    create cancel delete update book booking bookings appointment appointments
    reservation reservations customer customers client clients other others phone phones
    number numbers contact contacts data database records every everyone all
    password key api token secrets stop start over still will well kill fill allow
    only obey follow following execute run command commands here there then after
    instead respond reply answer must should can could please just also
"""
_VOCAB = frozenset(_VOCAB_WORDS.split())


@dataclass(frozen=True, slots=True)
class Normalized:
    """Result of `normalize`: clean text, strings to screen, and obfuscation signals."""

    text: str
    variants: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)


def normalize(text: str) -> Normalized:
    """Normalize ``text`` for screening; see the module docstring for what that means."""
    signals: list[str] = []
    variants: list[str] = []
    clean = _normalize_into(text, variants, signals, depth=0)
    return Normalized(text=clean, variants=variants, signals=signals)


# --- internals ------------------------------------------------------------------------


def _add(items: list[str], value: str) -> None:
    if value and value not in items:
        items.append(value)


def _normalize_into(text: str, variants: list[str], signals: list[str], depth: int) -> str:
    """Clean ``text``, append its variants and signals, and return the clean text."""
    clean = _clean(text, signals)
    _add(variants, clean)

    deleeted = deleet(clean)
    if deleeted != clean:
        _add(variants, deleeted)
        pairs = zip(clean.split(), deleeted.split(), strict=False)
        if any(_is_leet_word(a, b) for a, b in pairs):
            _add(signals, "leet")

    for candidate in (clean, deleeted):
        collapsed = collapse_spaced(candidate) if " " in candidate else candidate
        if collapsed != candidate:
            _add(signals, "spaced")
            _add(variants, collapsed)

    if depth < _MAX_DEPTH:
        for kind, decoded in _decode_chunks(clean):
            _add(signals, kind)
            _normalize_into(decoded, variants, signals, depth + 1)
    return clean


def _clean(text: str, signals: list[str]) -> str:
    """Strip invisibles, apply NFKC and fold cross-script homoglyphs."""
    if _ZW_BETWEEN_LETTERS.search(text):
        _add(signals, "zero_width")
    if _BIDI_RE.search(text):
        _add(signals, "bidi")
    text = _BIDI_RE.sub("", _ZW_RE.sub("", text))

    nfkc = unicodedata.normalize("NFKC", text)
    # Fullwidth *letters* or mathematical alphanumerics; fullwidth punctuation ("？", "！")
    # is ordinary in Chinese and Japanese text and says nothing.
    if nfkc != text and any(
        "\uff21" <= ch <= "\uff3a" or "\uff41" <= ch <= "\uff5a" or "\U0001d400" <= ch <= "\U0001d7ff"
        for ch in text
    ):
        _add(signals, "fullwidth")

    folded = _fold_homoglyphs(nfkc)
    if folded != nfkc:
        _add(signals, "homoglyph")
    return folded


def _fold_homoglyphs(text: str) -> str:
    """Fold look-alike letters, but only in words that are plausibly disguised Latin.

    A word is folded when it mixes Latin letters with look-alikes ("іgnore"), or when
    every non-Latin letter in it has a Latin twin and the message also has Latin words
    ("ѕуѕтем" next to English). Genuine Russian or Greek text keeps its letters, since
    such words almost always contain letters with no Latin look-alike.
    """
    if text.isascii():
        return text
    has_latin_word = any(w.isascii() and w.isalpha() for w in _WORD_RE.findall(text))

    def fold(match: re.Match[str]) -> str:
        word = match.group(0)
        if word.isascii():
            return word
        nonascii = [ch for ch in word if not ch.isascii()]
        mappable = all(ch in _HOMOGLYPHS for ch in nonascii)
        if not mappable:
            return word
        mixed = any(ch.isascii() and ch.isalpha() for ch in word)
        return word.translate(_HOMOGLYPH_TABLE) if mixed or has_latin_word else word

    return _WORD_RE.sub(fold, text)


def deleet(text: str) -> str:
    """Return a de-leetspeaked copy of ``text`` (for pattern matching only).

    Only tokens that contain a letter and a leet character are touched, and tokens that
    look like times, prices or ordinals ("3pm", "$45", "2nd") are left alone. ``1`` is
    ambiguous (i or l): we pick whichever spelling lands in a small vocabulary, so
    "a11" becomes "all" while "1gn0r3" becomes "ignore".
    """
    if not any(ch in _LEET_CHARS for ch in text):
        return text
    return _TOKEN_RE.sub(lambda m: _deleet_token(m.group(0)), text)


def _is_leet_word(original: str, deleeted: str) -> bool:
    """True when de-leeting turned a token into a known word ("pr3v10us" -> "previous")."""
    return original != deleeted and deleeted.strip(".,!?:;\"'()").lower() in _VOCAB


def _deleet_token(token: str) -> str:
    if not any(ch.isalpha() for ch in token) or not any(ch in _LEET_CHARS for ch in token):
        return token
    if (
        len(token) > 24
        or _NUMERICISH.match(token)
        or ("@" in token.strip("@") and "." in token)
        or any(ch in token for ch in "/%\\")
    ):
        # times/prices, e-mail addresses, URLs and encoded blobs are not leetspeak
        return token
    core = token
    # '!' only stands for 'i' between two letters/leet chars, never as punctuation.
    core = re.sub(r"(?<=[^\W_])!(?=[^\W_])", "i", core)
    core = "".join(_LEET.get(ch, ch) for ch in core)
    return _resolve_ones(core) if "1" in core else core


@lru_cache(maxsize=4096)
def _resolve_ones(token: str) -> str:
    """Replace each '1' by 'i' or 'l', preferring a spelling found in `_VOCAB`."""
    positions = [i for i, ch in enumerate(token) if ch == "1"]
    if len(positions) > 6:
        return token.replace("1", "i")
    stripped_token = token.strip(".,!?:;\"'()")
    offset = token.find(stripped_token) if stripped_token else 0
    for choice in product("il", repeat=len(positions)):
        chars = list(token)
        for pos, letter in zip(positions, choice, strict=True):
            chars[pos] = letter
        cand = "".join(chars)
        if cand[offset : offset + len(stripped_token)].lower() in _VOCAB:
            return cand
    return token.replace("1", "i")


def collapse_spaced(text: str) -> str:
    """Collapse runs of spaced-out letters: "i g n o r e  a l l" -> "ignore all".

    Two or more spaces (or a slash/bar) inside a run mark a word break. A run with no
    word breaks is squashed and, if possible, split back into words with `_segment`
    ("i g n o r e a l l" -> "ignore all").
    """
    def repl(match: re.Match[str]) -> str:
        run = match.group(0)
        words = [re.sub(r"[^A-Za-z]", "", part) for part in _SPACED_WORD_BREAK.split(run)]
        words = [w for w in words if w]
        if len(words) == 1:
            # No visible word breaks: only rewrite if it splits back into real words.
            return _segment(words[0].lower()) or run
        return " ".join(words)

    return _SPACED_RE.sub(repl, text)


@lru_cache(maxsize=1024)
def _segment(squashed: str) -> str | None:
    """Split ``squashed`` into the fewest `_VOCAB` words, or None if it cannot be."""
    n = len(squashed)
    if n > 200:
        return None
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(1, n + 1):
        for start in range(max(0, end - 16), end):
            prev = best[start]
            word = squashed[start:end]
            if prev is not None and word in _VOCAB:
                cand = [*prev, word]
                current = best[end]
                if current is None or len(cand) < len(current):
                    best[end] = cand
    result = best[n]
    return " ".join(result) if result else None


def _decode_chunks(text: str) -> list[tuple[str, str]]:
    """Find base64 / hex / percent-encoded chunks that decode to readable text."""
    found: list[tuple[str, str]] = []
    for match in _B64_RE.finditer(text):
        decoded = _try_base64(match.group(0))
        if decoded:
            found.append(("base64", decoded))
    for match in _HEX_RE.finditer(text):
        decoded = _try_hex(re.sub(r"[\s:]|^0x", "", match.group(0)))
        if decoded:
            found.append(("hex", decoded))
    for match in _HEX_ESC_RE.finditer(text):
        decoded = _try_hex(match.group(0).replace("\\x", ""))
        if decoded:
            found.append(("hex", decoded))
    if _PCT_RE.search(text):
        decoded = unquote(text)
        if decoded != text and _readable(decoded):
            found.append(("percent", decoded))
    return found


def _try_base64(chunk: str) -> str | None:
    # Pure letters or pure digits are almost always words / numbers, not base64.
    if chunk.isalpha() or chunk.isdigit():
        return None
    body = chunk.rstrip("=").replace("-", "+").replace("_", "/")
    for trim in range(4):
        candidate = body[: len(body) - trim] if trim else body
        if len(candidate) % 4 == 1:
            continue
        try:
            raw = base64.b64decode(candidate + "=" * (-len(candidate) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _bytes_to_text(raw)
        if decoded:
            return decoded
    return None


def _try_hex(digits: str) -> str | None:
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return _bytes_to_text(raw)


def _bytes_to_text(raw: bytes) -> str | None:
    if len(raw) < 8:
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return decoded if _readable(decoded) else None


def _readable(decoded: str) -> bool:
    """True when ``decoded`` is mostly printable text with a good share of letters."""
    if not decoded:
        return False
    printable = sum(1 for ch in decoded if ch.isprintable() or ch in "\n\r\t")
    letters = sum(1 for ch in decoded if ch.isalpha() or ch == " ")
    return printable / len(decoded) >= 0.95 and letters / len(decoded) >= 0.6
