"""Telephony: authorize a call before dialling, charge usage at hangup (one record or a batch), and
admins refund charges."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response, status

from walletsvc.api import telephony
from walletsvc.api.deps import (
    AdminDep,
    Idempotent,
    SessionDep,
    SettingsDep,
    TelephonyCallerDep,
    UsageWriterDep,
)
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.charging import (
    REFERENCE_PATTERN,
    AuthorizeIn,
    AuthorizeOut,
    ChargeOut,
    ChargeRefundIn,
    ChargeRefundOut,
    UsageBatchIn,
    UsageBatchOut,
    UsageDocument,
)
from walletsvc.api.schemas.common import MoneyOut, problem_responses
from walletsvc.services.calls import authorize
from walletsvc.services.charge_refunds import refund_charge

router = APIRouter(tags=["usage"], route_class=TransactionalRoute)


@router.post(
    "/v1/calls/{call_id}/authorize",
    summary="Before dialling: may this call start, for how long; places a hold",
    description="Answers `allowed` and `max_seconds` (how long the call may run on the available balance and "
    "the remaining quota at the plan's rate) and holds the expected cost. Asking again for the same call "
    "answers the same hold. The hangup charge (`POST /v1/usage`, kind `call`, reference_id = call_id) "
    "settles it; a hold never settled expires after HOLD_TTL_SECONDS.",
    responses=problem_responses(403, 404, 413, 415),
    dependencies=[Idempotent],
)
async def authorize_call(
    call_id: Annotated[str, Path(pattern=REFERENCE_PATTERN)],
    session: SessionDep,
    settings: SettingsDep,
    caller: UsageWriterDep,
    # Every field is optional, so no body at all means the same as `{}`.
    body: Annotated[AuthorizeIn, Body(default_factory=AuthorizeIn)],
) -> AuthorizeOut:
    result = await authorize(
        session,
        settings,
        tenant_id=caller.tenant_for(body.tenant_id),
        call_id=call_id,
        requested_max_seconds=body.max_duration_seconds,
        actor=caller.actor,
    )
    d = result.decision
    return AuthorizeOut(
        call_id=call_id,
        tenant_id=result.tenant_id,
        allowed=d.allowed,
        max_seconds=d.max_seconds,
        hold=MoneyOut.of(d.hold.amount, d.hold.currency) if d.allowed else None,
        expires_at=result.expires_at,
        reason=d.reason,
        code=d.code,
        available=MoneyOut.of(result.available_after, d.hold.currency),
    )


@router.post(
    "/v1/usage",
    status_code=status.HTTP_201_CREATED,
    response_model=ChargeOut,
    summary="Charge usage: a call at hangup, or SMS, email, fax pages, file transfers",
    description="Idempotent on (tenant, kind, reference_id): a retry answers the first charge "
    "(`replayed: true`) and never charges twice. Quota first, then the wallet. When the wallet cannot pay "
    "it all, it pays what it can, the rest is recorded as owed, the tenant is flagged, and the answer is "
    "402 INSUFFICIENT_FUNDS with `charge_id`, `charged` and `owed`; the next top-up pays what is owed.",
    responses={
        200: {
            "model": ChargeOut,
            "description": "A retry: the first charge (`replayed: true`), nothing charged again",
        },
        **problem_responses(402, 403, 404, 413, 415),
    },
)
async def charge_usage(
    # Validated by telephony.usage_of, as the lean path (api/fast_usage.py) validates it.
    body: Annotated[UsageDocument, Body()],
    request: Request,
    caller: TelephonyCallerDep,
) -> Response:
    return await telephony.charge(request.app.state.charge_writer, telephony.usage_of(body), caller)


@router.post(
    "/v1/usage/batch",
    summary="Charge up to 1,000 usage records; each is answered on its own",
    description="The answer lists one result per record, in order, with the status that record alone "
    "would have had (201 charged, 200 replayed, 402 owed, 404, 422) and its charge or problem.",
    response_model=UsageBatchOut,
    responses=problem_responses(403, 413, 415),
)
async def charge_usage_batch(body: UsageBatchIn, request: Request, caller: TelephonyCallerDep) -> Response:
    return await telephony.charge_batch(request, request.app.state.charge_writer, body.records, caller)


@router.post(
    "/v1/admin/charges/{charge_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    summary="Refund a usage charge, whole or in part",
    description="What was owed is forgiven first, the rest is credited back to the wallet; quota the "
    "charge used comes back to the current period. Never more than was charged.",
    tags=["admin: usage"],
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def refund_usage_charge(
    charge_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    body: ChargeRefundIn,
    session: SessionDep,
    admin: AdminDep,
) -> ChargeRefundOut:
    refund = await refund_charge(
        session, charge_id, amount=body.amount, reason=body.reason.strip(), actor=admin.actor
    )
    c = refund.amount.currency
    return ChargeRefundOut(
        id=refund.id,
        charge_id=str(charge_id),
        amount=MoneyOut.of(refund.amount.amount, c),
        to_wallet=MoneyOut.of(refund.to_wallet, c),
        forgiven=MoneyOut.of(refund.forgiven, c),
        quota_seconds=refund.quota_seconds,
        reason=refund.reason,
        created_by=refund.created_by,
        created_at=refund.created_at,
        charge=ChargeOut.of(refund.charge),
    )
