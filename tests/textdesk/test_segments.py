from __future__ import annotations

import pytest

from textdesk.segments import count_segments, fit_to_segments


@pytest.mark.parametrize(
    ("text", "segments", "encoding"),
    [
        ("a" * 160, 1, "GSM-7"),
        ("a" * 161, 2, "GSM-7"),
        ("a" * 306, 2, "GSM-7"),
        ("a" * 307, 3, "GSM-7"),
        ("😀" + "a" * 68, 1, "UCS-2"),
        ("😀" + "a" * 69, 2, "UCS-2"),
        ("é" * 160, 1, "GSM-7"),  # é is in the GSM-7 basic table
        ("€" * 80, 1, "GSM-7"),  # extension characters count two septets
        ("€" * 81, 2, "GSM-7"),
        ("[" * 80 + "a", 2, "GSM-7"),
        ("ç" + "a" * 69, 1, "UCS-2"),  # lower-case ç is not GSM-7 (only Ç is)
        ("", 0, "GSM-7"),
    ],
)
def test_segment_vectors(text: str, segments: int, encoding: str) -> None:
    info = count_segments(text)
    assert (info.segments, info.encoding) == (segments, encoding)


def test_fit_trims_on_a_word_boundary() -> None:
    text = " ".join(["word"] * 100)
    fitted = fit_to_segments(text, 1)
    assert count_segments(fitted).segments == 1
    assert fitted.endswith("...") and "wor..." not in fitted


def test_fit_leaves_short_text_alone() -> None:
    assert fit_to_segments("hello", 1) == "hello"
