"""Provider intents: what walletsvc writes, and commits, before it calls a provider.

A top-up or a refund is first recorded (with the money it will move held or promised) and committed; only
then is the provider called, with an idempotency key derived from the record's id. A retry of the same
request, a restart or `walletsvc reconcile` finds the record and resumes it under the same key, so the
provider sees one request however often walletsvc asks. When the caller sent an Idempotency-Key the
record's id is derived from it, so even a retry whose first attempt died before answering finds it.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Protocol


class IntentBoundary(Protocol):
    """Where a service commits its intent: the request's transaction (api/intents.py) or a job's."""

    @property
    def seed(self) -> str | None:
        """Stable for every retry of one request (its Idempotency-Key and caller), or None."""
        ...

    async def commit(self) -> None:
        """Commit what the service wrote so far; the session goes on in a new transaction."""
        ...


def intent_id(prefix: str, seed: str | None, *parts: str) -> str:
    """A record id: derived from the seed (the same for every retry of one request), else random."""
    if seed is None:
        return f"{prefix}_{secrets.token_hex(12)}"
    digest = hashlib.sha256("\x1f".join((prefix, seed, *parts)).encode()).hexdigest()
    return f"{prefix}_{digest[:24]}"
