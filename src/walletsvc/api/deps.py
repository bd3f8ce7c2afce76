"""Request dependencies: the session, the settings, who is calling, and what they may do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.api.telephony import usage_caller
from walletsvc.config import Settings
from walletsvc.db.repositories.idempotency import IdempotencyStore, StoredResponse
from walletsvc.domain import idempotency
from walletsvc.domain.access import Principal, Scope
from walletsvc.domain.auto_topup import AutoTopupPolicy
from walletsvc.domain.errors import Unauthorized
from walletsvc.services.auth import Authenticator


# Dependencies are `async def` even when they await nothing: FastAPI runs a plain `def` dependency in a
# thread pool, a thread hop per request that the hot path cannot afford.
async def get_session(request: Request) -> AsyncSession:
    """The request's session, opened and committed by TransactionalRoute."""
    session: AsyncSession = request.state.session_slot.get()
    return session


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_auto_topup_policy(request: Request) -> AutoTopupPolicy:
    """Built once from the settings in create_app: what a decline reported to this process does."""
    policy: AutoTopupPolicy = request.app.state.auto_topup_policy
    return policy


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AutoTopupPolicyDep = Annotated[AutoTopupPolicy, Depends(get_auto_topup_policy)]

# Read by every route's BearerDep and by the lean usage path (api/fast_usage.py) alike.
bearer_scheme = HTTPBearer(
    auto_error=False, description="A portal JWT, or an API key (`wsk_...`) made by `walletsvc keys create`"
)


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a retry safe: the same key with the same body returns the first answer",
    ),
]


async def _authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    if credentials is None or not credentials.credentials:
        raise Unauthorized("send `Authorization: Bearer <token or API key>`")
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(request.state.session_slot.get(), credentials.credentials)
    request.state.principal = principal
    return principal


async def get_principal(request: Request, credentials: BearerDep) -> Principal:
    return await _authenticate(request, credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def requires(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    check.__name__ = f"requires_{scope.name.lower()}"
    return check


AdminDep = Annotated[Principal, Depends(requires(Scope.ADMIN))]
WalletReaderDep = Annotated[Principal, Depends(requires(Scope.WALLET_READ))]
WalletWriterDep = Annotated[Principal, Depends(requires(Scope.WALLET_WRITE))]
UsageWriterDep = Annotated[Principal, Depends(requires(Scope.USAGE_WRITE))]


class IdempotentReplay(Exception):
    """The request's Idempotency-Key already has an answer: send that one."""

    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("idempotent replay")
        self.stored = stored


async def idempotency_key(
    request: Request, principal: PrincipalDep, key: IdempotencyKeyHeader = None
) -> None:
    if key is not None:
        await _claim(request, principal, key)


async def _claim(request: Request, principal: Principal, key: str) -> None:
    idempotency.check_key(key)
    body = await request.body()
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    store: IdempotencyStore = request.app.state.idempotency
    result = await store.claim(
        scope=f"{principal.actor}@{principal.tenant_id or '*'}",
        key=key,
        tenant_id=principal.tenant_id,
        method=request.method,
        path=target,
        fingerprint=idempotency.fingerprint(request.method, target, body),
    )
    if isinstance(result, StoredResponse):
        raise IdempotentReplay(result)
    request.state.idempotency_claim = result


Idempotent = Depends(idempotency_key)


async def telephony_caller(
    request: Request, credentials: BearerDep, key: IdempotencyKeyHeader = None
) -> Principal:
    """The usage routes' one dependency: the caller as the lean path knows it (telephony.usage_caller),
    then the Idempotency-Key claimed if one was sent. (PrincipalDep + requires + Idempotent in one call:
    every dependency FastAPI resolves costs the telephony path time on every charge.)"""
    principal = await usage_caller(request, credentials)
    if key is not None:
        await _claim(request, principal, key)
    return principal


TelephonyCallerDep = Annotated[Principal, Depends(telephony_caller)]
