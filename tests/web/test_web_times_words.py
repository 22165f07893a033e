"""Times on staff pages are in the business's zone, on its locale's clock, with the zone named; states
are in plain words. The salon (America/New_York, en-US) reads "9:00 AM EST", as the bot writes it; the
same salon moved to Berlin with a de-DE locale reads "15:00 CET"."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from tests.web.conftest import Web, login, make_web
from textdesk.clock import FrozenClock
from textdesk.settings import DEMO_BUSINESS_FILE

# The clock fixture stands at 2026-03-02 14:00 UTC (a Monday): 9:00 EST, 15:00 CET.


def times(html: str) -> list[str]:
    return re.findall(r"<time [^>]*>([^<]*)</time>", html)


async def book_haircut(web: Web) -> int:
    await web.text("can i get a haircut with kim on wednesday at 2pm")
    result = await web.text("YES")
    assert result.conversation_id and "2:00 PM" in result.replies[0].body  # what the bot writes
    return result.conversation_id


async def test_a_us_business_reads_12_hour_times_in_its_own_zone(web: Web) -> None:
    cid = await book_haircut(web)
    await login(web.client, "admin")
    html = (await web.client.get(f"/inbox/{cid}")).text
    assert times(html)[0] == "Mar 2, 9:00 AM EST"  # the first message, 14:00 UTC
    assert "haircut · Wed Mar 4, 2:00 PM EST with Kim" in html  # the booking, as the bot said it
    assert "<dt>Date</dt><dd>Wed Mar 4</dd><dt>Time</dt><dd>2:00 PM</dd>" in html  # collected slots
    assert "14:00" not in html and "2026-03-04" not in html

    trace_id = re.search(r'href="/traces/(\d+)"', html)
    assert trace_id
    trace = (await web.client.get(f"/traces/{trace_id[1]}")).text
    assert "Mon Mar 2 2026, 9:00:00 AM EST" in trace
    assert "Mar 2, 9:00 AM EST" in times((await web.client.get("/traces")).text)
    users = (await web.client.get("/admin/users")).text
    assert re.search(r"<td>[A-Z][a-z]{2} \d{1,2}, 20\d\d</td>", users)  # created (wall clock): a date


async def test_consent_is_shown_in_plain_words(web: Web) -> None:
    cid = (await web.text("where are you located?")).conversation_id
    await login(web.client, "agent")
    assert "consent: hasn&#39;t opted in yet" in (await web.client.get(f"/inbox/{cid}")).text
    await web.text("STOP")
    page = (await web.client.get(f"/inbox/{cid}")).text
    assert "consent: opted out (STOP)" in page and "opted_out" not in page


@pytest.fixture
async def berlin(sqlite_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    data = yaml.safe_load(DEMO_BUSINESS_FILE.read_text(encoding="utf-8"))
    data.update(timezone="Europe/Berlin", locale="de-DE")
    path = tmp_path / "berlin.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    async for w in make_web(sqlite_url, tmp_path, clock, business_file=path):
        yield w


async def test_a_24_hour_locale_reads_24_hour_times_in_its_own_zone(berlin: Web) -> None:
    cid = (await berlin.text("where are you located?")).conversation_id
    await login(berlin.client, "agent")
    html = (await berlin.client.get(f"/inbox/{cid}")).text
    assert times(html)[0] == "Mar 2, 15:00 CET"
    assert "AM" not in html and "PM" not in html
