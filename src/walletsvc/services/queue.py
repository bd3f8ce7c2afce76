"""Jobs for `walletsvc worker`, enqueued in the caller's transaction: a rolled-back change leaves no job,
and a committed one loses none. The row is pgqueuer's (migration 0005, pgqueuer 1.6.0); its trigger's
NOTIFY wakes the workers, and PostgreSQL delivers it at commit."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# What pgqueuer's own enqueue writes: the job, queued, and its first log line.
_ENQUEUE = text(
    """
    WITH job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
        VALUES (0, :entrypoint, :payload, now(), 'queued')
        RETURNING id, entrypoint, priority
    ), logged AS (
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job
    )
    SELECT id FROM job
    """
)


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


async def enqueue(session: AsyncSession, entrypoint: str, payload: dict[str, Any]) -> int:
    """Queue a job in the session's transaction; answer its id. Flushes nothing else."""
    result = await session.execute(_ENQUEUE, {"entrypoint": entrypoint, "payload": encode_payload(payload)})
    return int(result.scalar_one())
