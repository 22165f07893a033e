"""Integrations: external calendars, CRM sync and payment links, each behind a small seam.

``calendar``  CalendarAdapter (builtin | caldav | google): busy / create / move / cancel.
``crm``       CrmEvent + EventSink (in-memory queue + worker) -> generic webhook, HubSpot.
``payments``  Stripe Checkout / Payment Links, webhook verification, deposit holds.

Errors live in ``integrations.errors``; construction from settings in ``integrations.factory``.
"""
