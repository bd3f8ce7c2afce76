from __future__ import annotations

import httpx
import respx

from tests.fixtures.auth import owner_headers
from tests.fixtures.constants import STRIPE_API_BASE
from tests.fixtures.providers import (
    body_of,
    rid,
    stripe_customer,
    stripe_event,
    stripe_session,
    stripe_signature,
)
from tests.fixtures.tenants import TenantFactory


async def test_stripe_checkout_then_webhook_credits(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    session_id = rid("cs_test")
    with respx.mock(base_url=STRIPE_API_BASE, assert_all_called=True) as stripe:
        stripe.post("/v1/customers").respond(200, json=stripe_customer(tenant["id"]))
        created = stripe.post("/v1/checkout/sessions")
        created.side_effect = lambda request: httpx.Response(
            200,
            json=stripe_session(
                session_id=session_id,
                topup_id=dict(httpx.QueryParams(request.content.decode()))["client_reference_id"],
                tenant_id=tenant["id"],
                amount=2500,
            ),
        )
        response = await client.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(tenant["id"]))
    assert response.status_code == 201, response.text
    topup = response.json()
    assert topup["checkout"]["kind"] == "redirect"
    assert topup["status"] == "pending"
    event = stripe_event(
        "checkout.session.completed",
        stripe_session(
            session_id=session_id,
            topup_id=topup["id"],
            tenant_id=tenant["id"],
            amount=2500,
            payment_status="paid",
            status="complete",
            payment_intent=rid("pi"),
        ),
    )
    payload = body_of(event)
    hook = await client.post(
        "/v1/webhooks/stripe", content=payload, headers={"Stripe-Signature": stripe_signature(payload)}
    )
    assert hook.status_code == 200, hook.text
    wallet = (await client.get("/v1/wallet", headers=owner_headers(tenant["id"]))).json()
    assert wallet["balance"] == {"amount": 2500, "currency": "USD"}
