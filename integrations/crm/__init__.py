"""CRM sync: events with a stable JSON shape, delivered off the customer's turn."""

from integrations.crm.events import CrmEvent
from integrations.crm.sink import Destination, EventSink, MemorySink, NullSink, QueueSink

__all__ = ["CrmEvent", "Destination", "EventSink", "MemorySink", "NullSink", "QueueSink"]
