"""Auto top-up settings (owners write, members read; admins may lock it off) and its attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep, SettingsDep, WalletReaderDep, WalletWriterDep
from walletsvc.api.routing import ResumableResponse, TransactionalRoute
from walletsvc.api.schemas.auto_topup import (
    AdminAutoTopupIn,
    AutoTopupAttemptOut,
    AutoTopupIn,
    AutoTopupOut,
    ConfirmationOut,
)
from walletsvc.api.schemas.common import (
    MoneyOut,
    Page,
    decode_str_cursor,
    encode_cursor,
    problem_responses,
)
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.db.repositories.auto_topups import AutoTopupRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.auto_topup import AutoTopupStatus
from walletsvc.domain.errors import Conflict, InvalidRequest
from walletsvc.providers.stripe_saved_methods import retrieve_client_secret
from walletsvc.services.auto_topup import update_settings, view
from walletsvc.services.gateways import Gateways

router = APIRouter(tags=["auto top-up"], route_class=TransactionalRoute)

AttemptIdPath = Annotated[str, Path(pattern=r"^at_[a-f0-9]{24}$")]
TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN)]

_PUT_DESCRIPTION = (
    "Fields left out keep their value. Below `threshold` (on the available balance, `balance - reserved`) "
    "an auto top-up charges the saved card off-session for `amount` (plus what the wallet owes), or up to "
    "`target_balance`; at most `max_per_day` a day (default 2) and `monthly_cap` a month. Switching it on "
    "while the wallet is below the threshold starts one at once. Refusals: 422 `VALIDATION_FAILED`, "
    "`BELOW_MINIMUM`, `ABOVE_MAXIMUM`, `NO_PAYMENT_METHOD`, `CURRENCY_MISMATCH`; 409 `AUTO_TOPUP_LOCKED` "
    "when an admin has locked it off."
)


@router.get(
    "/v1/auto-topup",
    summary="The caller's auto top-up settings and state",
    responses=problem_responses(403, 404),
)
async def get_auto_topup(session: SessionDep, caller: WalletReaderDep) -> AutoTopupOut:
    return AutoTopupOut.of(await view(session, caller.own_tenant()))


@router.put(
    "/v1/auto-topup",
    summary="Change the caller's auto top-up settings (owners)",
    description=_PUT_DESCRIPTION,
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def put_auto_topup(
    body: AutoTopupIn, session: SessionDep, settings: SettingsDep, caller: WalletWriterDep
) -> AutoTopupOut:
    updated = await update_settings(
        session,
        settings,
        tenant_id=caller.own_tenant(),
        change=body.change(),
        actor=caller.actor,
        admin=False,
    )
    return AutoTopupOut.of(updated)


@router.get(
    "/v1/auto-topup/attempts",
    summary="The caller's auto top-ups, newest first",
    responses=problem_responses(403),
)
async def list_attempts(
    session: SessionDep,
    caller: WalletReaderDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[AutoTopupAttemptOut]:
    before = _decode(decode_str_cursor(cursor))
    attempts = await AutoTopupRepository(session).list_recent(
        caller.own_tenant(), limit=limit + 1, before=before
    )
    page = attempts[:limit]
    more = len(attempts) > limit
    return Page[AutoTopupAttemptOut](
        data=[AutoTopupAttemptOut.of(a) for a in page],
        next_cursor=encode_cursor(page[-1].created_at.isoformat()) if more else None,
    )


def _decode(cursor: str | None) -> datetime | None:
    if cursor is None:
        return None
    try:
        return datetime.fromisoformat(cursor)
    except ValueError as exc:
        raise InvalidRequest("the cursor is not valid") from exc


@router.get(
    "/v1/auto-topup/attempts/{auto_topup_id}",
    summary="One auto top-up",
    responses=problem_responses(403, 404),
)
async def get_attempt(
    auto_topup_id: AttemptIdPath, session: SessionDep, caller: WalletReaderDep
) -> AutoTopupAttemptOut:
    return AutoTopupAttemptOut.of(await AutoTopupRepository(session).get(caller.own_tenant(), auto_topup_id))


@router.post(
    "/v1/auto-topup/attempts/{auto_topup_id}/confirmation",
    summary="What the portal needs to let the customer confirm a 3-D Secure auto top-up",
    description="Only for an auto top-up in `requires_action`: the PaymentIntent's client secret, asked of "
    "Stripe now and never stored (nor kept by the Idempotency-Key store). Confirming it in the page "
    "credits the wallet once, through Stripe's webhook or reconcile.",
    responses=problem_responses(403, 404, 409, 503),
    dependencies=[Idempotent],
    response_model=ConfirmationOut,
)
async def confirm_attempt(
    auto_topup_id: AttemptIdPath, request: Request, session: SessionDep, caller: WalletWriterDep
) -> ResumableResponse:
    attempt = await AutoTopupRepository(session).get(caller.own_tenant(), auto_topup_id)
    if attempt.status is not AutoTopupStatus.REQUIRES_ACTION or attempt.provider_payment_id is None:
        raise Conflict(f"this auto top-up is {attempt.status.value}, not waiting for the customer")
    gateways: Gateways = request.app.state.gateways
    gateway = gateways.stripe_or_refuse()
    secret = await retrieve_client_secret(gateway, attempt.provider_payment_id)
    out = ConfirmationOut(
        auto_topup_id=attempt.id,
        payment_intent_id=attempt.provider_payment_id,
        client_secret=secret,
        publishable_key=gateway.publishable_key,
        amount=MoneyOut.of(attempt.amount, attempt.currency) if attempt.amount is not None else None,
    )
    return ResumableResponse(out.model_dump(mode="json"), status_code=status.HTTP_200_OK)


@router.get(
    "/v1/admin/tenants/{tenant_id}/auto-topup",
    summary="A tenant's auto top-up settings and state (admins)",
    responses=problem_responses(403, 404),
)
async def admin_get_auto_topup(tenant_id: TenantIdPath, session: SessionDep, admin: AdminDep) -> AutoTopupOut:
    await TenantRepository(session).get(tenant_id)
    return AutoTopupOut.of(await view(session, tenant_id))


@router.put(
    "/v1/admin/tenants/{tenant_id}/auto-topup",
    summary="Change a tenant's auto top-up settings, or lock it off (admins)",
    description=_PUT_DESCRIPTION + " `locked: true` keeps it off whatever the owner sets.",
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def admin_put_auto_topup(
    tenant_id: TenantIdPath,
    body: AdminAutoTopupIn,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
) -> AutoTopupOut:
    await TenantRepository(session).get(tenant_id)
    updated = await update_settings(
        session, settings, tenant_id=tenant_id, change=body.admin_change(), actor=admin.actor, admin=True
    )
    return AutoTopupOut.of(updated)
