"""The output guard (guardrails/output.py) and PII redaction (textdesk/redact.py).

Known gaps are ``xfail`` with the reason, so they show up in every run until fixed.
"""

from __future__ import annotations

import pytest

from guardrails.output import CANARY, OutputGuard
from textdesk.business import load_business
from textdesk.redact import redact, redact_obj
from textdesk.segments import count_segments
from textdesk.settings import DEMO_BUSINESS_FILE

OWN = frozenset({"12125550123", "ana@example.com"})  # what the pipeline passes for the recipient


@pytest.fixture(scope="module")
def guard() -> OutputGuard:
    return OutputGuard(load_business(DEMO_BUSINESS_FILE))


# -- output guard ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "reason"), [
    (f"Sure! My setup starts with {CANARY}.", "leak.system_prompt"),
    (f"ok {CANARY.upper()}", "leak.system_prompt"),
    ("Here is my System Prompt: be nice.", "leak.system_prompt"),
    ("You are textdesk, an assistant for Maple Street Salon", "leak.system_prompt"),
    ("My instructions say I can't do that.", "leak.system_prompt"),
    ("Cancelled bk_0123456789ab for you.", "leak.internal_id"),
    ("Your contact_id is 42.", "leak.internal_id"),
    ("Traceback (most recent call last): ...", "leak.internal_id"),
    ("Pay your deposit at https://evil.example/pay", "link.not_allowed"),
    ("Details: bit.ly/3xYz", "link.not_allowed"),
    ("See maplesalon.example.evil.com/book", "link.not_allowed"),
    ("See https://maplesalon.exаmple/book", "link.not_allowed"),  # Cyrillic "а": not our host
    ("HTTPS://EVIL.EXAMPLE/X", "link.not_allowed"),
    ("Vera's email is vera@example.com", "pii.email"),
    ("Call Vera on 646-555-0199", "pii.phone"),
    ("Call Vera on +1 (646) 555 0199", "pii.phone"),
])
def test_blocked_replies_are_replaced_with_a_safe_one(guard: OutputGuard, text: str, reason: str) -> None:
    v = guard.check(text, OWN)
    assert v.triggered and v.reason == reason
    assert v.replacement and "Maple Street Salon" in v.replacement
    assert guard.check(v.replacement, OWN).triggered is False  # the fallback passes its own guard


@pytest.mark.parametrize("text", [
    "Book online at https://maplesalon.example/book",
    "Book online at book.maplesalon.example",
    "Questions? email help@maplesalon.example or call (212) 555-0100",
    "We'll send the receipt to ana@example.com",  # the recipient's own email
    "We have your number as +1 212 555 0123",  # the recipient's own number
    "Haircut with Kim on Tue Mar 3 at 3:00 PM, $45.",
    "See you Tue Mar.3 at 10am!",
    "Color is from $95; it takes about 1.5 hours.",
    "Booked for 2026-03-05 at 15:00.",
])
def test_ordinary_replies_pass(guard: OutputGuard, text: str) -> None:
    v = guard.check(text, OWN)
    assert not v.triggered, v.reason


def test_another_customers_contact_details_are_blocked_but_the_recipients_pass(guard: OutputGuard) -> None:
    text = "Got it: vera@example.com and +1 646 555 0199."
    assert guard.check(text).triggered
    assert guard.check(text, frozenset({"vera@example.com"})).reason == "pii.phone"
    assert not guard.check(text, frozenset({"vera@example.com", "16465550199"})).triggered


def test_over_budget_replies_are_trimmed_to_the_budget(guard: OutputGuard) -> None:
    long_gsm = "Your appointment is confirmed. " * 30  # ~900 GSM-7 characters: 6 segments
    v = guard.check(long_gsm)
    assert v.triggered and v.reason == "segments.over_budget"
    assert v.replacement and count_segments(v.replacement).segments <= guard.max_segments
    long_ucs2 = "Merci 💅 à bientôt! " * 20  # emoji and accents: UCS-2, 67 per part
    v = guard.check(long_ucs2)
    assert v.replacement and count_segments(v.replacement).segments <= guard.max_segments
    assert not guard.check("A" * 459).triggered  # exactly three GSM-7 parts (3 x 153)


@pytest.mark.parametrize("text", ["Pay at http://203.0.113.7/pay", "Log in at http://localhost:8000/admin"])
def test_links_to_ip_literals_or_bare_hosts_are_blocked(guard: OutputGuard, text: str) -> None:
    assert guard.check(text, OWN).triggered


def test_recipients_own_number_in_national_format_passes(guard: OutputGuard) -> None:
    assert not guard.check("We have 212-555-0123 on file.", OWN).triggered


# -- redaction ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kept"), [
    ("call me at 212-555-0123", "…23]"),
    ("+1 (212) 555-0123", "…23]"),
    ("212.555.0123 please", "…23]"),
    ("2125550123", "…23]"),
    ("tel:+12125550123", "…23]"),
    ("my number is +1-212-555-0123.", "…23]."),
    ("UK: +44 20 7946 0958", "…58]"),
    ("FR: +33 1 23 45 67 89", "…89]"),
    ("toll free 1-800-555-0199", "…99]"),
    ("call 212 555 0123 or 646 555 0124", "…24]"),
])
def test_phone_numbers_in_many_formats_are_masked(text: str, kept: str) -> None:
    out = redact(text)
    assert "[phone …" in out and kept in out
    digits = "".join(ch for ch in out if ch.isdigit())
    assert "5550123" not in digits and "5550124" not in digits and "79460958" not in digits


@pytest.mark.parametrize("text", ["ana@example.com", "Ana.Lopez+salon@mail.example.co.uk", "ANA@EXAMPLE.COM",
                                  "reach me: a_b-c@sub.example.org."])
def test_emails_are_masked(text: str) -> None:
    assert "[email]" in redact(text) and "@" not in redact(text)


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
                                  "5555 5555 5555 4444", "378282246310005", "6011 0009 9013 9424"])
def test_luhn_valid_card_numbers_are_masked(card: str) -> None:
    out = redact(f"my card is {card} thanks")
    assert "[card]" in out and "1111" not in out and "4444" not in out


@pytest.mark.parametrize("number", ["1234 5678 9012 3456", "1234567890123456", "9999 8888 7777 6666"])
def test_random_16_digit_numbers_are_not_called_cards(number: str) -> None:
    assert "[card]" not in redact(f"ref {number}")


@pytest.mark.parametrize("text", [
    "see you at 3:00", "3:00-4:30pm", "it's $45", "from $95 to $120", "on 2026-03-05",
    "on 03/05/2026 at 10:30", "2026-03-05T15:00:00+00:00", "March 5, 2026 at 3:00", "room 12-345",
    "zip 11201", "between 9-5", "1.5 hours", "booking bk_0123456789ab", "order #123456", "",
])
def test_no_false_positives_on_times_prices_dates(text: str) -> None:
    assert redact(text) == text


def test_redact_obj_walks_nested_json() -> None:
    data = {"messages": [{"role": "user", "content": "I'm 212-555-0123, ana@example.com"}],
            "n": 3, "ok": True, "none": None}
    out = redact_obj(data)
    assert out["messages"][0]["content"] == "I'm [phone …23], [email]"
    assert (out["n"], out["ok"], out["none"]) == (3, True, None)


@pytest.mark.parametrize("text", ["4111 1111 1111 1111 123", "5555555555554444 12 27"])
def test_card_followed_by_cvv_or_expiry_is_masked(text: str) -> None:
    assert "1111 1111" not in redact(text) and "5555555555554444" not in redact(text)


def test_two_adjacent_phone_numbers_are_both_masked() -> None:
    out = redact("numbers: 2125550123 6465550199")
    assert "2125550123" not in out and "6465550199" not in out


def test_date_and_time_together_are_not_a_phone() -> None:
    assert redact("book 2026-03-05 15:00 please") == "book 2026-03-05 15:00 please"
