"""TransactionalRoute: the one place a request's transaction is committed (or rolled back).

The route handler runs inside a session; when it returns a success the Idempotency-Key's answer is
recorded in the same transaction and the transaction commits *before* the response is sent, so a client
never sees a 2xx for a change that was not durable.

A request whose database connection is lost before its COMMIT is sent is run once more on a fresh
connection when nothing it did survives elsewhere (see `_lost`); otherwise, and when the connection dies
during the COMMIT itself, it answers 503 DATABASE_UNAVAILABLE with its Idempotency-Key freed unless the
change committed, so that the client's retry with the same key is answered rightly either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from walletsvc.api.deps import IdempotentReplay
from walletsvc.api.errors import problem_for
from walletsvc.db.engine import Database
from walletsvc.db.faults import database_unavailable
from walletsvc.db.repositories.idempotency import Claim, IdempotencyStore, StoredResponse
from walletsvc.domain.errors import (
    ConnectionLost,
    DatabaseUnavailable,
    Forbidden,
    IdempotencyKeyReused,
    ProviderUnavailable,
    Unauthorized,
    WalletError,
)
from walletsvc.request_effects import RequestEffects, tracking

log = logging.getLogger(__name__)

# Refusals about the credentials, not the request: a retry with the right credentials must run. A key
# found reused by the provider intent it names (its first claim was freed after a 503): the key still
# belongs to that first request, whose retry must be able to resume it. And a provider that could not be
# reached (503 PROVIDER_UNAVAILABLE, "retry later"): kept as the key's answer, every retry with the key
# would replay that 503 instead of asking the provider again.
_NOT_AN_ANSWER = (Unauthorized, Forbidden, IdempotencyKeyReused, ProviderUnavailable)


class ShownOnceResponse(JSONResponse):
    """An answer carrying a secret that is shown once (a new API key). The Idempotency-Key store keeps
    `replay_content` instead, so the secret is never written down and a replay answers without it."""

    def __init__(self, content: Any, *, replay_content: Any, status_code: int = 200) -> None:
        super().__init__(content, status_code=status_code, headers={"Cache-Control": "no-store"})
        self.replay_body = self.render(replay_content)


class ResumableResponse(JSONResponse):
    """An answer carrying a secret the client needs again should it retry (a Stripe client secret). It is
    never stored: once the change is committed the Idempotency-Key is freed, and a retry with it runs the
    request again, which resumes the same provider intent and gets the same answer from the provider."""

    def __init__(self, content: Any, *, status_code: int = 200) -> None:
        super().__init__(content, status_code=status_code, headers={"Cache-Control": "no-store"})


def _stored(response: Response) -> StoredResponse:
    body = response.replay_body if isinstance(response, ShownOnceResponse) else bytes(response.body)
    return StoredResponse(
        status_code=response.status_code,
        content_type=response.headers.get("content-type", "application/json"),
        body=body,
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
        """Roll back. A transaction whose connection was lost is rolled back already: the server ends
        it with the connection (and the engine has invalidated that connection)."""
        if self.session is not None:
            try:
                await self.session.rollback()
            except Exception as exc:
                if database_unavailable(exc) is None:
                    raise

    async def close(self) -> None:
        if self.session is not None:
            try:
                await self.session.close()
            except Exception as exc:
                if database_unavailable(exc) is None:
                    raise


class _RunAgain(Exception):
    """The attempt lost its database connection, and running the request again is safe."""


class TransactionalRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def attempt(request: Request, *, last: bool) -> Response:
            store: IdempotencyStore = request.app.state.idempotency
            slot = SessionSlot(request.app.state.db)
            request.state.session_slot = slot
            try:
                with tracking() as effects:
                    return await _run(handler, request, slot, store, effects, may_run_again=not last)
            finally:
                await slot.close()

        async def in_transaction(request: Request) -> Response:
            try:
                return await attempt(request, last=False)
            except _RunAgain:
                log.warning("database connection lost; running the request again on a fresh connection")
                return await attempt(request, last=True)

        return in_transaction


def _claim_of(request: Request) -> Claim | None:
    claim: Claim | None = getattr(request.state, "idempotency_claim", None)
    return claim


async def _release(request: Request, store: IdempotencyStore) -> bool:
    """Free the request's Idempotency-Key, if it claimed one; answer whether it is free."""
    claim = _claim_of(request)
    if claim is None:
        return True
    request.state.idempotency_claim = None
    return await store.release_quietly(claim)


async def _run(
    handler: Callable[[Request], Coroutine[Any, Any, Response]],
    request: Request,
    slot: SessionSlot,
    store: IdempotencyStore,
    effects: RequestEffects,
    *,
    may_run_again: bool,
) -> Response:
    try:
        response = await handler(request)
    except IdempotentReplay as replay:
        return _replayed(replay.stored)
    except Exception as exc:
        lost = database_unavailable(exc)
        if lost is not None:
            return await _lost(request, slot, store, lost, may_run_again and effects.only_in_its_transaction)
        if isinstance(exc, WalletError):
            return await _refused(exc, request, slot, store)
        await slot.rollback()
        await _release(request, store)
        raise
    except BaseException:
        await slot.rollback()
        await _release(request, store)
        raise
    safe = may_run_again and effects.only_in_its_transaction
    return await _commit(response, request, slot, store, effects, safe=safe)


async def _lost(
    request: Request, slot: SessionSlot, store: IdempotencyStore, lost: DatabaseUnavailable, safe: bool
) -> Response:
    """The connection was lost before the request's COMMIT was sent: everything it did in its
    transaction is rolled back. `safe` says it did nothing anywhere else."""
    await slot.rollback()
    released = await _release(request, store)
    if safe and released and isinstance(lost, ConnectionLost) and not lost.retried:
        # Running it again is safe: nothing of this attempt survives (its transaction is rolled back,
        # its Idempotency-Key freed, to be claimed again), and nothing left the database (no provider
        # was called, nothing was committed on its own, see request_effects). The one commit made
        # apart, the charge writer's, is safe too: a charge is unique on (tenant, kind, reference_id),
        # so the second attempt finds it and answers it as the first charge.
        raise _RunAgain
    return problem_for(lost, request)


async def _refused(
    exc: WalletError, request: Request, slot: SessionSlot, store: IdempotencyStore
) -> Response:
    refusal = problem_for(exc, request)
    claim = _claim_of(request)
    if exc.keep_changes:
        # A top-up or refund that reached its provider stays on record (pending, or failed with its
        # reason); the key is freed so that a retry may run.
        try:
            await slot.get().commit()
        except Exception as fault:
            lost = database_unavailable(fault)
            await _release(request, store)
            if lost is None:
                raise
            # Whether the record was kept is unknown; the retry (same key) resumes the provider intent.
            return problem_for(lost, request)
        await _release(request, store)
        return refusal
    await slot.rollback()
    if claim is not None:
        if isinstance(exc, _NOT_AN_ANSWER):
            await _release(request, store)
        else:
            # A business refusal is an answer too: the same request gets the same refusal.
            try:
                await store.complete_alone(claim, _stored(refusal))
            except Exception as fault:
                if database_unavailable(fault) is None:
                    raise
                # The refusal stands (it changed nothing); the key is freed so that a retry may ask again.
                await _release(request, store)
    return refusal


async def _commit(
    response: Response,
    request: Request,
    slot: SessionSlot,
    store: IdempotencyStore,
    effects: RequestEffects,
    *,
    safe: bool,
) -> Response:
    claim = _claim_of(request)
    try:
        if claim is not None and not isinstance(response, StreamingResponse | ResumableResponse):
            await store.complete(slot.get(), claim, _stored(response))
        session = slot.session
        if session is None or not session.in_transaction():  # nothing read, nothing to commit
            # A resumable answer whose service committed its own work (an intent) frees its key here too,
            # or a retry would wait for the claim to run out instead of resuming at once.
            return await _answered(response, request, store)
        await session.flush()  # so that every write is counted before the COMMIT (none: no round trip)
    except Exception as exc:
        lost = database_unavailable(exc)
        if lost is None:
            await _release(request, store)
            raise
        return await _lost(request, slot, store, lost, safe)
    except BaseException:
        await _release(request, store)
        raise
    wrote = effects.uncommitted_writes > 0
    try:
        await session.commit()
    except Exception as exc:
        lost = database_unavailable(exc)
        if lost is None:
            await _release(request, store)
            raise
        if not wrote:
            # A transaction that only read has nothing to make durable: what it read is the answer.
            return await _answered(response, request, store)
        if not lost.reached_server:  # the COMMIT never left this process: nothing was committed
            return await _lost(request, slot, store, lost, safe)
        # The connection died during the COMMIT: the change may or may not be durable. release() deletes
        # only an unfinished key: if the COMMIT did happen, the key is completed with this answer and
        # stays, and a retry with the same key replays it; if not, the retry runs afresh.
        await _release(request, store)
        return problem_for(
            ConnectionLost(
                "the database connection was lost while committing, so whether the change was made is "
                "unknown; retry with the same Idempotency-Key",
                retried=True,
            ),
            request,
        )
    except BaseException:
        await _release(request, store)
        raise
    return await _answered(response, request, store)


async def _answered(response: Response, request: Request, store: IdempotencyStore) -> Response:
    """A committed answer. A resumable one is never stored: its Idempotency-Key is freed, so a retry runs the
    request again and resumes the same provider intent (ResumableResponse)."""
    if isinstance(response, ResumableResponse):
        await _release(request, store)
    return response
