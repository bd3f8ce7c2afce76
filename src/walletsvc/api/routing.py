"""TransactionalRoute: the one place a request's transaction is committed (or rolled back).

The route handler runs inside a session; when it returns a success the Idempotency-Key's answer is
recorded in the same transaction and the transaction commits *before* the response is sent, so a client
never sees a 2xx for a change that was not durable.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from walletsvc.api.deps import IdempotentReplay
from walletsvc.api.errors import problem_for
from walletsvc.db.engine import Database
from walletsvc.db.repositories.idempotency import Claim, IdempotencyStore, StoredResponse
from walletsvc.domain.errors import Forbidden, Unauthorized, WalletError

# Refusals about the credentials, not the request: a retry with the right credentials must run.
_NOT_AN_ANSWER = (Unauthorized, Forbidden)


def _stored(response: Response) -> StoredResponse:
    return StoredResponse(
        status_code=response.status_code,
        content_type=response.headers.get("content-type", "application/json"),
        body=bytes(response.body),
    )


def _replayed(stored: StoredResponse) -> Response:
    return Response(
        content=stored.body,
        status_code=stored.status_code,
        media_type=stored.content_type,
        headers={"Idempotent-Replayed": "true"},
    )


class SessionSlot:
    """The request's session, opened on first use: a charge whose API key is already verified never
    needs one, and opening one costs the hot path more than the rest of its bookkeeping."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.session: AsyncSession | None = None

    def get(self) -> AsyncSession:
        if self.session is None:
            self.session = self._db.sessionmaker()
        return self.session

    async def rollback(self) -> None:
        if self.session is not None:
            await self.session.rollback()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class TransactionalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def in_transaction(request: Request) -> Response:
            store: IdempotencyStore = request.app.state.idempotency
            slot = SessionSlot(request.app.state.db)
            request.state.session_slot = slot
            try:
                return await _run(handler, request, slot, store)
            finally:
                await slot.close()

        return in_transaction


async def _run(
    handler: Callable[[Request], Coroutine[Any, Any, Response]],
    request: Request,
    slot: SessionSlot,
    store: IdempotencyStore,
) -> Response:
    try:
        response = await handler(request)
    except IdempotentReplay as replay:
        return _replayed(replay.stored)
    except WalletError as exc:
        refusal = problem_for(exc, request)
        claim: Claim | None = getattr(request.state, "idempotency_claim", None)
        if exc.keep_changes:
            # A top-up or refund that reached its provider stays on record (pending, or failed with its
            # reason); the key is freed so that a retry may run.
            await slot.get().commit()
            if claim is not None:
                await store.release(claim)
            return refusal
        await slot.rollback()
        if claim is not None:
            if isinstance(exc, _NOT_AN_ANSWER):
                await store.release(claim)
            else:
                # A business refusal is an answer too: the same request gets the same refusal.
                await store.complete_alone(claim, _stored(refusal))
        return refusal
    except BaseException:
        await slot.rollback()
        claim = getattr(request.state, "idempotency_claim", None)
        if claim is not None:
            await store.release(claim)
        raise
    claim = getattr(request.state, "idempotency_claim", None)
    try:
        if claim is not None and not isinstance(response, StreamingResponse):
            await store.complete(slot.get(), claim, _stored(response))
        session = slot.session
        if session is not None and session.in_transaction():  # nothing read, nothing to commit
            await session.commit()
    except BaseException:
        if claim is not None:
            await store.release(claim)
        raise
    return response
