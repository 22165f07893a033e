"""/metrics answers in Prometheus's exposition format, with its content type exactly as Prometheus
states it (one charset, not litestar's added on top)."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from prometheus_client import CONTENT_TYPE_LATEST


async def test_metrics_content_type_is_prometheus_s_with_one_charset(client: AsyncTestClient[Any]) -> None:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == CONTENT_TYPE_LATEST
    assert resp.headers["content-type"].count("charset") == 1
    assert "# TYPE" in resp.text
