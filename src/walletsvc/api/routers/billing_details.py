"""Billing details: the buyer (legal name, address, tax id) that a tenant's invoices are made out to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep, WalletReaderDep, WalletWriterDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import problem_responses
from walletsvc.api.schemas.documents import BillingDetailsIn, BillingDetailsOut
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.services.billing_details import get_billing_details, set_billing_details

router = APIRouter(tags=["invoices"], route_class=TransactionalRoute)

TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN)]
_PUT_NOTE = (
    "Replaces the details. Documents issued from now on name them; documents already issued keep the "
    "details they were issued with. A tax id that does not fit its country's shape answers 422 "
    "VALIDATION_FAILED naming the field."
)


@router.get(
    "/v1/billing-details",
    summary="The caller's billing details (the buyer on its invoices)",
    responses=problem_responses(403, 404),
)
async def get_my_billing_details(session: SessionDep, caller: WalletReaderDep) -> BillingDetailsOut:
    return BillingDetailsOut.of_details(await get_billing_details(session, caller.own_tenant()))


@router.put(
    "/v1/billing-details",
    summary="Replace the caller's billing details (owner)",
    description=_PUT_NOTE,
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def put_my_billing_details(
    body: BillingDetailsIn, session: SessionDep, caller: WalletWriterDep
) -> BillingDetailsOut:
    details = await set_billing_details(session, caller.own_tenant(), body.party(), actor=caller.actor)
    return BillingDetailsOut.of_details(details)


@router.get(
    "/v1/admin/tenants/{tenant_id}/billing-details",
    summary="A tenant's billing details",
    tags=["admin: tenants"],
    responses=problem_responses(403, 404),
)
async def get_tenant_billing_details(
    tenant_id: TenantIdPath, session: SessionDep, admin: AdminDep
) -> BillingDetailsOut:
    return BillingDetailsOut.of_details(await get_billing_details(session, tenant_id))


@router.put(
    "/v1/admin/tenants/{tenant_id}/billing-details",
    summary="Replace a tenant's billing details",
    description=_PUT_NOTE,
    tags=["admin: tenants"],
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def put_tenant_billing_details(
    tenant_id: TenantIdPath, body: BillingDetailsIn, session: SessionDep, admin: AdminDep
) -> BillingDetailsOut:
    return BillingDetailsOut.of_details(
        await set_billing_details(session, tenant_id, body.party(), actor=admin.actor)
    )
