"""What walletsvc forgets on purpose: Idempotency-Key records past their retention."""

from __future__ import annotations

from datetime import timedelta

from walletsvc.db.engine import Database
from walletsvc.db.repositories.idempotency import IdempotencyStore


async def purge_idempotency_keys(db: Database, *, retention: timedelta, lock_timeout: timedelta) -> int:
    """Forget keys older than `retention` (IDEMPOTENCY_RETENTION_HOURS: a retry after that runs afresh);
    answer how many. One statement, its own transaction (the store's)."""
    store = IdempotencyStore(db.engine, lock_timeout=lock_timeout)
    return await store.purge_older_than(retention)
