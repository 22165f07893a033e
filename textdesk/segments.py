"""SMS segment counting (GSM-7 vs UCS-2), as carriers bill it.

GSM-7: 160 septets in one segment, 153 per part when concatenated; the extension table
characters (``^{}\\[~]|€`` and form feed) take two septets. A single character outside the
GSM-7 alphabet switches the whole message to UCS-2: 70 UTF-16 code units in one segment,
67 per part; characters outside the BMP (most emoji) are two code units.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SegmentInfo", "count_segments", "fit_to_segments", "is_gsm7", "non_gsm7"]

_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = "^{}\\[~]|€\f"
_BASIC = frozenset(_GSM_BASIC)
_EXT = frozenset(_GSM_EXT)


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets or UTF-16 code units
    segments: int


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC or ch in _EXT for ch in text)


def non_gsm7(text: str) -> list[str]:
    """The characters that force ``text`` into UCS-2, each once, in order of first appearance."""
    return list(dict.fromkeys(ch for ch in text if ch not in _BASIC and ch not in _EXT))


def _ucs2_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def count_segments(text: str) -> SegmentInfo:
    """How many SMS segments ``text`` costs."""
    if is_gsm7(text):
        units = sum(2 if ch in _EXT else 1 for ch in text)
        single, multi, enc = 160, 153, "GSM-7"
    else:
        units = _ucs2_units(text)
        single, multi, enc = 70, 67, "UCS-2"
    if units == 0:
        return SegmentInfo(enc, 0, 0)
    segments = 1 if units <= single else -(-units // multi)
    return SegmentInfo(enc, units, segments)


def fit_to_segments(text: str, max_segments: int) -> str:
    """Trim ``text`` on a word boundary so it fits ``max_segments``, ending with an ellipsis."""
    if count_segments(text).segments <= max_segments:
        return text
    words = text.split(" ")
    while words:
        words.pop()
        candidate = " ".join(words).rstrip(" ,;:") + "..."
        if count_segments(candidate).segments <= max_segments:
            return candidate
    return text[: 150 * max_segments]
