"""Outbound webhooks: an event fanned out to the endpoints that want it, each delivery signed (Standard
Webhooks) and retried. Endpoints: services/webhook_endpoints.py; deliveries: services/webhook_delivery.py."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.services.events import Event


async def fan_out(session: AsyncSession, event: Event) -> int:
    """Queue one delivery per endpoint that wants this event, in the caller's transaction; answer how many."""
    # Imported here: webhook_delivery imports services.events, which imports this module lazily.
    from walletsvc.services import webhook_delivery

    return await webhook_delivery.fan_out(session, event)
