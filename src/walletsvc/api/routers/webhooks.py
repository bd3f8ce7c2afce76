"""Signed webhooks from Stripe and Razorpay. A repeat answers 200 and changes nothing; an unknown event
type is stored and answered 200; a bad signature changes nothing and answers 400."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from walletsvc.api.deps import SessionDep
from walletsvc.api.routers.topups import GatewaysDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import problem_responses
from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.signatures import verify_razorpay_webhook, verify_stripe_signature
from walletsvc.domain.tenants import ProviderName
from walletsvc.services.webhooks import receive_event

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=TransactionalRoute)

_RESPONSES = {
    200: {"description": "Received (new, duplicate or ignored)"},
    **{k: v for k, v in problem_responses(400).items() if k in (400, 422)},
}


def _json(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise InvalidRequest("the event is not JSON") from exc
    if not isinstance(event, dict):
        raise InvalidRequest("the event is not a JSON object")
    return event


@router.post("/stripe", summary="Stripe events (Stripe-Signature)", responses=_RESPONSES)  # type: ignore[arg-type]
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    gateways: GatewaysDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> dict[str, str]:
    body = await request.body()
    verify_stripe_signature(body, stripe_signature, gateways.stripe_webhook_secrets, now=int(time.time()))
    event = _json(body)
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        raise InvalidRequest("the event has no id or type")
    outcome = await receive_event(session, ProviderName.STRIPE, event_id, event_type, event)
    return {"received": event_id, "outcome": outcome}


@router.post("/razorpay", summary="Razorpay events (X-Razorpay-Signature)", responses=_RESPONSES)  # type: ignore[arg-type]
async def razorpay_webhook(
    request: Request,
    session: SessionDep,
    gateways: GatewaysDep,
    razorpay_signature: Annotated[str | None, Header(alias="X-Razorpay-Signature")] = None,
    razorpay_event_id: Annotated[str | None, Header(alias="X-Razorpay-Event-Id")] = None,
) -> dict[str, str]:
    body = await request.body()
    verify_razorpay_webhook(body, razorpay_signature, gateways.razorpay_webhook_secret)
    event = _json(body)
    event_type = event.get("event")
    if not isinstance(event_type, str):
        raise InvalidRequest("the event has no type")
    # Razorpay names each delivery's event in a header; a body digest stands in if a proxy dropped it.
    event_id = razorpay_event_id or "sha256:" + hashlib.sha256(body).hexdigest()
    outcome = await receive_event(session, ProviderName.RAZORPAY, event_id, event_type, event)
    return {"received": event_id, "outcome": outcome}
