"""Top-ups for the tenant portal, and the browser's return from Stripe Checkout."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import RedirectResponse

from walletsvc.api.deps import (
    AutoTopupPolicyDep,
    Idempotent,
    SessionDep,
    SettingsDep,
    WalletReaderDep,
    WalletWriterDep,
)
from walletsvc.api.intents import IntentDep
from walletsvc.api.routing import ResumableResponse, TransactionalRoute
from walletsvc.api.schemas.common import Page, decode_str_cursor, encode_cursor, problem_responses
from walletsvc.api.schemas.topups import (
    ID_PATTERN,
    RazorpayVerify,
    TopupCreate,
    TopupCreated,
    TopupDetail,
    TopupOut,
    checkout_out,
)
from walletsvc.db.repositories.refunds import RefundRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.domain.errors import Forbidden, InvalidRequest, ProviderUnavailable
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind, TopupStatus
from walletsvc.services.gateways import Gateways
from walletsvc.services.topups import start_topup, stripe_return, verify_razorpay

router = APIRouter(prefix="/v1/topups", tags=["top-ups"], route_class=TransactionalRoute)

TopupIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


async def get_gateways(request: Request) -> Gateways:
    gateways: Gateways = request.app.state.gateways
    return gateways


GatewaysDep = Annotated[Gateways, Depends(get_gateways)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start a top-up: answers the checkout the portal should show",
    description="The provider is chosen by the routing rules; the portal is told the kind of checkout "
    "(`redirect`, `client_secret` or `razorpay_modal`), never the provider's name. Amounts below the "
    "currency's minimum answer 422 `BELOW_MINIMUM`. With an `Idempotency-Key`, a retry resumes the same "
    "top-up (never a second one); an answer with a `client_secret` is never stored, so its retry asks Stripe "
    "again (with the same Stripe idempotency key) rather than replaying a stored secret.",
    responses=problem_responses(400, 403, 404, 409, 503),
    dependencies=[Idempotent],
    response_model=TopupCreated,
)
async def create_topup(
    body: TopupCreate,
    session: SessionDep,
    settings: SettingsDep,
    gateways: GatewaysDep,
    caller: WalletWriterDep,
    intent: IntentDep,
) -> TopupCreated | ResumableResponse:
    if body.provider is not None and not caller.is_admin:
        raise Forbidden("only an admin may choose the payment provider")
    started = await start_topup(
        session,
        gateways,
        settings,
        tenant_id=caller.own_tenant(),
        amount=body.amount,
        actor=caller.actor,
        intent=intent,
        currency=body.currency,
        save_payment_method=body.save_payment_method,
        checkout_kind=CheckoutKind(body.checkout) if body.checkout else None,
        provider_override=ProviderName(body.provider) if body.provider else None,
    )
    created = TopupCreated(**TopupOut.of(started.topup).model_dump(), checkout=checkout_out(started.checkout))
    if started.checkout.kind is CheckoutKind.CLIENT_SECRET:
        # A client secret is for the customer's browser alone: never written into the Idempotency-Key store.
        return ResumableResponse(created.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)
    return created


@router.get("", summary="The caller's top-ups, newest first", responses=problem_responses(403))
async def list_topups(
    session: SessionDep,
    caller: WalletReaderDep,
    status_filter: Annotated[TopupStatus | None, Query(alias="status")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[TopupOut]:
    before = _decode(decode_str_cursor(cursor))
    items, last = await TopupRepository(session).page(
        caller.own_tenant(), status=status_filter, before=before, limit=limit
    )
    return Page[TopupOut](
        data=[TopupOut.of(t) for t in items],
        next_cursor=encode_cursor(f"{last[0].isoformat()}|{last[1]}") if last else None,
    )


def _decode(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    moment, _, topup_id = cursor.partition("|")
    try:
        return datetime.fromisoformat(moment), topup_id
    except ValueError as exc:
        raise InvalidRequest("the cursor is not valid") from exc


@router.get(
    "/stripe/return",
    summary="Where Stripe Checkout sends the browser back: verify, credit, redirect to the portal",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses={
        303: {"description": "To PORTAL_SUCCESS_URL (or PORTAL_CANCEL_URL when the payment failed)"},
        **problem_responses(404, 503, public=True),
    },
)
async def return_from_stripe(
    session: SessionDep,
    settings: SettingsDep,
    gateways: GatewaysDep,
    policy: AutoTopupPolicyDep,
    session_id: Annotated[str, Query(pattern=ID_PATTERN)],
) -> RedirectResponse:
    try:
        topup = await stripe_return(session, gateways, session_id=session_id, policy=policy)
    except ProviderUnavailable:
        # Stripe will tell us by webhook; the portal shows the top-up as pending meanwhile.
        return RedirectResponse(_with_query(settings.portal_success_url, status="pending"), status_code=303)
    target = settings.portal_cancel_url if topup.status is TopupStatus.FAILED else settings.portal_success_url
    return RedirectResponse(
        _with_query(target, topup_id=topup.id, status=topup.status.value), status_code=303
    )


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


@router.get(
    "/{topup_id}",
    summary="A top-up with its status history and refunds",
    responses=problem_responses(403, 404),
)
async def get_topup(topup_id: TopupIdPath, session: SessionDep, caller: WalletReaderDep) -> TopupDetail:
    tenant_id = caller.own_tenant()
    topups = TopupRepository(session)
    topup = await topups.get(tenant_id, topup_id)
    return TopupDetail.build(
        topup,
        await topups.events(tenant_id, topup_id),
        await RefundRepository(session).for_topup(tenant_id, topup_id),
    )


@router.post(
    "/{topup_id}/razorpay/verify",
    summary="Verify the Razorpay checkout's answer and credit the wallet",
    description="Checks `razorpay_signature` (HMAC-SHA256 of `order_id|payment_id`), then asks Razorpay "
    "whether the payment is captured and for how much; credits what Razorpay confirms, exactly once.",
    responses=problem_responses(400, 403, 404, 409, 503),
    dependencies=[Idempotent],
)
async def verify_razorpay_payment(
    topup_id: TopupIdPath,
    body: RazorpayVerify,
    session: SessionDep,
    gateways: GatewaysDep,
    caller: WalletWriterDep,
    policy: AutoTopupPolicyDep,
) -> TopupOut:
    topup = await verify_razorpay(
        session,
        gateways,
        tenant_id=caller.own_tenant(),
        topup_id=topup_id,
        order_id=body.razorpay_order_id,
        payment_id=body.razorpay_payment_id,
        signature=body.razorpay_signature,
        policy=policy,
    )
    return TopupOut.of(topup)
