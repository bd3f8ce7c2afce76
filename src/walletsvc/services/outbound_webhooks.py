"""Outbound webhooks: an event fanned out to the endpoints that want it, each delivery signed (Standard
Webhooks) and retried. (Being built: issue 9.)"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.services.events import Event


async def fan_out(session: AsyncSession, event: Event) -> int:
    """Queue one delivery per endpoint that wants this event, in the caller's transaction; answer how many."""
    return 0
