"""Provider webhook events, stored unique on (provider, event id): a repeat changes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t

w = t.webhook_events.c


class WebhookEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self, *, provider: str, event_id: str, event_type: str, tenant_id: str | None, payload: dict[str, Any]
    ) -> bool:
        """True when the event is new. A concurrent delivery of the same event waits on the unique index
        until the first commits, then sees the conflict: only one delivery is ever handled."""
        inserted = (
            await self.session.execute(
                insert(t.webhook_events)
                .values(
                    provider=provider,
                    event_id=event_id,
                    type=event_type,
                    tenant_id=tenant_id,
                    payload=payload,
                )
                .on_conflict_do_nothing(index_elements=["provider", "event_id"])
                .returning(w.event_id)
            )
        ).one_or_none()
        return inserted is not None

    async def set_outcome(self, provider: str, event_id: str, outcome: str, *, tenant_id: str | None) -> None:
        await self.session.execute(
            update(t.webhook_events)
            .where(w.provider == provider, w.event_id == event_id)
            .values(outcome=outcome, tenant_id=tenant_id)
        )
