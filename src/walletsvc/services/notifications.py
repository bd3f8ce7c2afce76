"""E-mail notifications to a tenant's billing contacts, sent by the worker over SMTP. (Being built: issue 9.)"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.services.events import Event


async def fan_out(session: AsyncSession, event: Event) -> int:
    """Queue the e-mails this event calls for, in the caller's transaction; answer how many."""
    return 0
