"""Admin: API keys for telephony backends and platform services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep
from walletsvc.api.routing import ShownOnceResponse, TransactionalRoute
from walletsvc.api.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from walletsvc.api.schemas.common import problem_responses
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.db.repositories.api_keys import ApiKeyRepository
from walletsvc.services.auth import create_api_key, revoke_api_key

router = APIRouter(prefix="/v1/admin/api-keys", tags=["admin: api keys"], route_class=TransactionalRoute)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    summary="Create an API key (the key is shown once)",
    description="The answer carries the key; it is never stored. A retry with the same Idempotency-Key "
    "answers the same key record with `key: null`: the secret cannot be shown twice.",
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def create_key(body: ApiKeyCreate, session: SessionDep, admin: AdminDep) -> ShownOnceResponse:
    new = await create_api_key(
        session,
        scopes=frozenset(body.scopes),
        tenant_id=body.tenant_id,
        name=body.name,
        created_by=admin.actor,
    )
    created = ApiKeyCreated(**ApiKeyOut.of(new.record).model_dump(), key=new.key)
    return ShownOnceResponse(
        created.model_dump(mode="json"),
        replay_content=created.without_key().model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
    )


@router.get("", summary="List API keys (never their secrets)", responses=problem_responses(403))
async def list_keys(
    session: SessionDep,
    admin: AdminDep,
    tenant_id: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN)] = None,
) -> list[ApiKeyOut]:
    return [ApiKeyOut.of(r) for r in await ApiKeyRepository(session).list(tenant_id=tenant_id)]


@router.delete(
    "/{key_id}",
    summary="Revoke an API key",
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def revoke_key(
    key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")],
    request: Request,
    session: SessionDep,
    admin: AdminDep,
) -> ApiKeyOut:
    revoked = ApiKeyOut.of(await revoke_api_key(session, key_id))
    request.app.state.authenticator.forget(key_id)
    return revoked
