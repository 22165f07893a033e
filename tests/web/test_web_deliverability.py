"""The go-live check on the admin pages: the same report as `textdesk check`, admins only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from tests.web.conftest import Web, login, make_web
from textdesk.clock import FrozenClock
from textdesk.settings import DEMO_DIR


@pytest.fixture
async def web_with_problems(sqlite_url: str, tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Web]:
    data = yaml.safe_load((DEMO_DIR / "salon.yaml").read_text())
    data["support"] = "Ask at the front desk"
    del data["a2p_10dlc"]
    path = tmp_path / "business.yaml"
    path.write_text(yaml.safe_dump(data))
    async for w in make_web(sqlite_url, tmp_path, clock, business_file=path):
        yield w


async def test_a_clean_business_shows_clean_and_the_sample_messages(web: Web) -> None:
    await login(web.client, "admin")
    resp = await web.client.get("/admin/deliverability")
    assert resp.status_code == 200
    assert "Clean" in resp.text and "Maple Street Salon" in resp.text
    assert "Reminder from Maple Street Salon: your manicure with Luis" in resp.text


async def test_the_page_lists_each_problem_with_its_fix(web_with_problems: Web) -> None:
    web = web_with_problems
    await login(web.client, "admin")
    resp = await web.client.get("/admin/deliverability")
    assert resp.status_code == 200
    html = resp.text
    assert "<td>HELP reply has no support contact</td>" in html
    assert "set `support:` to a phone number or email" in html
    assert "is a US long code without an A2P 10DLC campaign" in html
    assert "Clean" not in html


async def test_agents_and_reviewers_are_refused(web: Web) -> None:
    for role in ("agent", "reviewer"):
        client = web.new_client()
        await login(client, role)
        assert (await client.get("/admin/deliverability")).status_code == 403
