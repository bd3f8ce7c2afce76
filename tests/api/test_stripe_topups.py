"""Top-ups through Stripe, end to end: checkout creation, the browser's return, exactly-once crediting
over every pair of confirmation paths, amount mismatches, provider faults and reconciliation. Stripe is
faked only at its HTTP boundary (respx)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.constants import (
    PORTAL_CANCEL_URL,
    PORTAL_SUCCESS_URL,
    PUBLIC_BASE_URL,
    STRIPE_PUBLISHABLE_KEY,
    STRIPE_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET,
)
from tests.fixtures.stripe_fake import (
    FakeStripe,
    balance_of,
    fake_stripe,
    form_of,
    ledger_rows,
    send_event,
    start_topup,
    stripe_error,
    topup_detail,
)
from tests.fixtures.tenants import TenantFactory
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.services.reconcile import reconcile


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


@pytest.fixture
async def usd_tenant(create_tenant: TenantFactory) -> dict[str, Any]:
    tenant: dict[str, Any] = await create_tenant(currency="USD", country="USA")
    return tenant


async def return_from_checkout(client: httpx.AsyncClient, session_id: str) -> httpx.Response:
    return await client.get("/v1/topups/stripe/return", params={"session_id": session_id})


def redirect_of(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """The portal address a 303 sends the browser to (without walletsvc's query) and walletsvc's query."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return location, query


async def credited_once(client: httpx.AsyncClient, tenant_id: str, topup_id: str, amount: int) -> None:
    rows = await ledger_rows(client, tenant_id)
    assert [(r["amount"]["amount"], r["reference"]["id"]) for r in rows] == [(amount, topup_id)]
    assert await balance_of(client, tenant_id) == amount
    detail = await topup_detail(client, tenant_id, topup_id)
    assert detail["status"] == "succeeded"
    assert detail["credited"] == {"amount": amount, "currency": "USD"}


# --- starting a top-up ---------------------------------------------------------------------------------


async def test_topup_opens_a_stripe_checkout_session_for_the_tenant(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)

    assert topup["status"] == "pending"
    assert topup["amount"] == {"amount": 2500, "currency": "USD"}
    assert stripe.create_session.call_count == 1
    request = stripe.create_session.calls.last.request
    form = form_of(request)
    assert form["mode"] == "payment"
    assert (
        form["success_url"] == f"{PUBLIC_BASE_URL}/v1/topups/stripe/return?session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert form["cancel_url"] == PORTAL_CANCEL_URL
    assert form["client_reference_id"] == topup["id"]
    assert form["metadata[topup_id]"] == topup["id"]
    assert form["metadata[tenant_id]"] == usd_tenant["id"]
    assert form["line_items[0][price_data][unit_amount]"] == "2500"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["payment_intent_data[metadata][topup_id]"] == topup["id"]
    assert "payment_intent_data[setup_future_usage]" not in form
    customer = stripe.create_customer.calls.last.response.json()
    assert form["customer"] == customer["id"]
    assert form_of(stripe.create_customer.calls.last.request)["metadata[tenant_id]"] == usd_tenant["id"]
    assert request.headers["Idempotency-Key"] == f"walletsvc:topup:{topup['id']}:checkout"
    assert request.headers["Authorization"] == f"Bearer {STRIPE_SECRET_KEY}"

    session = stripe.session_of(topup["id"])
    assert topup["checkout"] == {
        "kind": "redirect",
        "url": session["url"],
        "expires_at": session["expires_at"],
    }


async def test_stripe_customer_is_created_once_per_tenant_and_reused(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    await start_topup(client, usd_tenant["id"], 2500)
    await start_topup(client, usd_tenant["id"], 3000)

    assert stripe.create_customer.call_count == 1
    customer_id = stripe.create_customer.calls.last.response.json()["id"]
    customers = [form_of(call.request).get("customer") for call in stripe.create_session.calls]
    assert customers == [customer_id, customer_id]


async def test_save_payment_method_asks_stripe_to_keep_the_card_off_session(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500, save_payment_method=True)

    assert topup["save_payment_method"] is True
    form = form_of(stripe.create_session.calls.last.request)
    assert form["payment_intent_data[setup_future_usage]"] == "off_session"


async def test_client_secret_checkout_creates_a_payment_intent_for_stripe_elements(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(
        client, usd_tenant["id"], 4200, checkout="client_secret", save_payment_method=True
    )

    assert stripe.create_session.call_count == 0
    request = stripe.create_intent.calls.last.request
    form = form_of(request)
    assert form["amount"] == "4200"
    assert form["currency"] == "usd"
    assert form["metadata[topup_id]"] == topup["id"]
    assert form["metadata[tenant_id]"] == usd_tenant["id"]
    assert form["setup_future_usage"] == "off_session"
    assert form["customer"] == stripe.create_customer.calls.last.response.json()["id"]
    assert request.headers["Idempotency-Key"] == f"walletsvc:topup:{topup['id']}:checkout"
    intent = stripe.intent_of(topup["id"])
    assert topup["checkout_kind"] == "client_secret"
    assert topup["checkout"] == {
        "kind": "client_secret",
        "client_secret": intent["client_secret"],
        "publishable_key": STRIPE_PUBLISHABLE_KEY,
        "payment_intent_id": intent["id"],
    }


async def test_client_secret_topup_is_credited_by_payment_intent_succeeded(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 4200, checkout="client_secret")
    intent = stripe.succeed_intent(stripe.intent_of(topup["id"])["id"])

    hook = await send_event(client, "payment_intent.succeeded", intent)

    assert hook.status_code == 200, hook.text
    rows = await ledger_rows(client, usd_tenant["id"])
    assert [(r["amount"]["amount"], r["reference"]["id"]) for r in rows] == [(4200, topup["id"])]


async def test_topup_answer_names_the_checkout_kind_and_no_provider_or_secret(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    response = await client.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(usd_tenant["id"]))
    secret_answer = await client.post(
        "/v1/topups",
        json={"amount": 2500, "checkout": "client_secret"},
        headers=owner_headers(usd_tenant["id"]),
    )

    for answer in (response, secret_answer):
        assert answer.status_code == 201, answer.text
        assert STRIPE_SECRET_KEY not in answer.text
        assert STRIPE_WEBHOOK_SECRET not in answer.text
        body = answer.json()
        assert "provider" not in body
        # The checkout says what to show, not whose it is: the only mention of Stripe may be the
        # hosted page's own address, which Stripe chooses.
        named = {k: v for k, v in body["checkout"].items() if k != "url"}
        assert "stripe" not in str(named).lower()
        assert "stripe" not in str(list(body["checkout"])).lower()
    assert response.json()["checkout"]["kind"] == "redirect"
    assert secret_answer.json()["checkout"]["kind"] == "client_secret"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({"amount": 499}, 422, "BELOW_MINIMUM", id="below-minimum"),
        pytest.param({"amount": 1_000_001}, 422, "ABOVE_MAXIMUM", id="above-maximum"),
        pytest.param({"amount": 2500, "currency": "EUR"}, 422, "CURRENCY_MISMATCH", id="other-currency"),
    ],
)
async def test_topup_outside_the_rules_is_refused_before_stripe_is_called(
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    usd_tenant: dict[str, Any],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await client.post("/v1/topups", json=body, headers=owner_headers(usd_tenant["id"]))

    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.headers["content-type"].startswith("application/problem+json")
    assert len(stripe.router.calls) == 0
    listed = await client.get("/v1/topups", headers=owner_headers(usd_tenant["id"]))
    assert listed.json()["data"] == []


async def test_minimum_topup_is_accepted(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 500)
    assert topup["amount"]["amount"] == 500


async def test_member_cannot_start_a_topup(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/topups", json={"amount": 2500}, headers=member_headers(usd_tenant["id"])
    )

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "FORBIDDEN"
    assert len(stripe.router.calls) == 0


# --- the browser's return --------------------------------------------------------------------------------


async def test_return_from_a_paid_checkout_credits_and_redirects_to_the_portal(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])

    response = await return_from_checkout(client, session["id"])

    location, query = redirect_of(response)
    assert location.startswith(PORTAL_SUCCESS_URL.split("?")[0])
    assert query == {"topup": "success", "topup_id": topup["id"], "status": "succeeded"}
    assert stripe.retrieve_session.calls.last.request.url.path == f"/v1/checkout/sessions/{session['id']}"
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


async def test_return_from_an_unpaid_checkout_leaves_the_topup_pending(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.complete_unpaid(stripe.session_of(topup["id"])["id"])

    response = await return_from_checkout(client, session["id"])

    location, query = redirect_of(response)
    assert location.startswith(PORTAL_SUCCESS_URL.split("?")[0])
    assert query["status"] == "pending"
    assert query["topup_id"] == topup["id"]
    assert await balance_of(client, usd_tenant["id"]) == 0
    assert await ledger_rows(client, usd_tenant["id"]) == []


async def test_return_from_an_expired_checkout_goes_to_the_cancel_page(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.expire(stripe.session_of(topup["id"])["id"])

    response = await return_from_checkout(client, session["id"])

    location, query = redirect_of(response)
    assert location.startswith(PORTAL_CANCEL_URL.split("?")[0])
    assert query["topup"] == "cancelled"
    assert query["status"] == "failed"
    assert await balance_of(client, usd_tenant["id"]) == 0


async def test_return_with_a_session_stripe_does_not_know_is_not_found(
    client: httpx.AsyncClient, stripe: FakeStripe
) -> None:
    response = await return_from_checkout(client, "cs_test_nosuchsession")

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "NOT_FOUND"


# --- exactly once ----------------------------------------------------------------------------------------


async def test_return_then_webhook_credits_once(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])

    redirect_of(await return_from_checkout(client, session["id"]))
    hook = await send_event(client, "checkout.session.completed", session)

    assert hook.status_code == 200, hook.text
    assert hook.json()["outcome"] == "top-up succeeded"
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


async def test_webhook_then_return_credits_once(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])

    hook = await send_event(client, "checkout.session.completed", session)
    _, query = redirect_of(await return_from_checkout(client, session["id"]))

    assert hook.status_code == 200, hook.text
    assert query["status"] == "succeeded"
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


async def test_the_same_webhook_twice_credits_once_and_answers_duplicate(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])

    first = await send_event(
        client, "checkout.session.completed", session, event_id="evt_same_" + topup["id"]
    )
    again = await send_event(
        client, "checkout.session.completed", session, event_id="evt_same_" + topup["id"]
    )

    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "top-up succeeded"
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "duplicate"
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


async def test_payment_failed_before_session_completed_still_credits(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    declined = stripe.intent_for_session(session, status="requires_payment_method")

    failed = await send_event(client, "payment_intent.payment_failed", declined)
    assert failed.status_code == 200, failed.text
    assert (await topup_detail(client, usd_tenant["id"], topup["id"]))["status"] == "failed"
    completed = await send_event(client, "checkout.session.completed", session)

    assert completed.status_code == 200, completed.text
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


async def test_payment_failed_after_success_leaves_the_topup_succeeded(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])

    await send_event(client, "checkout.session.completed", session)
    late = await send_event(
        client,
        "payment_intent.payment_failed",
        stripe.intent_for_session(session, status="requires_payment_method"),
    )

    assert late.status_code == 200, late.text
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)
    history = [e["kind"] for e in (await topup_detail(client, usd_tenant["id"], topup["id"]))["history"]]
    assert "payment_failed" in history


async def test_session_completed_and_payment_intent_succeeded_credit_once(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])

    intent_hook = await send_event(client, "payment_intent.succeeded", stripe.intent_for_session(session))
    session_hook = await send_event(client, "checkout.session.completed", session)

    assert intent_hook.status_code == session_hook.status_code == 200
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


async def test_delayed_payment_is_credited_when_stripe_says_it_succeeded(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session_id = stripe.session_of(topup["id"])["id"]

    completed = await send_event(client, "checkout.session.completed", stripe.complete_unpaid(session_id))
    assert completed.json()["outcome"] == "top-up pending"
    assert await balance_of(client, usd_tenant["id"]) == 0
    paid = await send_event(client, "checkout.session.async_payment_succeeded", stripe.pay(session_id))

    assert paid.json()["outcome"] == "top-up succeeded"
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


async def test_the_same_event_delivered_ten_times_at_once_credits_once(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    event_id = "evt_burst_" + topup["id"]

    answers = await asyncio.gather(
        *(send_event(client, "checkout.session.completed", session, event_id=event_id) for _ in range(10))
    )

    assert [a.status_code for a in answers] == [200] * 10
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["duplicate"] * 9 + ["top-up succeeded"]
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


async def test_every_confirmation_path_at_once_credits_once(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    intent = stripe.intent_for_session(session)

    answers = await asyncio.gather(
        *(return_from_checkout(client, session["id"]) for _ in range(3)),
        *(send_event(client, "checkout.session.completed", session) for _ in range(3)),
        *(send_event(client, "payment_intent.succeeded", intent) for _ in range(3)),
    )

    assert [a.status_code for a in answers] == [303] * 3 + [200] * 6
    await credited_once(client, usd_tenant["id"], topup["id"], 2500)


# --- what Stripe confirms is what is credited --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason_mentions"),
    [
        pytest.param({"amount_total": 2000}, "20.00", id="amount"),
        pytest.param({"currency": "eur"}, "EUR", id="currency"),
    ],
)
async def test_paid_session_that_differs_from_the_topup_is_flagged_not_credited(
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    usd_tenant: dict[str, Any],
    change: dict[str, Any],
    reason_mentions: str,
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"], **change)

    _, query = redirect_of(await return_from_checkout(client, session["id"]))
    hook = await send_event(client, "checkout.session.completed", session)

    assert query["status"] == "flagged"
    assert hook.status_code == 200, hook.text
    assert await balance_of(client, usd_tenant["id"]) == 0
    assert await ledger_rows(client, usd_tenant["id"]) == []
    detail = await topup_detail(client, usd_tenant["id"], topup["id"])
    assert detail["status"] == "flagged"
    assert detail["credited"] is None
    assert reason_mentions in detail["status_reason"]
    assert "flagged" in [e["kind"] for e in detail["history"]]


# --- provider faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(stripe_error(500, "An unknown error occurred", error_type="api_error"), id="5xx"),
        pytest.param(httpx.ConnectTimeout("timed out"), id="timeout"),
    ],
)
async def test_stripe_failing_answers_503_and_keeps_the_topup_pending(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any], fault: Any
) -> None:
    stripe.create_session.mock(side_effect=[fault, fault])

    response = await client.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(usd_tenant["id"]))

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert int(response.headers["Retry-After"]) > 0
    # The SDK retried once, with the same idempotency key: Stripe would make one session of both.
    keys = [call.request.headers["Idempotency-Key"] for call in stripe.create_session.calls]
    assert len(keys) == 2
    assert len(set(keys)) == 1
    assert keys[0].startswith("walletsvc:topup:top_")
    listed = (await client.get("/v1/topups", headers=owner_headers(usd_tenant["id"]))).json()["data"]
    assert [(t["status"], t["amount"]["amount"]) for t in listed] == [("pending", 2500)]
    assert keys[0] == f"walletsvc:topup:{listed[0]['id']}:checkout"
    detail = await topup_detail(client, usd_tenant["id"], listed[0]["id"])
    assert "checkout_failed" in [e["kind"] for e in detail["history"]]
    assert await balance_of(client, usd_tenant["id"]) == 0


async def test_stripe_down_at_a_tenants_first_topup_still_keeps_the_topup_pending(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    timeout = httpx.ConnectTimeout("timed out")
    stripe.create_customer.mock(side_effect=[timeout, timeout])

    response = await client.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(usd_tenant["id"]))

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "PROVIDER_UNAVAILABLE"
    listed = (await client.get("/v1/topups", headers=owner_headers(usd_tenant["id"]))).json()["data"]
    assert [t["status"] for t in listed] == ["pending"]


async def test_repeated_stripe_failures_open_the_circuit(
    settings: Settings, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    app = create_app(settings.model_copy(update={"provider_circuit_failures": 2}), database=db)
    tenant = await create_tenant(currency="USD", country="USA")
    stripe.create_session.mock(
        return_value=stripe_error(500, "An unknown error occurred", error_type="api_error")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://walletsvc.test"
    ) as c:
        for _ in range(2):
            failed = await c.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(tenant["id"]))
            assert failed.status_code == 503, failed.text
        calls_before = len(stripe.router.calls)
        assert calls_before > 0

        refused = await c.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(tenant["id"]))

    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert "circuit" in refused.json()["detail"]
    assert refused.headers["Retry-After"]
    assert len(stripe.router.calls) == calls_before


async def test_without_a_stripe_key_topups_answer_provider_not_configured_and_write_nothing(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    stripe: FakeStripe,
    usd_tenant: dict[str, Any],
) -> None:
    app = create_app(settings.model_copy(update={"stripe_secret_key": None}), database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://walletsvc.test"
    ) as c:
        response = await c.post("/v1/topups", json={"amount": 2500}, headers=owner_headers(usd_tenant["id"]))
        back = await c.get("/v1/topups/stripe/return", params={"session_id": "cs_test_anything"})

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "PROVIDER_NOT_CONFIGURED"
    assert back.status_code == 503, back.text
    assert back.json()["code"] == "PROVIDER_NOT_CONFIGURED"
    assert len(stripe.router.calls) == 0
    listed = await client.get("/v1/topups", headers=owner_headers(usd_tenant["id"]))
    assert listed.json()["data"] == []


async def test_return_while_stripe_is_down_sends_the_browser_to_the_portal_as_pending(
    client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    topup = await start_topup(client, usd_tenant["id"], 2500)
    session = stripe.pay(stripe.session_of(topup["id"])["id"])
    stripe.retrieve_session.mock(side_effect=httpx.ConnectTimeout("timed out"))

    location, query = redirect_of(await return_from_checkout(client, session["id"]))

    assert location.startswith(PORTAL_SUCCESS_URL.split("?")[0])
    assert query["status"] == "pending"
    assert await balance_of(client, usd_tenant["id"]) == 0


# --- reconciliation ----------------------------------------------------------------------------------------


async def test_reconcile_credits_a_paid_pending_topup_once(
    app: Any, db: Database, client: httpx.AsyncClient, stripe: FakeStripe, usd_tenant: dict[str, Any]
) -> None:
    # reconcile looks at every pending top-up in the database, other tests' too: anything this fake
    # Stripe does not know it answers 404 (so they stay as they are), and Razorpay is answered 404.
    stripe.router.route(host="razorpay.test").respond(
        404,
        json={"error": {"code": "BAD_REQUEST_ERROR", "description": "The id provided does not exist"}},
    )
    redirect = await start_topup(client, usd_tenant["id"], 2500)
    elements = await start_topup(client, usd_tenant["id"], 1500, checkout="client_secret")
    unpaid = await start_topup(client, usd_tenant["id"], 900)
    stripe.pay(stripe.session_of(redirect["id"])["id"])
    stripe.succeed_intent(stripe.intent_of(elements["id"])["id"])

    first = await reconcile(
        db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy
    )
    second = await reconcile(
        db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy
    )

    assert first.credited == 2
    rows = await ledger_rows(client, usd_tenant["id"])
    assert sorted((r["reference"]["id"], r["amount"]["amount"]) for r in rows) == sorted(
        [(redirect["id"], 2500), (elements["id"], 1500)]
    )
    assert await balance_of(client, usd_tenant["id"]) == 4000
    assert (await topup_detail(client, usd_tenant["id"], unpaid["id"]))["status"] == "pending"
    assert second.credited == 0
    # A webhook after reconciliation changes nothing either.
    late = await send_event(client, "checkout.session.completed", stripe.session_of(redirect["id"]))
    assert late.status_code == 200, late.text
    assert len(await ledger_rows(client, usd_tenant["id"])) == 2
    assert await balance_of(client, usd_tenant["id"]) == 4000
