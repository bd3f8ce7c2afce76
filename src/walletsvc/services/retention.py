"""What walletsvc forgets on purpose: Idempotency-Key records past their retention."""

from __future__ import annotations

from datetime import timedelta

from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.db.repositories.idempotency import IdempotencyStore


async def purge_idempotency_keys(db: Database, settings: Settings) -> int:
    """Forget keys older than IDEMPOTENCY_RETENTION_HOURS (a retry after that runs afresh); answer how
    many. One statement, its own transaction (the store's)."""
    store = IdempotencyStore(db.engine, lock_timeout=timedelta(seconds=settings.idempotency_lock_seconds))
    return await store.purge_older_than(timedelta(hours=settings.idempotency_retention_hours))
