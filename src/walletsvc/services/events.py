"""The event log: `record_event` in the same transaction as the change, which also queues its dispatch.

The `deliver_event` job dispatches an event once: it queues one delivery per webhook endpoint that wants it
(services/outbound_webhooks.py) and the e-mails it calls for (services/notifications.py), and marks the event
`dispatched`, or `no_endpoints` when nobody wanted it. Each delivery then runs, and retries, on its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
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
# Only a pending event is dispatched, and its row is locked while it is: a job run twice (a retry after a
# kill, two workers) has one effect.
_LOCK_PENDING = text(
    """
    SELECT seq, id, tenant_id, type, payload, created_at, delivery FROM events
     WHERE id = :id AND delivery = 'pending'
       FOR UPDATE
    """
)
_MARK = text(
    """
    UPDATE events SET delivery = :delivery, delivery_runs = delivery_runs + 1, delivered_at = now()
     WHERE id = :id
    """
)
_ONE = text("SELECT seq, id, tenant_id, type, payload, created_at, delivery FROM events WHERE id = :id")


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
# The charge writer's transaction is a raw asyncpg one (services/charging.py): the same two rows, there,
# for any number of events in one statement.
_INSERT_RAW = """
    WITH x AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])
               AS x(id, tenant_id, type, payload, job_payload)
    ), event AS (
        INSERT INTO events (id, tenant_id, type, payload)
        SELECT id, tenant_id, type, payload::jsonb FROM x
    ), job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
        SELECT 0, $6, job_payload, now(), 'queued' FROM x
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
    [event_id] = await record_events_raw(conn, [(type, tenant_id, payload)])
    return event_id


async def record_events_raw(
    conn: asyncpg.Connection, events: Sequence[tuple[EventType, str, dict[str, Any]]]
) -> list[str]:
    """Events (type, tenant, payload) and their dispatch jobs, in order, in one statement inside the
    connection's open transaction (none: no statement); answer their ids."""
    if not events:
        return []
    ids = [new_event_id() for _ in events]
    await conn.execute(
        _INSERT_RAW,
        ids,
        [tenant_id for _, tenant_id, _ in events],
        [type.value for type, _, _ in events],
        [json.dumps(payload) for _, _, payload in events],
        [encode_payload({"event_id": event_id}) for event_id in ids],
        DELIVER_EVENT,
    )
    return ids


async def dispatch_event(session: AsyncSession, event_id: str) -> int | None:
    """The `deliver_event` job's effect, once: queue the event's deliveries and e-mails. Answers how many
    were queued, or None when the event was dispatched before."""
    # Imported here: both import Event from this module.
    from walletsvc.services import notifications, outbound_webhooks

    row = (await session.execute(_LOCK_PENDING, {"id": event_id})).first()
    if row is None:
        return None
    event = Event(*row)
    queued = await outbound_webhooks.fan_out(session, event) + await notifications.fan_out(session, event)
    delivery = Delivery.DISPATCHED if queued else Delivery.NO_ENDPOINTS
    await session.execute(_MARK, {"id": event_id, "delivery": delivery.value})
    return queued


async def get_event(session: AsyncSession, event_id: str) -> Event | None:
    row = (await session.execute(_ONE, {"id": event_id})).first()
    return Event(*row) if row is not None else None


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
