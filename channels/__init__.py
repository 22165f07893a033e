"""Channels: the only code that knows a messaging provider's wire format."""
