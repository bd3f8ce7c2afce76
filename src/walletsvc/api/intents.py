"""The request side of a provider intent: its seed is the request's Idempotency-Key, and committing it
commits the request's own transaction early (TransactionalRoute still commits the rest at the end)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from walletsvc.api.routing import SessionSlot
from walletsvc.db.repositories.idempotency import Claim


class RequestIntent:
    def __init__(self, slot: SessionSlot, claim: Claim | None) -> None:
        self._slot = slot
        self._seed = None if claim is None else f"{claim.scope}\x1f{claim.key}"

    @property
    def seed(self) -> str | None:
        return self._seed

    async def commit(self) -> None:
        # The intent is durable before any provider hears of it; the request goes on in a new transaction.
        await self._slot.get().commit()


async def get_intent(request: Request) -> RequestIntent:
    return RequestIntent(request.state.session_slot, getattr(request.state, "idempotency_claim", None))


IntentDep = Annotated[RequestIntent, Depends(get_intent)]
