"""Billing contacts (who gets the e-mails) and, for admins, the e-mails sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep, WalletReaderDep, WalletWriterDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.billing_contacts import BillingContactsIn, BillingContactsOut, EmailNotificationOut
from walletsvc.api.schemas.common import Page, decode_int_cursor, encode_cursor, problem_responses
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.services.billing_contacts import get_billing_contacts, set_billing_contacts
from walletsvc.services.notifications import list_notifications

router = APIRouter(tags=["billing contacts"], route_class=TransactionalRoute)

TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN)]


@router.get(
    "/v1/billing-contacts",
    summary="The caller's billing contacts (who gets e-mail notifications)",
    responses=problem_responses(403, 404),
)
async def get_my_billing_contacts(session: SessionDep, caller: WalletReaderDep) -> BillingContactsOut:
    return BillingContactsOut.of(await get_billing_contacts(session, caller.own_tenant()))


@router.put(
    "/v1/billing-contacts",
    summary="Replace the caller's billing contacts (owner)",
    description="At most 10 addresses; a bad one answers 422 VALIDATION_FAILED naming its index.",
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def put_my_billing_contacts(
    body: BillingContactsIn, session: SessionDep, caller: WalletWriterDep
) -> BillingContactsOut:
    contacts = await set_billing_contacts(session, caller.own_tenant(), body.emails, actor=caller.actor)
    return BillingContactsOut.of(contacts)


@router.get(
    "/v1/admin/tenants/{tenant_id}/billing-contacts",
    summary="A tenant's billing contacts",
    tags=["admin: tenants"],
    responses=problem_responses(403, 404),
)
async def get_tenant_billing_contacts(
    tenant_id: TenantIdPath, session: SessionDep, admin: AdminDep
) -> BillingContactsOut:
    return BillingContactsOut.of(await get_billing_contacts(session, tenant_id))


@router.put(
    "/v1/admin/tenants/{tenant_id}/billing-contacts",
    summary="Replace a tenant's billing contacts",
    description="At most 10 addresses; a bad one answers 422 VALIDATION_FAILED naming its index.",
    tags=["admin: tenants"],
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def put_tenant_billing_contacts(
    tenant_id: TenantIdPath, body: BillingContactsIn, session: SessionDep, admin: AdminDep
) -> BillingContactsOut:
    return BillingContactsOut.of(
        await set_billing_contacts(session, tenant_id, body.emails, actor=admin.actor)
    )


@router.get(
    "/v1/admin/tenants/{tenant_id}/notifications",
    summary="The e-mails sent (or being sent) to a tenant's billing contacts, newest first",
    tags=["admin: tenants"],
    responses=problem_responses(403, 404),
)
async def list_tenant_notifications(
    tenant_id: TenantIdPath,
    session: SessionDep,
    admin: AdminDep,
    event_id: Annotated[str | None, Query(max_length=64, pattern=r"^evt_[0-9a-f]{1,60}$")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[EmailNotificationOut]:
    items, next_before = await list_notifications(
        session, tenant_id, event_id=event_id, before_id=decode_int_cursor(cursor), limit=limit
    )
    return Page[EmailNotificationOut](
        data=[EmailNotificationOut.of(e) for e in items],
        next_cursor=encode_cursor(next_before) if next_before is not None else None,
    )
