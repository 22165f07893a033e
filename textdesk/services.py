"""Wiring: build every long-lived component from one Settings object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from agent.providers.base import Provider
from agent.providers.factory import make_provider
from channels.registry import build_channels, build_senders
from channels.twilio import TwilioChannel
from integrations.calendar.base import CalendarAdapter
from integrations.crm.hooks import escalation_hook
from integrations.crm.sink import EventSink
from integrations.factory import make_calendar, make_event_sink, make_payments, make_stripe_webhook
from integrations.payments.stripe import StripePayments, StripeWebhook
from store.db import make_engine, make_sessionmaker
from textdesk import tasks
from textdesk.autoreplies import JsonAutoReplyStore, auto_replies_path
from textdesk.business import Business, load_business
from textdesk.clock import Clock, SystemClock
from textdesk.delivery import Dispatcher
from textdesk.pipeline import Pipeline
from textdesk.scheduler import Scheduler
from textdesk.settings import Settings

__all__ = ["Services", "build_services"]


@dataclass
class Services:
    settings: Settings
    business: Business
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    provider: Provider
    pipeline: Pipeline
    channels: dict[str, Any]  # provider name -> its channel (channels.registry)
    dispatcher: Dispatcher
    scheduler: Scheduler
    calendar: CalendarAdapter
    events: EventSink
    payments: StripePayments | None
    stripe_webhook: StripeWebhook | None

    async def start(self) -> None:
        """Background work for a serving process: CRM delivery, crash recovery, the job loop."""
        start_sink = getattr(self.events, "start", None)
        if start_sink is not None:
            await start_sink()
        if self.settings.scheduler_enabled:
            # Recovery runs in the job loop, in the background: a worker serves at once even when
            # Twilio is slow to take the recovered replies.
            self.scheduler.recover = self.pipeline.recover
            self.scheduler.start()

    @property
    def twilio(self) -> TwilioChannel:
        """The Twilio channel (tests and the benchmark's fake carrier sign with it)."""
        channel: TwilioChannel = self.channels[TwilioChannel.provider]
        return channel

    async def close(self) -> None:
        await self.scheduler.stop()
        await tasks.drain()  # replies and sends started by requests finish before the pools close
        stop_sink = getattr(self.events, "stop", None)
        if stop_sink is not None:
            await stop_sink()
        await self.calendar.aclose()
        if self.payments is not None:
            await self.payments.aclose()
        for channel in self.channels.values():
            await channel.aclose()
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()
        await self.engine.dispose()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    business: Business | None = None,
    engine: AsyncEngine | None = None,
    provider: Provider | None = None,
    twilio: TwilioChannel | None = None,
) -> Services:
    business = business or load_business(settings.business_file)
    engine = engine or make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    clock = clock or SystemClock()
    provider = provider or make_provider(settings, business)
    warm = getattr(provider, "warm", None)
    if warm is not None:
        warm()  # train the offline classifier now, not on the first customer's turn
    pipeline = Pipeline(settings, business, sessions, clock, provider)
    _ = pipeline.screen.classifier  # likewise the injection screen's classifier
    channels = build_channels(settings, twilio)
    dispatcher = Dispatcher(
        sessions, build_senders(settings, channels), clock, default_providers={"sms": settings.sms_provider}
    )
    scheduler = Scheduler(settings, business, sessions, clock, dispatcher)
    calendar = make_calendar(settings, sessions=sessions, business=business, clock=clock)
    if calendar.name != "builtin":
        pipeline.calendar = calendar
    payments = make_payments(settings, business=business, public_url=settings.public_url, clock=clock)
    pipeline.payments = payments
    # No separate dedupe: the webhook route records the event id with the update, atomically.
    stripe_webhook = make_stripe_webhook(settings, clock=clock)
    scheduler.calendar = calendar
    events = make_event_sink(settings, clock=clock)
    pipeline.events = events
    pipeline.escalation_hooks.append(escalation_hook(sessions, events, clock))

    async def deliver(ids: list[int]) -> None:
        for mid in ids:
            await dispatcher.send(mid)

    pipeline.deliver_later = deliver
    pipeline.auto_replies = JsonAutoReplyStore(auto_replies_path(settings))
    return Services(
        settings,
        business,
        engine,
        sessions,
        clock,
        provider,
        pipeline,
        channels,
        dispatcher,
        scheduler,
        calendar,
        events,
        payments,
        stripe_webhook,
    )
