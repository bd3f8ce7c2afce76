"""Provider webhook events, stored unique on (provider, event id): a repeat changes nothing.

PostgreSQL text and JSONB cannot hold NUL (U+0000), nor an unpaired UTF-16 surrogate (which JSON's
`\\ud800` escapes can produce). Each such character in the event id, the type or anywhere in the payload
(keys included) is stored as the six characters of its JSON escape, `\\u0000`: what was sent stays
readable, and the event is answered as malformed and never applied (services/webhooks.py). The one loss:
such an escape cannot be told from the same six characters sent literally."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t

w = t.webhook_events.c

_UNSTORABLE = re.compile("[\\x00\\ud800-\\udfff]")


def _escape(text: str) -> str:
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def storable(value: Any) -> Any:
    """`value` (a parsed JSON value) with every character PostgreSQL cannot hold escaped."""
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, dict):
        return {_escape(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def is_storable(value: Any) -> bool:
    """True when `value` holds no character PostgreSQL cannot store (`storable` would change nothing)."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is None
    if isinstance(value, dict):
        return all(is_storable(str(k)) and is_storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_storable(v) for v in value)
    return True


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
                    event_id=_escape(event_id),
                    type=_escape(event_type),
                    tenant_id=tenant_id,
                    payload=storable(payload),
                )
                .on_conflict_do_nothing(index_elements=["provider", "event_id"])
                .returning(w.event_id)
            )
        ).one_or_none()
        return inserted is not None

    async def set_outcome(self, provider: str, event_id: str, outcome: str, *, tenant_id: str | None) -> None:
        await self.session.execute(
            update(t.webhook_events)
            .where(w.provider == provider, w.event_id == _escape(event_id))
            .values(outcome=_escape(outcome), tenant_id=tenant_id)
        )
