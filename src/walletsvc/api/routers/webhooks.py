"""Signed webhooks from Stripe and Razorpay. A repeat answers 200 and changes nothing; an unknown event
type is stored and answered 200; a bad signature changes nothing and answers 400; with no webhook secret
set here, every delivery answers 503 PROVIDER_NOT_CONFIGURED naming the setting (the provider retries).

The rule for a signed event that is malformed: when the envelope is unusable (the body is not a JSON
object, it is nested more than 64 levels deep, or it has no non-empty string `id` and `type` (Stripe)
or `event` (Razorpay)), it answers 422 VALIDATION_FAILED and nothing is stored. Anything wrong inside a
usable envelope is stored and answered 200 with the outcome `malformed: ...` (services/webhooks.py),
and moves no money."""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from walletsvc.api.deps import AutoTopupPolicyDep, SessionDep
from walletsvc.api.routers.topups import GatewaysDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.api.schemas.common import problem_responses
from walletsvc.api.schemas.examples import RAZORPAY_EVENT, STRIPE_EVENT, webhook_docs
from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.signatures import verify_razorpay_webhook, verify_stripe_signature
from walletsvc.domain.tenants import ProviderName
from walletsvc.providers.stripe_gateway import warn_if_other_api_version
from walletsvc.services.webhooks import receive_event

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=TransactionalRoute)

_RESPONSES = {
    200: {"description": "Received (new, duplicate or ignored)"},
    # 503 PROVIDER_NOT_CONFIGURED: no webhook secret is set here (it names the setting).
    **{k: v for k, v in problem_responses(400, 503).items() if k in (400, 422, 503)},
}


_MAX_DEPTH = 64  # real events nest under 10 levels; this bounds every walk over the payload


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _number(text: str) -> float | str:
    # A number too large for a float (1e400) is kept as its text rather than as an infinity,
    # which JSONB cannot store; an amount read from it is a string, and so malformed.
    value = float(text)
    return value if math.isfinite(value) else text


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _json(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body, parse_constant=_not_json, parse_float=_number)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested beyond the parser's limit
        raise InvalidRequest("the event is not JSON") from exc
    if not isinstance(event, dict):
        raise InvalidRequest("the event is not a JSON object")
    if _too_deep(event):
        raise InvalidRequest(f"the event is nested more than {_MAX_DEPTH} levels deep")
    return event


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@router.post(
    "/stripe",
    summary="Stripe events (Stripe-Signature)",
    responses=_RESPONSES,  # type: ignore[arg-type]
    openapi_extra=webhook_docs("Stripe", STRIPE_EVENT, "Stripe-Signature"),
)
async def stripe_webhook(
    request: Request,
    session: SessionDep,
    gateways: GatewaysDep,
    policy: AutoTopupPolicyDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> dict[str, str]:
    body = await request.body()
    secrets = gateways.stripe_webhook_secrets_or_refuse()
    verify_stripe_signature(body, stripe_signature, secrets, now=int(time.time()))
    event = _json(body)
    event_id, event_type = _name(event.get("id")), _name(event.get("type"))
    if event_id is None or event_type is None:
        raise InvalidRequest("the event has no id or type")
    warn_if_other_api_version(event_id, event_type, event.get("api_version"))
    outcome = await receive_event(session, ProviderName.STRIPE, event_id, event_type, event, policy=policy)
    return {"received": event_id, "outcome": outcome}


@router.post(
    "/razorpay",
    summary="Razorpay events (X-Razorpay-Signature)",
    responses=_RESPONSES,  # type: ignore[arg-type]
    openapi_extra=webhook_docs("Razorpay", RAZORPAY_EVENT, "X-Razorpay-Signature"),
)
async def razorpay_webhook(
    request: Request,
    session: SessionDep,
    gateways: GatewaysDep,
    policy: AutoTopupPolicyDep,
    razorpay_signature: Annotated[str | None, Header(alias="X-Razorpay-Signature")] = None,
    razorpay_event_id: Annotated[str | None, Header(alias="X-Razorpay-Event-Id")] = None,
) -> dict[str, str]:
    body = await request.body()
    verify_razorpay_webhook(body, razorpay_signature, gateways.razorpay_webhook_secret_or_refuse())
    event = _json(body)
    event_type = _name(event.get("event"))
    if event_type is None:
        raise InvalidRequest("the event has no type")
    # Razorpay names each delivery's event in a header; a body digest stands in if a proxy dropped it.
    event_id = razorpay_event_id or "sha256:" + hashlib.sha256(body).hexdigest()
    outcome = await receive_event(session, ProviderName.RAZORPAY, event_id, event_type, event, policy=policy)
    return {"received": event_id, "outcome": outcome}
