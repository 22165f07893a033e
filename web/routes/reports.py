"""Reports: containment, escalations, drop-offs, response times, delivery, opt-outs, volume."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, get
from litestar.params import FromQuery
from litestar.response import Template

from web.charts import Series, bar_chart, hbar_chart
from web.deps import CurrentStaff, Db, Svc
from web.guards import REVIEW, requires
from web.reporting import build_report
from web.routes.common import page
from web.templating import REASON_LABELS

__all__ = ["ReportsController"]

PERIODS = (7, 30, 90)


class ReportsController(Controller):
    path = "/reports"
    guards = [requires(*REVIEW)]  # noqa: RUF012
    include_in_schema = False

    @get("/", name="reports")
    async def index(self, db: Db, staff: CurrentStaff, services: Svc, days: FromQuery[int] = 30) -> Template:
        days = days if days in PERIODS else 30
        tz = services.business.tz
        now = services.clock.now()
        today = now.astimezone(tz).date()
        start_day = today - dt.timedelta(days=days - 1)
        since = dt.datetime.combine(start_day, dt.time(0), tz).astimezone(dt.UTC)
        rep = await build_report(db, since, now + dt.timedelta(seconds=1), now, tz)
        labels = [d.day.strftime("%b %-d") for d in rep.days]
        charts = {
            "volume": bar_chart(
                labels,
                [
                    Series("Inbound", [d.inbound for d in rep.days], "s1"),
                    Series("Outbound", [d.outbound for d in rep.days], "s2"),
                ],
                title=f"Messages per day, last {days} days",
            ),
            "segments": bar_chart(
                labels,
                [Series("Segments", [d.segments for d in rep.days], "s3")],
                title=f"Outbound SMS segments per day, last {days} days",
            ),
            "escalations": hbar_chart(
                [(REASON_LABELS.get(r, r), n) for r, n in rep.escalations],
                title="Escalations by reason",
                css="s2",
            ),
            "delivery": hbar_chart(
                [(s, n) for s, n in rep.delivery], title="Outbound messages by delivery status"
            ),
            "optouts": bar_chart(
                labels,
                [Series("Opt-outs", [d.opt_outs for d in rep.days], "s2")],
                title=f"Opt-outs per day, last {days} days",
                width=400,
                height=160,
            ),
        }
        return page("reports.html", staff, rep=rep, charts=charts, days=days, periods=PERIODS)
