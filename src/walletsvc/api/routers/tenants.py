"""Admin: tenants, their wallets, and manual adjustments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, status

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep, SettingsDep
from walletsvc.api.metrics import LEDGER_ENTRIES
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.charging import TenantPatch
from walletsvc.api.schemas.common import Page, decode_str_cursor, encode_cursor, problem_responses
from walletsvc.api.schemas.wallets import (
    TENANT_ID_PATTERN,
    AdjustmentCreate,
    AdjustmentOut,
    TenantCreate,
    TenantOut,
    TransactionOut,
    WalletOut,
)
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.tenants import ProviderName
from walletsvc.services.adjustments import adjust_balance
from walletsvc.services.tenants import KEEP, TenantDirectory, change_tenant, open_tenant

router = APIRouter(prefix="/v1/admin/tenants", tags=["admin: tenants"], route_class=TransactionalRoute)

TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Open a tenant and its wallet",
    responses=problem_responses(403, 409),
    dependencies=[Idempotent],
)
async def create_tenant(
    body: TenantCreate, session: SessionDep, settings: SettingsDep, admin: AdminDep
) -> TenantOut:
    await open_tenant(
        session,
        tenant_id=body.id,
        name=body.name,
        country=body.country,
        currency=body.currency,
        data_residency_region=body.data_residency_region,
        payments_provider=ProviderName(body.payments_provider) if body.payments_provider else None,
        low_balance_threshold=body.low_balance_threshold,
        default_thresholds=settings.low_balance_thresholds,
    )
    tenant, wallet = await TenantDirectory(session).get(body.id)
    return TenantOut.of(tenant, wallet)


@router.get("", summary="List tenants", responses=problem_responses(403))
async def list_tenants(
    session: SessionDep,
    admin: AdminDep,
    flagged: Annotated[bool | None, Query(description="Only tenants whose account is flagged")] = None,
    low_balance: Annotated[
        bool | None, Query(description="Only tenants whose available balance is below their threshold")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[TenantOut]:
    items, last = await TenantDirectory(session).list(
        flagged=flagged, low_balance=low_balance, after_id=decode_str_cursor(cursor), limit=limit
    )
    return Page[TenantOut](
        data=[TenantOut.of(tenant, wallet) for tenant, wallet in items],
        next_cursor=encode_cursor(last) if last is not None else None,
    )


@router.get("/{tenant_id}", summary="Read a tenant", responses=problem_responses(403, 404))
async def get_tenant(tenant_id: TenantIdPath, session: SessionDep, admin: AdminDep) -> TenantOut:
    tenant, wallet = await TenantDirectory(session).get(tenant_id)
    return TenantOut.of(tenant, wallet)


@router.get("/{tenant_id}/wallet", summary="Read any tenant's wallet", responses=problem_responses(403, 404))
async def get_tenant_wallet(tenant_id: TenantIdPath, session: SessionDep, admin: AdminDep) -> WalletOut:
    wallets = WalletRepository(session)
    return WalletOut.of(await wallets.get(tenant_id), await wallets.auto_topup(tenant_id))


@router.post(
    "/{tenant_id}/adjustments",
    status_code=status.HTTP_201_CREATED,
    summary="Credit or debit a wallet by hand, with a reason",
    description="A debit that would take the balance below zero answers 402 unless `allow_negative` is set.",
    responses=problem_responses(402, 403, 404, 409),
    dependencies=[Idempotent],
)
async def create_adjustment(
    tenant_id: TenantIdPath, body: AdjustmentCreate, session: SessionDep, admin: AdminDep
) -> AdjustmentOut:
    wallet, entry = await adjust_balance(
        session,
        tenant_id,
        body.amount,
        reason=body.reason,
        actor=admin.actor,
        currency=body.currency,
        allow_negative=body.allow_negative,
    )
    LEDGER_ENTRIES.labels(entry.type.value).inc()
    auto_topup = await WalletRepository(session).auto_topup(tenant_id)
    return AdjustmentOut(transaction=TransactionOut.of(entry), wallet=WalletOut.of(wallet, auto_topup))


@router.patch(
    "/{tenant_id}",
    summary="Change a tenant's limits, low-balance threshold or payment provider",
    description="Only the fields sent change; `null` lifts a limit (or returns the provider to the "
    "geography default).",
    responses=problem_responses(403, 404),
    dependencies=[Idempotent],
)
async def patch_tenant(
    tenant_id: TenantIdPath,
    body: Annotated[TenantPatch, Body(default_factory=TenantPatch)],
    session: SessionDep,
    admin: AdminDep,
) -> TenantOut:
    changes = body.model_dump(exclude_unset=True)
    provider = changes.pop("payments_provider", KEEP)
    await change_tenant(
        session,
        tenant_id,
        limits=changes,
        payments_provider=ProviderName(provider) if isinstance(provider, str) else provider,
    )
    tenant, wallet = await TenantDirectory(session).get(tenant_id)
    return TenantOut.of(tenant, wallet)
