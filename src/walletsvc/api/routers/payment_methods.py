"""Saved payment methods: list (brand, last 4, expiry only), save one through Stripe Elements, choose
the default for auto top-up, detach."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from walletsvc.api.deps import Idempotent, SessionDep, WalletReaderDep, WalletWriterDep
from walletsvc.api.intents import IntentDep
from walletsvc.api.routing import ResumableResponse, TransactionalRoute
from walletsvc.api.schemas.auto_topup import (
    PAYMENT_METHOD_ID_PATTERN,
    PaymentMethodList,
    PaymentMethodOut,
    SetupIntentOut,
)
from walletsvc.api.schemas.common import problem_responses
from walletsvc.services.gateways import Gateways
from walletsvc.services.payment_methods import detach, list_methods, set_default, start_setup

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
    summary="Start saving a card with Stripe Elements: answers a SetupIntent's client secret",
    description="Confirm it in the page (`stripe.confirmSetup`); Stripe's `setup_intent.succeeded` and "
    "`payment_method.attached` webhooks then save the card (the first one becomes the default). The "
    "client secret is never stored: a retry with the same Idempotency-Key gets the same SetupIntent again "
    "from Stripe.",
    responses=problem_responses(403, 404, 409, 503),
    dependencies=[Idempotent],
    response_model=SetupIntentOut,
)
async def setup_payment_method(
    request: Request, session: SessionDep, caller: WalletWriterDep, intent: IntentDep
) -> ResumableResponse:
    started, publishable_key = await start_setup(
        session, _gateways(request), tenant_id=caller.own_tenant(), intent=intent
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
