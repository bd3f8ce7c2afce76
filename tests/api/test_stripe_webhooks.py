"""Stripe webhooks: only a delivery signed with our webhook secret, inside Stripe's 300 s tolerance,
changes anything; a forged, replayed or unsigned one answers 400 INVALID_SIGNATURE and is not even
stored. Signatures are computed here from the test secret, never pasted."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.constants import STRIPE_WEBHOOK_SECRET
from tests.fixtures.providers import body_of, rid, stripe_event, stripe_signature
from tests.fixtures.stripe_fake import FakeStripe, balance_of, fake_stripe, start_topup, topup_detail
from tests.fixtures.tenants import TenantFactory
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.engine import Database


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


async def stored_events(db: Database, event_id: str) -> list[dict[str, Any]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT event_id, type, outcome FROM webhook_events"
                " WHERE provider = 'stripe' AND event_id = :event_id"
            ),
            {"event_id": event_id},
        )
        return [dict(r._mapping) for r in rows]


async def paid_session_event(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A tenant with a pending top-up whose Checkout Session is paid; its (unsent) completed event."""
    tenant = await create_tenant(currency="USD", country="USA")
    topup = await start_topup(client, tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    return tenant, topup, stripe_event("checkout.session.completed", session)


def sign(payload: bytes, *, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe_signature(payload, secret=secret, timestamp=timestamp)


def v1(payload: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


async def post_hook(client: httpx.AsyncClient, payload: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post(
        "/v1/webhooks/stripe", content=payload, headers={"Content-Type": "application/json", **headers}
    )


def _tampered(payload: bytes) -> tuple[bytes, dict[str, str]]:
    tampered = payload.replace(b'"amount_total":2500', b'"amount_total":2501')
    assert tampered != payload
    return tampered, {"Stripe-Signature": sign(payload)}


def _wrong_secret(payload: bytes) -> tuple[bytes, dict[str, str]]:
    return payload, {"Stripe-Signature": sign(payload, secret="whsec_" + uuid.uuid4().hex)}


def _stale(payload: bytes) -> tuple[bytes, dict[str, str]]:
    return payload, {"Stripe-Signature": sign(payload, timestamp=int(time.time()) - 301 - 60)}


def _far_future(payload: bytes) -> tuple[bytes, dict[str, str]]:
    return payload, {"Stripe-Signature": sign(payload, timestamp=int(time.time()) + 3600)}


def _missing(payload: bytes) -> tuple[bytes, dict[str, str]]:
    return payload, {}


def _no_v1(payload: bytes) -> tuple[bytes, dict[str, str]]:
    return payload, {"Stripe-Signature": f"t={int(time.time())},v0={v1(payload, STRIPE_WEBHOOK_SECRET, 0)}"}


def _signature_of_another_body(payload: bytes) -> tuple[bytes, dict[str, str]]:
    return payload, {"Stripe-Signature": sign(payload + b" ")}


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_tampered, id="tampered-body"),
        pytest.param(_wrong_secret, id="wrong-secret"),
        pytest.param(_stale, id="stale-timestamp"),
        pytest.param(_far_future, id="far-future-timestamp"),
        pytest.param(_missing, id="missing-header"),
        pytest.param(_no_v1, id="no-v1-signature"),
        pytest.param(_signature_of_another_body, id="signature-of-another-body"),
    ],
)
async def test_badly_signed_webhook_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory, forge: Any
) -> None:
    tenant, topup, event = await paid_session_event(client, stripe, create_tenant)
    payload, headers = forge(body_of(event))

    response = await post_hook(client, payload, headers)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await stored_events(db, event["id"]) == []
    assert await balance_of(client, tenant["id"]) == 0
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"


async def test_signature_just_inside_the_tolerance_is_accepted(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    tenant, _, event = await paid_session_event(client, stripe, create_tenant)
    payload = body_of(event)

    response = await post_hook(
        client, payload, {"Stripe-Signature": sign(payload, timestamp=int(time.time()) - 240)}
    )

    assert response.status_code == 200, response.text
    assert await balance_of(client, tenant["id"]) == 2500


async def test_second_v1_signature_is_accepted_while_the_secret_is_rolled(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    tenant, _, event = await paid_session_event(client, stripe, create_tenant)
    payload = body_of(event)
    now = int(time.time())
    old_secret = "whsec_" + uuid.uuid4().hex
    header = f"t={now},v1={v1(payload, old_secret, now)},v1={v1(payload, STRIPE_WEBHOOK_SECRET, now)}"

    response = await post_hook(client, payload, {"Stripe-Signature": header})

    assert response.status_code == 200, response.text
    assert response.json() == {"received": event["id"], "outcome": "top-up succeeded"}
    assert await balance_of(client, tenant["id"]) == 2500
    assert [e["type"] for e in await stored_events(db, event["id"])] == ["checkout.session.completed"]


async def test_without_a_webhook_secret_every_delivery_is_refused(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
) -> None:
    tenant, _, event = await paid_session_event(client, stripe, create_tenant)
    app = create_app(settings.model_copy(update={"stripe_webhook_secret": None}), database=db)
    payload = body_of(event)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://walletsvc.test"
    ) as c:
        signed = await post_hook(c, payload, {"Stripe-Signature": sign(payload)})
        empty_secret = await post_hook(c, payload, {"Stripe-Signature": sign(payload, secret="")})
        unsigned = await post_hook(c, payload, {})

    for response in (signed, empty_secret, unsigned):  # 503 naming the setting: Stripe retries
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "PROVIDER_NOT_CONFIGURED"
        assert response.json()["settings"] == ["STRIPE_WEBHOOK_SECRET"]
    assert await stored_events(db, event["id"]) == []
    assert await balance_of(client, tenant["id"]) == 0


async def test_unknown_event_type_is_stored_and_answered_200(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe
) -> None:
    event = stripe_event(
        "customer.subscription.trial_will_end",
        {"id": rid("sub"), "object": "subscription", "status": "trialing", "metadata": {}},
    )
    payload = body_of(event)

    response = await post_hook(client, payload, {"Stripe-Signature": sign(payload)})
    again = await post_hook(client, payload, {"Stripe-Signature": sign(payload)})

    assert response.status_code == 200, response.text
    assert response.json() == {"received": event["id"], "outcome": "ignored"}
    assert again.json()["outcome"] == "duplicate"
    assert await stored_events(db, event["id"]) == [
        {"event_id": event["id"], "type": "customer.subscription.trial_will_end", "outcome": "ignored"}
    ]


async def test_event_for_a_topup_walletsvc_never_made_is_stored_and_credits_nothing(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    session = {
        "id": rid("cs_test"),
        "object": "checkout.session",
        "amount_total": 2500,
        "client_reference_id": None,
        "currency": "usd",
        "metadata": {"tenant_id": tenant["id"]},
        "mode": "payment",
        "payment_intent": rid("pi"),
        "payment_status": "paid",
        "status": "complete",
    }
    event = stripe_event("checkout.session.completed", session)
    payload = body_of(event)

    response = await post_hook(client, payload, {"Stripe-Signature": sign(payload)})

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "unknown top-up"
    assert len(await stored_events(db, event["id"])) == 1
    assert await balance_of(client, tenant["id"]) == 0


async def test_signed_body_that_is_not_an_event_is_refused_without_a_500(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe
) -> None:
    for payload in (b"not json", b"[1, 2]", b'{"object": "event"}'):
        response = await post_hook(client, payload, {"Stripe-Signature": sign(payload)})
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["code"] != "INVALID_SIGNATURE"
