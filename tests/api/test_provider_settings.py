"""Provider settings through the API: a 503 PROVIDER_NOT_CONFIGURED names the settings to set (keys for
top-ups, the publishable key for client_secret checkouts, webhook secrets for webhooks); every Stripe
request carries the pinned Stripe-Version; an event of another API version is applied and warned about,
without its payload in the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import owner_headers
from tests.fixtures.providers import (
    body_of,
    razorpay_event,
    razorpay_payment,
    razorpay_webhook_signature,
    rid,
    stripe_event,
    stripe_session,
    stripe_signature,
)
from tests.fixtures.razorpay_flow import FakeRazorpay
from tests.fixtures.settings_apps import changed_settings, client_for
from tests.fixtures.stripe_fake import FakeStripe, balance_of, fake_stripe, start_topup, topup_detail
from tests.fixtures.tenants import TenantFactory
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.providers.stripe_gateway import STRIPE_API_VERSION


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


def _not_configured(response: httpx.Response, *settings: str) -> str:
    assert response.status_code == 503, response.text
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "PROVIDER_NOT_CONFIGURED"
    assert problem["settings"] == list(settings)
    detail: str = problem["detail"]
    for name in settings:
        assert name in detail
    return detail


async def test_a_stripe_topup_without_a_secret_key_names_it(
    settings: Settings, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    async with client_for(changed_settings(settings, stripe_secret_key=None), db) as c:
        topup = await c.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(tenant["id"]))
        back = await c.get("/v1/topups/stripe/return", params={"session_id": "cs_test_x"})
    detail = _not_configured(topup, "STRIPE_SECRET_KEY")
    assert "sk_test_... or sk_live_..." in detail
    _not_configured(back, "STRIPE_SECRET_KEY")
    assert len(stripe.router.calls) == 0


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        pytest.param({"razorpay_key_secret": None}, ["RAZORPAY_KEY_SECRET"], id="secret"),
        pytest.param({"razorpay_key_id": None}, ["RAZORPAY_KEY_ID"], id="key-id"),
        pytest.param(
            {"razorpay_key_id": None, "razorpay_key_secret": None},
            ["RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET"],
            id="both",
        ),
    ],
)
async def test_a_razorpay_topup_names_the_razorpay_settings_missing(
    settings: Settings,
    db: Database,
    razorpay: FakeRazorpay,
    create_tenant: TenantFactory,
    unset: dict[str, None],
    named: list[str],
) -> None:
    tenant = await create_tenant()
    async with client_for(changed_settings(settings, **unset), db) as c:
        response = await c.post("/v1/topups", json={"amount": 5000}, headers=owner_headers(tenant["id"]))
    detail = _not_configured(response, *named)
    assert detail.startswith("Razorpay is not configured here: set RAZORPAY_")
    assert razorpay.order_requests == []


async def test_a_client_secret_checkout_without_a_publishable_key_names_it_and_makes_no_intent(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    async with client_for(changed_settings(settings, stripe_publishable_key=None), db) as c:
        elements = await c.post(
            "/v1/topups",
            json={"amount": 2500, "checkout": "client_secret"},
            headers=owner_headers(tenant["id"]),
        )
        redirect = await c.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(tenant["id"]))
    _not_configured(elements, "STRIPE_PUBLISHABLE_KEY")
    assert not stripe.create_intent.called  # nothing to pay with: Stripe was never asked for one
    # A redirect checkout needs no publishable key.
    assert redirect.status_code == 201, redirect.text
    assert redirect.json()["checkout"]["kind"] == "redirect"
    # Refused before anything was written: the only top-up is the redirect one.
    listed = await client.get("/v1/topups", headers=owner_headers(tenant["id"]))
    assert [t["id"] for t in listed.json()["data"]] == [redirect.json()["id"]]


async def test_webhooks_without_a_secret_name_the_secret_and_store_nothing(
    settings: Settings, db: Database
) -> None:
    session = stripe_session(
        session_id=rid("cs_test"), topup_id=rid("top"), tenant_id="t-any", amount=2500, payment_status="paid"
    )
    payment = razorpay_payment(payment_id=rid("pay"), order_id=rid("order"), amount=5000)
    stripe_payload = body_of(stripe_event("checkout.session.completed", session))
    razorpay_payload = body_of(razorpay_event("payment.captured", {"payment": payment}))
    unset = changed_settings(settings, stripe_webhook_secret=None, razorpay_webhook_secret=None)
    async with client_for(unset, db) as c:
        stripe_hook = await c.post(
            "/v1/webhooks/stripe",
            content=stripe_payload,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": stripe_signature(stripe_payload),
            },
        )
        razorpay_hook = await c.post(
            "/v1/webhooks/razorpay",
            content=razorpay_payload,
            headers={
                "Content-Type": "application/json",
                "X-Razorpay-Signature": razorpay_webhook_signature(razorpay_payload),
                "X-Razorpay-Event-Id": rid("evt"),
            },
        )
    assert "whsec_" in _not_configured(stripe_hook, "STRIPE_WEBHOOK_SECRET")
    _not_configured(razorpay_hook, "RAZORPAY_WEBHOOK_SECRET")


async def test_every_stripe_request_carries_the_pinned_api_version(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    await start_topup(client, tenant["id"], 2500)
    await start_topup(client, tenant["id"], 2500, checkout="client_secret")
    topup = await start_topup(client, tenant["id"], 3000)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    back = await client.get("/v1/topups/stripe/return", params={"session_id": session["id"]})
    assert back.status_code in (302, 303, 307), back.text

    paths = {call.request.url.path for call in stripe.router.calls}
    assert {"/v1/customers", "/v1/checkout/sessions", "/v1/payment_intents"} <= paths
    assert any(p.startswith("/v1/checkout/sessions/cs_") for p in paths)  # the return route's retrieve
    versions = {call.request.headers.get("Stripe-Version") for call in stripe.router.calls}
    assert versions == {STRIPE_API_VERSION}


async def test_an_event_of_another_api_version_is_applied_and_warned_about_without_its_payload(
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    topup = await start_topup(client, tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    event = stripe_event("checkout.session.completed", session)
    event["api_version"] = "2024-06-20"
    payload = body_of(event)

    with caplog.at_level(logging.WARNING, logger="walletsvc.providers.stripe_gateway"):
        response = await client.post(
            "/v1/webhooks/stripe",
            content=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(payload)},
        )

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "top-up succeeded"
    assert await balance_of(client, tenant["id"]) == 2500
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "succeeded"
    [warning] = [r for r in caplog.records if r.name == "walletsvc.providers.stripe_gateway"]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert event["id"] in message
    assert "2024-06-20" in message
    assert STRIPE_API_VERSION in message
    for private in (session["id"], session["customer"] or "cus_", topup["id"], tenant["id"], "2500"):
        assert private not in message
    assert json.dumps(session["metadata"]) not in caplog.text


async def test_an_event_of_the_pinned_version_is_not_warned_about(
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    topup = await start_topup(client, tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    event = stripe_event("checkout.session.completed", session)
    assert event["api_version"] == STRIPE_API_VERSION
    payload = body_of(event)
    with caplog.at_level(logging.WARNING, logger="walletsvc.providers.stripe_gateway"):
        response = await client.post(
            "/v1/webhooks/stripe",
            content=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(payload)},
        )
    assert response.json()["outcome"] == "top-up succeeded", response.text
    assert [r for r in caplog.records if r.name == "walletsvc.providers.stripe_gateway"] == []
