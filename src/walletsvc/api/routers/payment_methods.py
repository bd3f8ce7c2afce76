"""Saved payment methods: list (brand, last 4, expiry only; a mandate's limit and state), save one
(a card through Stripe Elements, or for Razorpay tenants a recurring mandate through Razorpay Checkout),
choose the default for auto top-up, detach."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from walletsvc.api.deps import Idempotent, SessionDep, SettingsDep, WalletReaderDep, WalletWriterDep
from walletsvc.api.intents import IntentDep
from walletsvc.api.routing import ResumableResponse, TransactionalRoute
from walletsvc.api.schemas.auto_topup import (
    PAYMENT_METHOD_ID_PATTERN,
    MandateSetupIn,
    MandateSetupOut,
    PaymentMethodList,
    PaymentMethodOut,
    SetupIntentOut,
)
from walletsvc.api.schemas.common import MoneyOut, problem_responses
from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.tenants import ProviderName
from walletsvc.services.gateways import Gateways
from walletsvc.services.payment_methods import (
    detach,
    list_methods,
    set_default,
    start_setup,
    tenant_provider,
)
from walletsvc.services.razorpay_mandates import start_mandate

router = APIRouter(prefix="/v1/payment-methods", tags=["payment methods"], route_class=TransactionalRoute)

MethodIdPath = Annotated[str, Path(pattern=PAYMENT_METHOD_ID_PATTERN)]


def _gateways(request: Request) -> Gateways:
    gateways: Gateways = request.app.state.gateways
    return gateways


@router.get("", summary="The caller's saved payment methods", responses=problem_responses(403))
async def list_payment_methods(session: SessionDep, caller: WalletReaderDep) -> PaymentMethodList:
    listed = await list_methods(session, caller.own_tenant())
    return PaymentMethodList(data=[PaymentMethodOut.of(m.method, default=m.default) for m in listed])


@router.post(
    "/setup",
    status_code=status.HTTP_201_CREATED,
    summary="Start saving a payment method: a card (Stripe Elements) or a recurring mandate (Razorpay)",
    description="Stripe tenants: answers a SetupIntent's client secret (`kind: client_secret`); confirm it in "
    "the page (`stripe.confirmSetup`), and Stripe's `setup_intent.succeeded` and `payment_method.attached` "
    "webhooks save the card (the first one becomes the default). The client secret is never stored: a "
    "retry with the same Idempotency-Key gets the same SetupIntent again from Stripe.\n\n"
    "Razorpay tenants (INR): answers what Razorpay Checkout opens with (`kind: razorpay_mandate`: "
    '`key_id`, `order_id`, `customer_id`, `recurring: "1"`) for the customer\'s authorization payment '
    "of a card or UPI AutoPay mandate (body `method`, `max_amount`). The payment is credited to the wallet; "
    "Razorpay's `token.confirmed` webhook makes the mandate usable (listed `active`). A retry with the same "
    "Idempotency-Key answers the same order.",
    responses=problem_responses(403, 404, 409, 422, 503),
    dependencies=[Idempotent],
    response_model=SetupIntentOut | MandateSetupOut,
)
async def setup_payment_method(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: WalletWriterDep,
    intent: IntentDep,
    body: MandateSetupIn | None = None,
) -> ResumableResponse:
    tenant_id = caller.own_tenant()
    if await tenant_provider(session, tenant_id) is ProviderName.RAZORPAY:
        mandate = body or MandateSetupIn()
        setup = await start_mandate(
            session,
            _gateways(request),
            settings,
            tenant_id=tenant_id,
            intent=intent,
            method=mandate.method,
            max_amount=mandate.max_amount,
            actor=caller.actor,
        )
        answer = MandateSetupOut(
            payment_method_id=setup.mandate_id,
            topup_id=setup.topup_id,
            key_id=setup.key_id,
            order_id=setup.order_id,
            customer_id=setup.customer_id,
            method=setup.method,
            amount=MoneyOut.of(setup.amount.amount, setup.amount.currency),
            max_amount=MoneyOut.of(setup.max_amount.amount, setup.max_amount.currency),
            expires_at=setup.expires_at,
        )
        return ResumableResponse(answer.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)
    if body is not None and body.model_fields_set:
        raise InvalidRequest("method and max_amount are for Razorpay mandates; a Stripe card takes no body")
    started, publishable_key = await start_setup(
        session, _gateways(request), tenant_id=tenant_id, intent=intent
    )
    out = SetupIntentOut(
        setup_intent_id=started.setup_intent_id,
        client_secret=started.client_secret,
        publishable_key=publishable_key,
    )
    return ResumableResponse(out.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)


@router.put(
    "/{payment_method_id}/default",
    summary="Make a saved payment method the default (auto top-up charges it)",
    description="A card (Stripe) or an active mandate (Razorpay). Auto top-up charges the method its "
    "settings name (`payment_method_id`), else this default, else (Razorpay) the newest active mandate. "
    "A mandate that is pending, paused, rejected or cancelled answers 409 `CONFLICT`; one deleted or "
    "expired, 404.",
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def make_default(
    payment_method_id: MethodIdPath, session: SessionDep, caller: WalletWriterDep
) -> PaymentMethodOut:
    method = await set_default(session, tenant_id=caller.own_tenant(), method_id=payment_method_id)
    return PaymentMethodOut.of(method, default=True)


@router.delete(
    "/{payment_method_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Detach a saved payment method",
    description="Detached at Stripe, then forgotten here; auto top-up then uses the default (if any).",
    responses=problem_responses(403, 404, 409, 503),
    dependencies=[Idempotent],
)
async def delete_payment_method(
    payment_method_id: MethodIdPath, request: Request, session: SessionDep, caller: WalletWriterDep
) -> Response:
    await detach(session, _gateways(request), tenant_id=caller.own_tenant(), method_id=payment_method_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
