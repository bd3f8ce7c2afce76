"""Idempotency keys in PostgreSQL.

A key is claimed in its own short committed transaction, so a concurrent request with the same key sees
it at once (409). The response is recorded in the business transaction itself, so a key is completed
if and only if the change it guarded was committed.

A claim carries the `locked_at` it set, and releasing it deletes only that claim, never one another
request made after ours expired. The store's own commits are not the request's effects (request_effects):
a claim freed again leaves nothing behind that would make running the request again unsafe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from walletsvc.db import tables as t
from walletsvc.db.faults import database_unavailable
from walletsvc.domain.idempotency import Outcome, StoredRequest, decide
from walletsvc.request_effects import untracked

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claim:
    scope: str
    key: str
    locked_at: datetime | None = None  # which claim of this key is ours (None: any unfinished one)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    content_type: str
    body: bytes


class IdempotencyStore:
    def __init__(self, engine: AsyncEngine, *, lock_timeout: timedelta) -> None:
        self.engine = engine
        self.lock_timeout = lock_timeout

    async def claim(
        self, *, scope: str, key: str, tenant_id: str | None, method: str, path: str, fingerprint: str
    ) -> Claim | StoredResponse:
        made: Claim | None = None
        with untracked():
            try:
                async with self.engine.begin() as conn:
                    made_or_stored = await self._claim(
                        conn,
                        scope=scope,
                        key=key,
                        tenant_id=tenant_id,
                        method=method,
                        path=path,
                        fingerprint=fingerprint,
                    )
                    if isinstance(made_or_stored, Claim):
                        made = made_or_stored
                return made_or_stored
            except Exception as exc:
                if made is not None and database_unavailable(exc) is not None:
                    # The connection died at COMMIT, so the claim may have been made after all: free it,
                    # or the client's retry would be refused as in progress until the lock expires.
                    await self.release_quietly(made)
                raise

    async def _claim(
        self,
        conn: AsyncConnection,
        *,
        scope: str,
        key: str,
        tenant_id: str | None,
        method: str,
        path: str,
        fingerprint: str,
    ) -> Claim | StoredResponse:
        c = t.idempotency_keys.c
        inserted = (
            await conn.execute(
                insert(t.idempotency_keys)
                .values(
                    scope=scope,
                    key=key,
                    tenant_id=tenant_id,
                    method=method,
                    path=path,
                    fingerprint=fingerprint,
                )
                .on_conflict_do_nothing(index_elements=["scope", "key"])
                .returning(c.locked_at)
            )
        ).one_or_none()
        if inserted is not None:
            return Claim(scope, key, inserted[0])
        row = (
            await conn.execute(
                select(
                    c.fingerprint,
                    c.completed,
                    c.locked_at,
                    c.status_code,
                    c.content_type,
                    c.response_body,
                    func.now(),
                )
                .where(c.scope == scope, c.key == key)
                .with_for_update()
            )
        ).one()
        outcome = decide(
            StoredRequest(fingerprint=row[0], completed=row[1], locked_at=row[2]),
            fingerprint,
            now=row[6],
            lock_timeout=self.lock_timeout,
        )
        if outcome is Outcome.REPLAY:
            return StoredResponse(status_code=row[3], content_type=row[4], body=row[5])
        # The first request died before finishing (its transaction never committed): run it again.
        locked_at = (
            await conn.execute(
                update(t.idempotency_keys)
                .where(c.scope == scope, c.key == key)
                .values(locked_at=func.now())
                .returning(c.locked_at)
            )
        ).scalar_one()
        return Claim(scope, key, locked_at)

    @staticmethod
    async def complete(session: AsyncSession, claim: Claim, response: StoredResponse) -> None:
        """Record the response inside the caller's transaction (the one that made the change)."""
        await session.execute(_complete_stmt(claim, response))

    async def complete_alone(self, claim: Claim, response: StoredResponse) -> None:
        """Record a refusal (a 4xx business error) once the business transaction has rolled back."""
        with untracked():
            async with self.engine.begin() as conn:
                await conn.execute(_complete_stmt(claim, response))

    async def release(self, claim: Claim) -> None:
        """Forget an unfinished key (the request failed unexpectedly) so that a retry may run. A key
        whose change committed is completed, and stays: this is safe after a COMMIT of unknown outcome."""
        c = t.idempotency_keys.c
        ours = [c.scope == claim.scope, c.key == claim.key, ~c.completed]
        if claim.locked_at is not None:
            ours.append(c.locked_at == claim.locked_at)
        with untracked():
            async with self.engine.begin() as conn:
                await conn.execute(delete(t.idempotency_keys).where(*ours))

    async def release_quietly(self, claim: Claim) -> bool:
        """Release, unless the database is unavailable (then the key is freed when its lock expires,
        IDEMPOTENCY_LOCK_SECONDS later). Answers whether the key was released."""
        try:
            await self.release(claim)
        except Exception as exc:
            if database_unavailable(exc) is None:
                raise
            log.warning("could not release an Idempotency-Key; it is freed when its lock expires")
            return False
        return True

    async def purge_older_than(self, age: timedelta) -> int:
        """Forget keys older than `age`; answer how many."""
        c = t.idempotency_keys.c
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(t.idempotency_keys).where(c.created_at < func.now() - age))
            return int(result.rowcount)


def _complete_stmt(claim: Claim, response: StoredResponse):  # type: ignore[no-untyped-def]
    c = t.idempotency_keys.c
    return (
        update(t.idempotency_keys)
        .where(c.scope == claim.scope, c.key == claim.key)
        .values(
            completed=True,
            status_code=response.status_code,
            content_type=response.content_type,
            response_body=response.body,
        )
    )
