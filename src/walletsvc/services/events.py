"""The event log: `record_event` in the same transaction as the change, which also queues its delivery.

Delivery to webhook endpoints is not built yet: the `deliver_event` job marks an event `no_endpoints`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.domain.events import Delivery, EventType
from walletsvc.services.queue import encode_payload, enqueue

DELIVER_EVENT = "deliver_event"

_INSERT = text(
    "INSERT INTO events (id, tenant_id, type, payload) VALUES (:id, :tenant_id, :type, CAST(:payload AS jsonb))"
)
# Only a pending event moves, so a job run twice (a retry after a kill, two workers) has one effect.
_MARK = text(
    """
    UPDATE events SET delivery = :delivery, delivery_runs = delivery_runs + 1, delivered_at = now()
     WHERE id = :id AND delivery = 'pending'
    """
)


_PAGE = text(
    """
    SELECT seq, id, tenant_id, type, payload, created_at, delivery FROM events
     WHERE (CAST(:tenant_id AS text) IS NULL OR tenant_id = CAST(:tenant_id AS text))
       AND (CAST(:type AS text) IS NULL OR type = CAST(:type AS text))
       AND (CAST(:before AS bigint) IS NULL OR seq < CAST(:before AS bigint))
     ORDER BY seq DESC
     LIMIT :limit
    """
)
# The charge writer's transaction is a raw asyncpg one (services/charging.py): the same two rows, there.
_INSERT_RAW = """
    WITH event AS (
        INSERT INTO events (id, tenant_id, type, payload) VALUES ($1, $2, $3, $4::jsonb)
    ), job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
        VALUES (0, $5, $6, now(), 'queued')
        RETURNING id, entrypoint, priority
    )
    INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
    SELECT id, 'queued', entrypoint, priority FROM job
"""


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    id: str
    tenant_id: str
    type: str
    payload: dict[str, Any]
    created_at: datetime
    delivery: str


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


async def record_event(
    session: AsyncSession, type: EventType, tenant_id: str, payload: dict[str, Any]
) -> str:
    """Record an event and queue its delivery, in the caller's transaction; answer its id."""
    event_id = new_event_id()
    await session.execute(
        _INSERT,
        {"id": event_id, "tenant_id": tenant_id, "type": type.value, "payload": json.dumps(payload)},
    )
    await enqueue(session, DELIVER_EVENT, {"event_id": event_id})
    return event_id


async def record_event_raw(
    conn: asyncpg.Connection, type: EventType, tenant_id: str, payload: dict[str, Any]
) -> str:
    """record_event on an asyncpg connection, inside its open transaction."""
    event_id = new_event_id()
    await conn.execute(
        _INSERT_RAW,
        event_id,
        tenant_id,
        type.value,
        json.dumps(payload),
        DELIVER_EVENT,
        encode_payload({"event_id": event_id}),
    )
    return event_id


async def deliver_event(session: AsyncSession, event_id: str) -> bool:
    """The delivery job's effect, once: there are no webhook endpoints yet. Answers whether it moved."""
    result = await session.execute(_MARK, {"id": event_id, "delivery": Delivery.NO_ENDPOINTS.value})
    return bool(getattr(result, "rowcount", 0))


async def list_events(
    session: AsyncSession,
    *,
    tenant_id: str | None,
    type: EventType | None,
    before_seq: int | None,
    limit: int,
) -> tuple[list[Event], int | None]:
    """Newest first; answers a page and the seq to continue before (None on the last page)."""
    params: dict[str, Any] = {
        "tenant_id": tenant_id,
        "type": type.value if type is not None else None,
        "before": before_seq,
        "limit": limit + 1,
    }
    rows = (await session.execute(_PAGE, params)).all()
    events = [Event(*row) for row in rows[:limit]]
    return events, (events[-1].seq if len(rows) > limit else None)
