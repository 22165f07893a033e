"""`textdesk check`, deliverability: HELP and opt-in wording, segment budgets and GSM-7, links,
quiet hours and the 10DLC registration of a US long code, each problem named with its fix,
through the real CLI."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from agent.replies import R
from textdesk.business import load_business
from textdesk.cli import app
from textdesk.deliverability import NOT_SMS, DeliverabilityData, data, rendered_messages
from textdesk.settings import DEMO_DIR


def salon() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEMO_DIR / "salon.yaml").read_text())
    return loaded


def run(tmp_path: Path, business: dict[str, Any], *args: str) -> tuple[int, str]:
    path = tmp_path / "business.yaml"
    path.write_text(yaml.safe_dump(business, allow_unicode=True))
    result = CliRunner().invoke(app, ["check", str(path), *args])
    return result.exit_code, result.output


def test_a_complete_business_file_is_clean(tmp_path: Path) -> None:
    code, out = run(tmp_path, salon())
    assert code == 0, out
    assert out.strip() == "Maple Street Salon: clean"


def test_help_without_support_contact_or_frequency_names_both_with_fixes(tmp_path: Path) -> None:
    b = salon()
    b["support"] = "Ask at the front desk"
    b["frequency"] = ""
    code, out = run(tmp_path, b)
    assert code == 1
    assert "- HELP reply has no support contact -> set `support:` to a phone number or email" in out
    assert "- HELP reply does not state the message frequency -> set `frequency:`" in out
    assert "opt-in wording" not in out  # opt_in_text still has its frequency


def test_opt_in_text_must_carry_brand_frequency_rates_and_stop(tmp_path: Path) -> None:
    b = salon()
    b["opt_in_text"] = "Sign me up for texts."
    code, out = run(tmp_path, b)
    assert code == 1
    parts = ("the business name", "the message frequency", '"Msg & data rates may apply"', "how to opt out")
    for part in parts:
        assert f"opt-in wording lacks {part}" in out
    assert out.count("-> add it to `opt_in_text:`") == 4


def test_non_gsm_characters_are_named_with_their_code_points(tmp_path: Path) -> None:
    b = salon()
    b["auto_replies"] = {"HOURS": "We\u2019re open 9\u20136 \U0001f642"}
    code, out = run(tmp_path, b)
    assert code == 1
    line = next(x for x in out.splitlines() if "auto_replies.HOURS" in x)
    assert "U+2019" in line and "U+2013" in line and "U+1F642" in line
    assert "replace '\u2019' with \"'\"" in line and "drop '\U0001f642'" in line


def test_letters_a_language_needs_are_not_alphabet_problems(tmp_path: Path) -> None:
    b = salon()
    b["faq"].append({"q": "Do you speak Polish?", "a": "Tak, m\u00f3wimy po polsku: \u0142atwo."})
    code, out = run(tmp_path, b)
    assert code == 0, out


def test_a_message_over_its_segment_budget_is_named(tmp_path: Path) -> None:
    b = salon()
    b["faq"].append({"q": "Tell me about parking downstairs?", "a": "Park in the lot. " * 20})
    b["name"] = "Maple Street Salon and Spa of Greater Brooklyn, Queens and the Wider Metropolitan Area Inc"
    b["opt_in_text"] = b["opt_in_text"].replace("Maple Street Salon", b["name"])
    code, out = run(tmp_path, b)
    assert code == 1
    assert "FAQ answer to 'Tell me about parking downstairs?' takes 3 segments, over its budget of 2" in out
    assert "shorten that FAQ's `a:` to fit 306 GSM-7 characters" in out
    # the real opt-out template, rendered with the long name, no longer fits its one segment
    assert "R.opt_out takes 2 segments, over its budget of 1" in out


def test_shortener_links_and_hosts_off_the_allow_list_are_named(tmp_path: Path) -> None:
    b = salon()
    b["faq"].append({"q": "Do you have a price list?",
                     "a": "See https://bit.ly/3xYz or www.elsewhere.example/p"})
    b["allowed_link_hosts"] = ["maplesalon.example", "tinyurl.com"]
    code, out = run(tmp_path, b)
    assert code == 1
    assert "links through the URL shortener 'bit.ly'" in out
    assert "links to 'www.elsewhere.example', which is not in `allowed_link_hosts`" in out
    assert "add 'www.elsewhere.example' to `allowed_link_hosts`" in out
    assert "`allowed_link_hosts` lists the URL shortener 'tinyurl.com'" in out
    assert "maplesalon.example'" not in out  # the allowed host itself is fine


@pytest.mark.parametrize(
    ("quiet", "named"),
    [
        ("9pm-8am", "cannot be read"),
        ("08:00-08:00", "are empty"),
        ("00:00-24:00", "cover (almost) the whole day"),
        ("22:00-21:30", "cover (almost)"),
    ],
)
def test_quiet_hours_must_parse_and_leave_time_to_send_and_to_rest(
    tmp_path: Path, quiet: str, named: str
) -> None:
    b = salon()
    b["quiet_hours"] = quiet
    code, out = run(tmp_path, b)
    assert code == 1
    assert f"quiet hours {quiet!r} {named}" in out and "`quiet_hours:`" in out


def test_a_us_long_code_without_10dlc_fields_is_named(tmp_path: Path) -> None:
    b = salon()
    del b["a2p_10dlc"]
    b["number"] = {"e164": "+12125550100"}
    code, out = run(tmp_path, b)
    assert code == 1
    assert "`number.type` is not set for +12125550100" in out and "it looks like long_code" in out
    assert "+12125550100 is a US long code without an A2P 10DLC campaign" in out
    assert "add `a2p_10dlc:` with brand, use_case, sample_messages and opt_in_description" in out


def test_10dlc_fields_are_checked_and_samples_must_look_like_real_templates(tmp_path: Path) -> None:
    b = salon()
    b["a2p_10dlc"] = {
        "brand": "",
        "use_case": "APPOINTMENTS",
        "sample_messages": [
            "You're booked: haircut with Kim on Fri Mar 6 at 2:00 PM. See you then!",  # a real shape
            "Huge sale this weekend only, 50% off everything!",
        ],
    }
    code, out = run(tmp_path, b)
    assert code == 1
    assert "`a2p_10dlc.brand` is empty" in out
    assert "`a2p_10dlc.use_case` 'APPOINTMENTS' is not a 10DLC use case" in out
    assert "`a2p_10dlc.sample_messages[1]` 'Huge sale" in out and "sample_messages[0]" not in out
    assert "no `a2p_10dlc.sample_messages` names the business" in out
    assert "`a2p_10dlc.opt_in_description` is empty" in out
    # the suggested samples are the real templates' renderings
    business = load_business(DEMO_DIR / "salon.yaml")
    assert R.reminder(business, "manicure", "Luis", "2026-09-30", "10:30") in out


def test_toll_free_and_non_us_numbers_need_no_10dlc(tmp_path: Path) -> None:
    numbers = ({"e164": "+18885550163", "type": "toll_free"}, {"e164": "+447911123456", "type": "long_code"})
    for number in numbers:
        b = salon()
        del b["a2p_10dlc"]
        b["number"] = number
        code, out = run(tmp_path, b)
        assert code == 0, out


def test_a_number_type_that_contradicts_the_number_is_named(tmp_path: Path) -> None:
    b = salon()
    b["number"] = {"e164": "+18885550163", "type": "long_code"}
    code, out = run(tmp_path, b)
    assert code == 1 and "`number.type` is long_code but +18885550163 is a toll free" in out


def test_samples_option_prints_renderings_of_the_real_templates(tmp_path: Path) -> None:
    code, out = run(tmp_path, salon(), "--samples")
    assert code == 0
    assert "a2p_10dlc sample_messages" in out and "Reminder from Maple Street Salon: your manicure" in out


def test_a_file_that_is_not_a_business_file_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("name: [unclosed\n")
    assert CliRunner().invoke(app, ["check", str(path)]).exit_code == 2
    path.write_text(yaml.safe_dump({**salon(), "number": {"type": "long_code"}}))  # no e164
    assert CliRunner().invoke(app, ["check", str(path)]).exit_code == 2


def test_every_reply_template_is_rendered_for_the_check() -> None:
    public = {n for n, _ in inspect.getmembers(R, inspect.isfunction) if not n.startswith("_")}
    messages, problems = rendered_messages(load_business(DEMO_DIR / "salon.yaml"))
    rendered = {m.name.removeprefix("R.") for m in messages if m.name.startswith("R.")}
    assert not problems
    assert public - NOT_SMS == rendered


def test_scheduler_texts_come_from_the_reply_templates() -> None:
    b = load_business(DEMO_DIR / "salon.yaml")
    assert R.reminder(b, "haircut", "Kim", "2026-03-05", "15:00") == (
        "Reminder from Maple Street Salon: your haircut with Kim is Thu Mar 5 at 3:00 PM. "
        "Reply 1 to confirm, 2 to reschedule, 3 to cancel."
    )
    assert R.no_show("haircut") == (
        "We missed you at your haircut today. Want to rebook? Just text us a day and time."
    )
    source = (Path(__file__).resolve().parents[2] / "textdesk" / "scheduler.py").read_text()
    assert "R.reminder(" in source and "R.no_show(" in source and "Reminder from" not in source


def test_the_opt_in_wording_is_the_business_files_else_a_complete_default() -> None:
    b = load_business(DEMO_DIR / "salon.yaml")
    assert R.opt_in_wording(b) == b.opt_in_text
    default = R.opt_in_wording(b.model_copy(update={"opt_in_text": None}))
    assert "Maple Street Salon" in default and b.frequency in default and "STOP" in default


def test_the_data_file_is_validated() -> None:
    assert "bit.ly" in data().shorteners and "CUSTOMER_CARE" in data().use_cases
    with pytest.raises(ValidationError):
        DeliverabilityData.model_validate({"shorteners": ["https://Bit.ly"], "use_cases": ["MIXED"]})
    with pytest.raises(ValidationError):
        DeliverabilityData.model_validate({"shorteners": ["bit.ly"], "use_cases": ["mixed", "MIXED"]})
