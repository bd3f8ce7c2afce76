"""Razorpay top-ups through the API: routing, the order behind the checkout modal, the verify call,
and refunds. Razorpay is faked at the HTTP boundary only."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from tests.fixtures.auth import bearer, make_token, member_headers, owner_headers
from tests.fixtures.constants import RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET, STRIPE_API_BASE
from tests.fixtures.providers import razorpay_payment_signature, rid, stripe_customer, stripe_session
from tests.fixtures.razorpay_flow import (
    FakeRazorpay,
    balance,
    isolated_client,
    paid_topup,
    start_topup,
    topup_detail,
    transactions,
    verify,
)
from tests.fixtures.tenants import TenantFactory
from walletsvc.config import Settings
from walletsvc.db.engine import Database

pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")


def order_body(razorpay: FakeRazorpay) -> dict[str, Any]:
    assert len(razorpay.order_requests) == 1
    body: dict[str, Any] = json.loads(razorpay.order_requests[0].content)
    return body


# --- routing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant_fields",
    [
        pytest.param({"currency": "INR", "country": "IND"}, id="inr"),
        pytest.param({"currency": "USD", "country": "IND"}, id="india-paying-usd"),
        pytest.param(
            {"currency": "USD", "country": "USA", "data_residency_region": "ap-south-1"}, id="ap-south"
        ),
        pytest.param({"currency": "USD", "country": "USA", "payments_provider": "razorpay"}, id="setting"),
    ],
)
async def test_razorpay_tenants_get_the_checkout_modal(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    tenant_fields: dict[str, Any],
) -> None:
    tenant = await create_tenant(**tenant_fields)
    topup = await start_topup(client, tenant["id"], 5000)
    assert topup["checkout"]["kind"] == "razorpay_modal"
    assert topup["checkout_kind"] == "razorpay_modal"
    body = order_body(razorpay)
    assert body["currency"] == tenant_fields["currency"]
    assert body["amount"] == 5000


async def test_usd_tenant_in_usa_gets_a_stripe_redirect(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    with respx.mock(base_url=STRIPE_API_BASE, assert_all_called=True) as stripe:
        stripe.post("/v1/customers").respond(200, json=stripe_customer(tenant["id"]))
        stripe.post("/v1/checkout/sessions").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json=stripe_session(
                    session_id=rid("cs_test"),
                    topup_id=dict(httpx.QueryParams(request.content.decode()))["client_reference_id"],
                    tenant_id=tenant["id"],
                    amount=2500,
                ),
            )
        )
        response = await client.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(tenant["id"]))
    assert response.status_code == 201, response.text
    assert response.json()["checkout"]["kind"] == "redirect"
    assert response.json()["checkout"]["url"].startswith("https://checkout.stripe.com/")
    assert razorpay.order_requests == []


async def test_admin_override_sends_a_usd_tenant_to_razorpay(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    admin = bearer(make_token(role="super_admin", tenant_id=tenant["id"]))
    response = await client.post("/v1/topups", json={"amount": 5000, "provider": "razorpay"}, headers=admin)
    assert response.status_code == 201, response.text
    assert response.json()["checkout"]["kind"] == "razorpay_modal"
    assert order_body(razorpay)["currency"] == "USD"


async def test_admin_override_beats_the_tenants_own_setting(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", payments_provider="stripe")
    admin = bearer(make_token(role="super_admin", tenant_id=tenant["id"]))
    response = await client.post("/v1/topups", json={"amount": 5000, "provider": "razorpay"}, headers=admin)
    assert response.status_code == 201, response.text
    assert response.json()["checkout"]["kind"] == "razorpay_modal"


async def test_owner_choosing_a_provider_is_forbidden_and_creates_nothing(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    response = await client.post(
        "/v1/topups",
        json={"amount": 5000, "provider": "razorpay"},
        headers=owner_headers(tenant["id"]),
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "FORBIDDEN"
    assert razorpay.order_requests == []
    listed = await client.get("/v1/topups", headers=owner_headers(tenant["id"]))
    assert listed.json()["data"] == []


# --- the order behind the modal ------------------------------------------------------------------


async def test_order_is_created_in_paise_with_the_topup_as_receipt_and_basic_auth(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 25_000)
    request = razorpay.order_requests[0]
    assert request.method == "POST"
    assert request.url.path == "/v1/orders"
    body = order_body(razorpay)
    assert body["amount"] == 25_000
    assert isinstance(body["amount"], int)
    assert body["currency"] == "INR"
    assert body["receipt"] == topup["id"]
    assert body["notes"] == {"topup_id": topup["id"], "tenant_id": tenant["id"]}
    expected = base64.b64encode(f"{RAZORPAY_KEY_ID}:{RAZORPAY_KEY_SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"

    order_id = next(iter(razorpay.orders))
    checkout = topup["checkout"]
    assert checkout["key_id"] == RAZORPAY_KEY_ID
    assert checkout["order_id"] == order_id
    assert checkout["amount"] == 25_000
    assert checkout["currency"] == "INR"
    assert topup["status"] == "pending"
    assert topup["amount"] == {"amount": 25_000, "currency": "INR"}


async def test_checkout_answer_never_contains_the_key_secret(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    response = await client.post("/v1/topups", json={"amount": 10_000}, headers=owner_headers(tenant["id"]))
    assert response.status_code == 201, response.text
    assert RAZORPAY_KEY_SECRET not in response.text
    detail = await client.get(f"/v1/topups/{response.json()['id']}", headers=owner_headers(tenant["id"]))
    assert RAZORPAY_KEY_SECRET not in detail.text


async def test_below_ten_rupees_is_refused_with_the_minimum(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    response = await client.post("/v1/topups", json={"amount": 999}, headers=owner_headers(tenant["id"]))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "BELOW_MINIMUM"
    assert problem["minimum"] == {"amount": 1000, "currency": "INR"}
    assert razorpay.order_requests == []


async def test_exactly_ten_rupees_is_accepted(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 1000)
    assert topup["checkout"]["amount"] == 1000


async def test_member_cannot_start_a_topup(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    response = await client.post("/v1/topups", json={"amount": 5000}, headers=member_headers(tenant["id"]))
    assert response.status_code == 403, response.text
    assert razorpay.order_requests == []


async def test_order_creation_failing_answers_503_and_keeps_the_topup_pending(
    settings: Settings, db: Database, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    razorpay.down = True
    async with isolated_client(settings, db) as client:
        response = await client.post("/v1/topups", json={"amount": 5000}, headers=owner_headers(tenant["id"]))
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "PROVIDER_UNAVAILABLE"
        listed = (await client.get("/v1/topups", headers=owner_headers(tenant["id"]))).json()["data"]
    assert len(listed) == 1
    assert listed[0]["status"] == "pending"
    # retried once (provider_max_retries=1), never more
    assert len(razorpay.order_requests) == 2


# --- verify --------------------------------------------------------------------------------------


async def test_verify_with_valid_signature_credits_what_razorpay_reports(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id)
    response = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["credited"] == {"amount": 50_000, "currency": "INR"}
    assert razorpay.payment_fetches == [payment["id"]]
    assert await balance(client, tenant["id"]) == 50_000
    rows = await transactions(client, tenant["id"])
    assert [(r["type"], r["amount"]["amount"], r["counter_account"]) for r in rows] == [
        ("topup", 50_000, "provider:razorpay")
    ]
    assert rows[0]["reference"] == {"type": "topup", "id": topup["id"]}


async def test_verify_twice_credits_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 20_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id)
    for _ in range(2):
        response = await verify(
            client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"]
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "succeeded"
    assert await balance(client, tenant["id"]) == 20_000
    assert len(await transactions(client, tenant["id"], type_="topup")) == 1


async def test_verify_with_wrong_signature_is_refused_and_credits_nothing(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id)
    forged = razorpay_payment_signature(order_id, payment["id"], secret="not-the-key-secret")
    response = await verify(
        client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"], signature=forged
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert forged not in response.text
    assert razorpay.payment_fetches == []
    assert await balance(client, tenant["id"]) == 0
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"


async def test_verify_signature_of_another_payment_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id)
    other_signature = razorpay_payment_signature(order_id, rid("pay"))
    response = await verify(
        client,
        tenant["id"],
        topup["id"],
        order_id=order_id,
        payment_id=payment["id"],
        signature=other_signature,
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert await balance(client, tenant["id"]) == 0


async def test_verify_with_another_topups_order_is_an_invalid_payment(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    small = await start_topup(client, tenant["id"], 1000)
    large = await start_topup(client, tenant["id"], 90_000)
    # A genuine, correctly signed payment of the small order, replayed against the large top-up.
    payment = razorpay.pay(small["checkout"]["order_id"])
    response = await verify(
        client,
        tenant["id"],
        large["id"],
        order_id=small["checkout"]["order_id"],
        payment_id=payment["id"],
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_PAYMENT"
    assert await balance(client, tenant["id"]) == 0
    assert (await topup_detail(client, tenant["id"], large["id"]))["status"] == "pending"


async def test_verify_of_a_payment_made_for_another_order_is_an_invalid_payment(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    # Razorpay says the payment belongs to some other order, though the signature is over ours.
    payment = razorpay.pay(order_id, payment_order_id=rid("order"))
    response = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_PAYMENT"
    assert await balance(client, tenant["id"]) == 0


async def test_verify_of_a_different_captured_amount_flags_the_topup_and_credits_nothing(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id, amount=5_000)
    response = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "flagged"
    assert body["credited"] is None
    assert body["status_reason"] == "the provider confirmed INR 50.00, the top-up was for INR 500.00"
    assert await balance(client, tenant["id"]) == 0
    assert await transactions(client, tenant["id"]) == []
    history = [e["kind"] for e in (await topup_detail(client, tenant["id"], topup["id"]))["history"]]
    assert "flagged" in history


async def test_verify_of_a_different_captured_currency_flags_the_topup(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id, currency="USD")
    response = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "flagged"
    assert "USD" in response.json()["status_reason"]
    assert await balance(client, tenant["id"]) == 0


async def test_verify_of_an_authorized_payment_keeps_the_topup_pending(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id, status="authorized")
    response = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert await balance(client, tenant["id"]) == 0
    # Captured later: the same verify now credits.
    razorpay.set_status(payment["id"], "captured")
    again = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert again.json()["status"] == "succeeded"
    assert await balance(client, tenant["id"]) == 50_000


async def test_verify_of_another_tenants_topup_is_not_found(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    victim = await create_tenant()
    intruder = await create_tenant()
    topup = await start_topup(client, victim["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id)
    response = await verify(client, intruder["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "NOT_FOUND"
    assert await balance(client, victim["id"]) == 0
    assert await balance(client, intruder["id"]) == 0


async def test_verify_when_razorpay_fails_answers_503_and_the_topup_stays_pending(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id)
    razorpay.down = True
    async with isolated_client(settings, db) as isolated:
        response = await verify(
            isolated, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"]
        )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert await balance(client, tenant["id"]) == 0
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"
    razorpay.down = False
    retried = await verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"])
    assert retried.json()["status"] == "succeeded"
    assert await balance(client, tenant["id"]) == 50_000


# --- refunds -------------------------------------------------------------------------------------


async def test_partial_refund_then_the_rest_reach_razorpay_and_debit_once_each(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 100_000)

    first = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds",
        json={"amount": 30_000, "reason": "customer asked"},
        headers=admin_headers,
    )
    assert first.status_code == 201, first.text
    refund = first.json()
    assert refund["amount"] == {"amount": 30_000, "currency": "INR"}
    assert refund["debited"] is True
    assert refund["status"] == "succeeded"
    sent = razorpay.refund_requests[0]
    assert sent.url.path == f"/v1/payments/{payment['id']}/refund"
    assert sent.headers["X-Refund-Idempotency"] == refund["id"]
    body = json.loads(sent.content)
    assert body["amount"] == 30_000
    assert body["notes"]["walletsvc_refund_id"] == refund["id"]
    assert await balance(client, tenant["id"]) == 70_000

    rest = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds", json={"reason": "the rest"}, headers=admin_headers
    )
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"]["amount"] == 70_000
    assert razorpay.refund_requests[1].headers["X-Refund-Idempotency"] == rest.json()["id"]
    assert json.loads(razorpay.refund_requests[1].content)["amount"] == 70_000
    assert await balance(client, tenant["id"]) == 0

    refunds = await transactions(client, tenant["id"], type_="topup_refund")
    assert sorted(r["amount"]["amount"] for r in refunds) == [-70_000, -30_000]
    assert {r["counter_account"] for r in refunds} == {"provider:razorpay"}

    nothing_left = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds", json={"reason": "again"}, headers=admin_headers
    )
    assert nothing_left.status_code == 409, nothing_left.text
    assert len(razorpay.refund_requests) == 2
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["refunded"] == {"amount": 100_000, "currency": "INR"}
    assert {r["id"] for r in detail["refunds"]} == {refund["id"], rest.json()["id"]}


async def test_refund_larger_than_what_is_left_is_refused(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 10_000)
    response = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds",
        json={"amount": 10_001, "reason": "too much"},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert razorpay.refund_requests == []
    assert await balance(client, tenant["id"]) == 10_000


async def test_refund_of_money_already_spent_needs_force(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 10_000)
    spent = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": -6_000, "reason": "calls"},
        headers=admin_headers,
    )
    assert spent.status_code == 201, spent.text
    refused = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds", json={"reason": "all"}, headers=admin_headers
    )
    assert refused.status_code == 402, refused.text
    assert refused.json()["code"] == "INSUFFICIENT_FUNDS"
    assert razorpay.refund_requests == []
    assert await balance(client, tenant["id"]) == 4_000


async def test_refund_of_a_pending_topup_is_a_conflict(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 10_000)
    response = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds", json={"reason": "not paid"}, headers=admin_headers
    )
    assert response.status_code == 409, response.text
    assert razorpay.refund_requests == []


async def test_owner_cannot_refund(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 10_000)
    response = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds", json={"reason": "me"}, headers=owner_headers(tenant["id"])
    )
    assert response.status_code == 403, response.text
    assert razorpay.refund_requests == []
    assert await balance(client, tenant["id"]) == 10_000


# --- provider faults -----------------------------------------------------------------------------


async def test_without_razorpay_keys_a_topup_answers_503_not_configured_and_writes_nothing(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
) -> None:
    tenant = await create_tenant()
    async with isolated_client(settings, db, razorpay_key_id=None, razorpay_key_secret=None) as unconfigured:
        response = await unconfigured.post(
            "/v1/topups", json={"amount": 5000}, headers=owner_headers(tenant["id"])
        )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "PROVIDER_NOT_CONFIGURED"
    assert razorpay.order_requests == []
    listed = await client.get("/v1/topups", headers=owner_headers(tenant["id"]))
    assert listed.json()["data"] == []


async def test_verify_without_razorpay_keys_answers_503_not_configured(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 5000)
    payment = razorpay.pay(topup["checkout"]["order_id"])
    async with isolated_client(settings, db, razorpay_key_id=None, razorpay_key_secret=None) as unconfigured:
        response = await verify(
            unconfigured,
            tenant["id"],
            topup["id"],
            order_id=topup["checkout"]["order_id"],
            payment_id=payment["id"],
        )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "PROVIDER_NOT_CONFIGURED"
    assert await balance(client, tenant["id"]) == 0


async def test_keys_razorpay_refuses_fail_the_topup_with_503_not_configured(
    settings: Settings, db: Database, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    async with isolated_client(settings, db, razorpay_key_secret=SecretStr("revoked-secret")) as client:
        response = await client.post("/v1/topups", json={"amount": 5000}, headers=owner_headers(tenant["id"]))
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "PROVIDER_NOT_CONFIGURED"
        assert "revoked-secret" not in response.text
        [topup] = (await client.get("/v1/topups", headers=owner_headers(tenant["id"]))).json()["data"]
    assert topup["status"] == "failed"
    assert topup["status_reason"] == "Razorpay refused walletsvc's key id and secret"
    assert razorpay.orders == {}


async def test_repeated_razorpay_failures_open_the_circuit(
    settings: Settings, db: Database, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    razorpay.down = True
    async with isolated_client(settings, db) as client:
        for _ in range(settings.provider_circuit_failures):
            failed = await client.post(
                "/v1/topups", json={"amount": 5000}, headers=owner_headers(tenant["id"])
            )
            assert failed.status_code == 503, failed.text
        calls_before = len(razorpay.order_requests)
        assert calls_before == settings.provider_circuit_failures * (settings.provider_max_retries + 1)
        razorpay.down = False
        paused = await client.post("/v1/topups", json={"amount": 5000}, headers=owner_headers(tenant["id"]))
        assert paused.status_code == 503, paused.text
        assert paused.json()["code"] == "PROVIDER_UNAVAILABLE"
        assert "circuit" in paused.json()["detail"]
        assert paused.headers["Retry-After"] == "30"
    assert len(razorpay.order_requests) == calls_before


async def test_same_idempotency_key_creates_one_order(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    headers = {**owner_headers(tenant["id"]), "Idempotency-Key": rid("idem")}
    first = await client.post("/v1/topups", json={"amount": 5000}, headers=headers)
    second = await client.post("/v1/topups", json={"amount": 5000}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert len(razorpay.order_requests) == 1
    reused = await client.post("/v1/topups", json={"amount": 6000}, headers=headers)
    assert reused.status_code == 422, reused.text
    assert reused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_a_verify_refused_while_razorpay_is_down_runs_again_with_the_same_idempotency_key(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
) -> None:
    """A provider that could not be reached is no answer to keep for the key: the portal's retry with
    the same Idempotency-Key asks Razorpay again (not a replayed 503, forever, without Retry-After)."""
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 50_000)
    order_id = topup["checkout"]["order_id"]
    payment = razorpay.pay(order_id)
    key = {**owner_headers(tenant["id"]), "Idempotency-Key": f"verify-{topup['id']}"}
    razorpay.down = True
    async with isolated_client(settings, db) as isolated:
        refused = await verify(
            isolated, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"], headers=key
        )
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert refused.headers["Retry-After"]
    razorpay.down = False
    retried = await verify(
        client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"], headers=key
    )
    assert retried.status_code == 200, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert retried.json()["status"] == "succeeded"
    assert await balance(client, tenant["id"]) == 50_000
