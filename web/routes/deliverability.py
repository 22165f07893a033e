"""The go-live check on the admin pages (``GET /admin/deliverability``): the same report as
``textdesk check`` for the business this server runs, read-only. Admins only."""

from __future__ import annotations

from litestar import Controller, get
from litestar.response import Template

from agent.extract import known_topics
from textdesk.deliverability import suggested_samples
from textdesk.lint import problems
from web.deps import CurrentStaff, Svc
from web.guards import ADMIN, requires
from web.routes.common import page

__all__ = ["DeliverabilityController"]


class DeliverabilityController(Controller):
    path = "/admin/deliverability"
    guards = [requires(*ADMIN)]  # noqa: RUF012
    include_in_schema = False

    @get("/", name="deliverability")
    async def report(self, staff: CurrentStaff, services: Svc) -> Template:
        business = services.business
        found = problems(business, known_topics())
        return page(
            "admin/deliverability.html",
            staff,
            business=business.name,
            problems=found,
            areas=sorted({p.area for p in found}),
            samples=suggested_samples(business),
        )
