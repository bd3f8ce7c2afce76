"""INR auto top-up on a Razorpay recurring mandate (card or UPI AutoPay): registered through an
authorization payment, usable on `token.confirmed` (or on reconcile's look at the token when Razorpay's
webhooks were lost), debited once per auto top-up however often the job runs, credited once whichever of
the runner, the webhooks and reconcile tells, even when the mandate was deleted meanwhile; a payment link
where the mandate cannot be used; the default mandate is the one auto top-up debits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.auto_topup import (
    FAILS,
    PRE_DEBIT,
    REFUSES,
    FakeMandates,
    FakePaymentLinks,
    attempts_of,
    cancel_unstarted,
    end_pause,
    payment_link_event,
    put_auto_topup,
    register_mandate,
    run_created,
    send_token_event,
    token_entity,
)
from tests.fixtures.events import stored_events
from tests.fixtures.razorpay_flow import FakeRazorpay, balance, deliver, payment_event
from tests.fixtures.tenants import TenantFactory
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.auto_topup import AutoTopupStatus
from walletsvc.domain.errors import ProviderUnavailable
from walletsvc.services.reconcile import reconcile

START = 20_000  # Rs 200.00
AUTH = 100  # the authorization payment, credited like any top-up


@pytest.fixture(autouse=True)
async def _no_attempt_left_behind(db: Database) -> AsyncIterator[None]:
    yield
    await cancel_unstarted(db)


@pytest.fixture
def mandates(razorpay: FakeRazorpay) -> FakeMandates:
    return FakeMandates(razorpay)


@pytest.fixture
async def links(razorpay: FakeRazorpay, client: httpx.AsyncClient) -> AsyncIterator[FakePaymentLinks]:
    fake = FakePaymentLinks(razorpay)
    yield fake
    # A link left waiting would be read by a later test's reconcile (one database per session), at a
    # Razorpay that is not faked then: each expires, as Razorpay would say.
    for link in fake.links.values():
        if link["status"] == "created":
            link["status"] = "expired"
            answer = await deliver(client, payment_link_event("payment_link.expired", link))
            assert answer.status_code == 200, answer.text


@pytest.fixture
async def inr_tenant(
    create_tenant: TenantFactory, client: httpx.AsyncClient, no_bonus_rules_left_on: None
) -> str:
    tenant = str((await create_tenant(currency="INR", country="IND", balance=START))["id"])
    contacts = await client.put(
        "/v1/billing-contacts", json={"emails": ["billing@acme.example"]}, headers=owner_headers(tenant)
    )
    assert contacts.status_code == 200, contacts.text
    return tenant


async def _methods(client: httpx.AsyncClient, tenant: str) -> list[dict[str, Any]]:
    listed = await client.get("/v1/payment-methods", headers=member_headers(tenant))
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


async def _enable(client: httpx.AsyncClient, tenant: str) -> None:
    """Auto top-up on, the wallet (Rs 201) already below the threshold: one starts at once."""
    enabled = await put_auto_topup(client, tenant, enabled=True, threshold=50_000, amount=100_000)
    assert enabled.status_code == 200, enabled.text


async def _debit_order(mandates: FakeMandates, razorpay: FakeRazorpay) -> str:
    (request,) = mandates.recurring_requests
    return str(request["order_id"])


async def test_a_mandate_is_registered_through_an_authorization_payment_and_listed_once_confirmed(
    client: httpx.AsyncClient, razorpay: FakeRazorpay, mandates: FakeMandates, inr_tenant: str
) -> None:
    headers = {**owner_headers(inr_tenant), "Idempotency-Key": "register-1"}
    first = await client.post("/v1/payment-methods/setup", json={"method": "upi"}, headers=headers)
    assert first.status_code == 201, first.text
    setup = first.json()
    assert setup["kind"] == "razorpay_mandate"
    assert setup["recurring"] == "1"
    assert setup["key_id"].startswith("rzp_")
    assert setup["customer_id"].startswith("cust_")
    assert setup["amount"] == {"amount": AUTH, "currency": "INR"}
    again = await client.post("/v1/payment-methods/setup", json={"method": "upi"}, headers=headers)
    assert again.json()["order_id"] == setup["order_id"]  # a retry: the same order, one customer
    assert len(razorpay.order_requests) == 1
    assert len(mandates.customer_requests) == 1
    assert mandates.customer_requests[0]["fail_existing"] == "0"
    order = mandates.order_request(setup["order_id"])
    assert order["customer_id"] == setup["customer_id"]
    assert order["method"] == "upi"
    assert order["amount"] == AUTH
    assert order["receipt"] == setup["topup_id"]
    assert order["token"]["frequency"] == "as_presented"
    assert order["token"]["max_amount"] == 1_500_000
    assert order["token"]["expire_at"] == int(datetime.fromisoformat(setup["expires_at"]).timestamp())

    (pending,) = await _methods(client, inr_tenant)
    assert (pending["id"], pending["status"], pending["provider"]) == (
        setup["payment_method_id"],
        "pending",
        "razorpay",
    )

    token_id = "token_Upi0000000000a"
    payment = razorpay.pay(setup["order_id"])
    payment.update(recurring=True, token_id=token_id, customer_id=setup["customer_id"])
    assert (await deliver(client, payment_event("payment.captured", payment))).status_code == 200
    assert await balance(client, inr_tenant) == START + AUTH  # the authorization payment is the tenant's
    (still,) = await _methods(client, inr_tenant)
    assert still["status"] == "pending"  # the bank has not confirmed the mandate yet

    await send_token_event(client, "token.confirmed", token_entity(token_id, method="upi"))
    (method,) = await _methods(client, inr_tenant)
    assert method["status"] == "active"
    assert method["kind"] == "upi"
    assert method["vpa"] == "ga****@okhdfcbank"
    assert method["max_amount"] == {"amount": 1_500_000, "currency": "INR"}
    assert method["default"] is True
    assert token_id not in json.dumps(method)  # the token stays walletsvc's


async def test_a_charge_across_the_threshold_debits_the_mandate_once_and_credits_once(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    setup, token_id = await register_mandate(client, razorpay, inr_tenant)
    (card,) = await _methods(client, inr_tenant)
    assert (card["brand"], card["last4"], card["exp_month"], card["exp_year"]) == ("RuPay", "8950", 12, 2031)
    enabled = await put_auto_topup(client, inr_tenant, enabled=True, threshold=50_000, amount=100_000)
    assert enabled.status_code == 200, enabled.text
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.SUCCEEDED]

    (request,) = mandates.recurring_requests
    (attempt,) = await attempts_of(db, inr_tenant)
    assert request["token"] == token_id
    assert request["customer_id"] == setup["customer_id"]
    assert request["recurring"] == "1"
    assert request["amount"] == 100_000
    assert razorpay.orders[request["order_id"]]["receipt"] == attempt["topup_id"]
    assert attempt["payment_method_id"] == setup["payment_method_id"]
    assert await balance(client, inr_tenant) == START + AUTH + 100_000

    # Razorpay's own word arrives too (twice, as Razorpay retries), and reconcile looks: nothing more.
    (debit,) = mandates.debits(request["order_id"])
    order = razorpay.orders[request["order_id"]]
    for event in ("payment.captured", "order.paid", "payment.captured"):
        assert (await deliver(client, payment_event(event, debit, order))).status_code == 200
    report = await reconcile(
        db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy, settings=settings
    )
    assert report.errors == []
    assert await balance(client, inr_tenant) == START + AUTH + 100_000
    assert len(mandates.recurring_requests) == 1
    types = [e["type"] for e in await stored_events(db, inr_tenant) if e["type"].startswith("auto_topup.")]
    assert types == ["auto_topup.succeeded"]


async def test_a_crash_after_razorpay_made_the_debit_resumes_without_a_second_payment(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    await register_mandate(client, razorpay, inr_tenant)
    mandates.lose_next_answer = True  # Razorpay makes the payment; its answer never reaches walletsvc
    await _enable(client, inr_tenant)
    with pytest.raises(ProviderUnavailable):
        await run_created(db, app.state.gateways, settings, inr_tenant)
    (attempt,) = await attempts_of(db, inr_tenant)
    assert attempt["status"] == "processing"
    assert await balance(client, inr_tenant) == START + AUTH

    # The job runs again (pgqueuer's retry, or reconcile): it finds the order and its payment.
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.SUCCEEDED]
    order_id = await _debit_order(mandates, razorpay)
    assert len(mandates.recurring_requests) == 1
    assert len(mandates.debits(order_id)) == 1
    assert len([o for o in razorpay.orders.values() if o["receipt"] == attempt["topup_id"]]) == 1
    assert await balance(client, inr_tenant) == START + AUTH + 100_000


async def test_a_upi_debit_waiting_for_its_pre_debit_notice_is_finished_by_the_webhook(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    await register_mandate(client, razorpay, inr_tenant, method="upi")
    mandates.outcome = PRE_DEBIT
    await _enable(client, inr_tenant)
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.PROCESSING]
    # Waiting, it is in flight: running it again asks Razorpay for nothing new.
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.PROCESSING]
    assert len(mandates.recurring_requests) == 1
    order_id = await _debit_order(mandates, razorpay)
    (debit,) = mandates.debits(order_id)
    captured = razorpay.set_status(debit["id"], "captured")
    assert (await deliver(client, payment_event("payment.captured", captured))).status_code == 200
    await reconcile(db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy)
    assert await balance(client, inr_tenant) == START + AUTH + 100_000
    assert (await attempts_of(db, inr_tenant))[0]["status"] == "succeeded"


async def test_above_the_mandates_limit_a_payment_link_goes_instead(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    links: FakePaymentLinks,
    inr_tenant: str,
) -> None:
    await register_mandate(client, razorpay, inr_tenant, max_amount=50_000)
    await _enable(client, inr_tenant)
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [
        AutoTopupStatus.REQUIRES_ACTION
    ]
    assert mandates.recurring_requests == []
    (link,) = links.create_requests
    assert link["amount"] == 100_000


async def test_a_cancelled_mandate_falls_back_to_a_payment_link(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    links: FakePaymentLinks,
    inr_tenant: str,
) -> None:
    _, token_id = await register_mandate(client, razorpay, inr_tenant)
    await send_token_event(client, "token.cancelled", token_entity(token_id, status="cancelled"))
    (method,) = await _methods(client, inr_tenant)
    assert (method["status"], method["status_reason"]) == ("cancelled", "Mandate cancelled by the customer")
    await _enable(client, inr_tenant)
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [
        AutoTopupStatus.REQUIRES_ACTION
    ]
    assert mandates.recurring_requests == []
    assert len(links.create_requests) == 1


async def test_a_mandate_razorpay_refuses_to_debit_is_rejected_and_one_link_goes(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    links: FakePaymentLinks,
    inr_tenant: str,
) -> None:
    await register_mandate(client, razorpay, inr_tenant)
    mandates.outcome = REFUSES
    await _enable(client, inr_tenant)
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [
        AutoTopupStatus.REQUIRES_ACTION
    ]
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == []  # waiting on the link
    assert len(mandates.recurring_requests) == 1
    assert len(links.create_requests) == 1
    (method,) = await _methods(client, inr_tenant)
    assert method["status"] == "rejected"
    assert "cancelled" in method["status_reason"]
    (attempt,) = await attempts_of(db, inr_tenant)
    assert attempt["failure_code"] == "payment_link_sent"
    state = (await client.get("/v1/auto-topup", headers=owner_headers(inr_tenant))).json()
    assert state["consecutive_failures"] == 0  # a refused mandate is not the customer's decline


async def test_failed_debits_back_off_and_three_in_a_row_switch_auto_topup_off(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    await register_mandate(client, razorpay, inr_tenant)
    mandates.outcome = FAILS
    await _enable(client, inr_tenant)
    for expected in (1, 2, 3):
        if expected > 1:
            await end_pause(db, inr_tenant)
            assert (await put_auto_topup(client, inr_tenant, threshold=50_000 + expected)).status_code == 200
        assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.FAILED]
        state = (await client.get("/v1/auto-topup", headers=owner_headers(inr_tenant))).json()
        assert state["consecutive_failures"] == expected
    assert state["active"] is False
    assert state["disabled_reason"] == "consecutive_failures"
    failed = [e for e in await stored_events(db, inr_tenant) if e["type"] == "auto_topup.failed"]
    assert failed[0]["payload"]["reason"] == "Payment failed due to insufficient balance"
    assert failed[0]["payload"]["retry_after"] is not None
    await end_pause(db, inr_tenant)
    assert (await put_auto_topup(client, inr_tenant, threshold=50_009)).status_code == 200
    assert len(mandates.recurring_requests) == 3  # never a loop
    assert await balance(client, inr_tenant) == START + AUTH


async def test_deleting_a_mandate_cancels_its_token_at_razorpay(
    client: httpx.AsyncClient, razorpay: FakeRazorpay, mandates: FakeMandates, inr_tenant: str
) -> None:
    setup, token_id = await register_mandate(client, razorpay, inr_tenant)
    deleted = await client.delete(
        f"/v1/payment-methods/{setup['payment_method_id']}", headers=owner_headers(inr_tenant)
    )
    assert deleted.status_code == 204, deleted.text
    assert mandates.deleted_tokens == [(setup["customer_id"], token_id)]
    assert await _methods(client, inr_tenant) == []
    # Razorpay's own word of the cancellation changes nothing more.
    await send_token_event(client, "token.cancelled", token_entity(token_id, status="cancelled"))
    assert await _methods(client, inr_tenant) == []


# --- what reconcile finishes when Razorpay's word is lost -------------------------------------------------


async def _reconcile(app: Any, db: Database, settings: Settings) -> Any:
    report = await reconcile(
        db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy, settings=settings
    )
    assert report.errors == []
    return report


async def _age_registration(db: Database, mandate_id: str, *, hours: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE payment_methods SET created_at = created_at - make_interval(hours => :h),"
                " updated_at = updated_at - make_interval(hours => :h) WHERE id = :id"
            ),
            {"h": hours, "id": mandate_id},
        )


async def test_reconcile_confirms_a_mandate_whose_payment_webhook_and_token_confirmed_were_both_lost(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    setup = (
        await client.post("/v1/payment-methods/setup", json={}, headers=owner_headers(inr_tenant))
    ).json()
    token_id = "token_Lost00000000a"
    payment = razorpay.pay(setup["order_id"])  # paid in Checkout; neither webhook ever arrives
    payment.update(method="card", recurring=True, token_id=token_id, customer_id=setup["customer_id"])
    mandates.tokens[token_id] = token_entity(token_id)

    report = await _reconcile(app, db, settings)
    assert report.mandates_updated == 1
    assert mandates.token_fetches == [(setup["customer_id"], token_id)]
    (method,) = await _methods(client, inr_tenant)
    assert (method["id"], method["status"], method["brand"], method["last4"]) == (
        setup["payment_method_id"],
        "active",
        "RuPay",
        "8950",
    )
    assert method["default"] is True
    assert await balance(client, inr_tenant) == START + AUTH  # the authorization payment, credited once
    again = await _reconcile(app, db, settings)
    assert again.mandates_updated == 0
    assert len(mandates.token_fetches) == 1  # an active mandate is not asked about again

    await _enable(client, inr_tenant)  # and auto top-up debits it
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.SUCCEEDED]
    (request,) = mandates.recurring_requests
    assert request["token"] == token_id
    assert await balance(client, inr_tenant) == START + AUTH + 100_000


async def test_a_token_event_before_its_payment_is_answered_2xx_and_reconcile_records_it(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    setup = (
        await client.post(
            "/v1/payment-methods/setup", json={"method": "upi"}, headers=owner_headers(inr_tenant)
        )
    ).json()
    token_id = "token_Early0000000a"
    rejected = token_entity(token_id, status="rejected", method="upi")
    rejected["recurring_details"]["failure_reason"] = "Mandate registration declined by the bank"
    mandates.tokens[token_id] = rejected
    # Razorpay's token event overtakes the payment's: walletsvc cannot place it yet, and says 2xx.
    answer = await send_token_event(client, "token.rejected", rejected)
    assert "reconcile" in answer.text
    (method,) = await _methods(client, inr_tenant)
    assert method["status"] == "pending"

    payment = razorpay.pay(setup["order_id"])
    payment.update(method="upi", recurring=True, token_id=token_id, customer_id=setup["customer_id"])
    assert (await deliver(client, payment_event("payment.captured", payment))).status_code == 200
    report = await _reconcile(app, db, settings)
    assert report.mandates_updated == 1
    (method,) = await _methods(client, inr_tenant)
    assert (method["status"], method["status_reason"]) == (
        "rejected",
        "Mandate registration declined by the bank",
    )
    assert method["default"] is False


async def test_a_registration_nobody_paid_expires_after_a_day_but_one_being_paid_waits(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    headers = owner_headers(inr_tenant)
    abandoned = (await client.post("/v1/payment-methods/setup", json={}, headers=headers)).json()
    approving = (
        await client.post("/v1/payment-methods/setup", json={"method": "upi"}, headers=headers)
    ).json()
    razorpay.pay(abandoned["order_id"], status="failed")  # a failed try does not keep it
    razorpay.pay(approving["order_id"], status="authorized")  # waiting for the customer's UPI app
    assert (await _reconcile(app, db, settings)).mandates_updated == 0  # young: both wait
    for setup in (abandoned, approving):
        await _age_registration(db, setup["payment_method_id"], hours=25)

    assert (await _reconcile(app, db, settings)).mandates_updated == 1
    statuses = {m["id"]: (m["status"], m["status_reason"]) for m in await _methods(client, inr_tenant)}
    assert statuses[abandoned["payment_method_id"]][0] == "expired"
    assert "never made" in str(statuses[abandoned["payment_method_id"]][1])
    assert statuses[approving["payment_method_id"]] == ("pending", None)
    made_default = await client.put(
        f"/v1/payment-methods/{abandoned['payment_method_id']}/default", headers=headers
    )
    assert made_default.status_code == 404, made_default.text
    assert mandates.token_fetches == []


# --- a mandate deleted while its debit is under way -------------------------------------------------------


async def _delete(client: httpx.AsyncClient, tenant: str, mandate_id: str) -> None:
    deleted = await client.delete(f"/v1/payment-methods/{mandate_id}", headers=owner_headers(tenant))
    assert deleted.status_code == 204, deleted.text


async def test_a_mandate_deleted_while_its_upi_debit_waits_is_finished_by_the_webhook(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    setup, _ = await register_mandate(client, razorpay, inr_tenant, method="upi")
    mandates.outcome = PRE_DEBIT
    await _enable(client, inr_tenant)
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.PROCESSING]
    await _delete(client, inr_tenant, setup["payment_method_id"])
    (debit,) = mandates.debits(await _debit_order(mandates, razorpay))
    captured = razorpay.set_status(debit["id"], "captured")
    assert (await deliver(client, payment_event("payment.captured", captured))).status_code == 200
    assert await balance(client, inr_tenant) == START + AUTH + 100_000
    (attempt,) = await attempts_of(db, inr_tenant)
    assert attempt["status"] == "succeeded"
    assert await _methods(client, inr_tenant) == []


@pytest.mark.parametrize(
    ("outcome", "expected", "credited"), [("captured", "succeeded", 100_000), ("failed", "failed", 0)]
)
async def test_reconcile_finishes_a_debit_whose_mandate_was_deleted_from_the_orders_payments(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
    outcome: str,
    expected: str,
    credited: int,
) -> None:
    setup, _ = await register_mandate(client, razorpay, inr_tenant, method="upi")
    mandates.outcome = PRE_DEBIT
    await _enable(client, inr_tenant)
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.PROCESSING]
    await _delete(client, inr_tenant, setup["payment_method_id"])
    (debit,) = mandates.debits(await _debit_order(mandates, razorpay))
    razorpay.set_status(debit["id"], outcome)  # Razorpay's webhook about it is lost
    if outcome == "failed":
        debit.update(error_description="Mandate revoked by the customer", error_code="BAD_REQUEST_ERROR")

    await _reconcile(app, db, settings)
    (attempt,) = await attempts_of(db, inr_tenant)
    assert attempt["status"] == expected
    assert await balance(client, inr_tenant) == START + AUTH + credited
    assert len(mandates.recurring_requests) == 1  # read, never asked again
    assert await _methods(client, inr_tenant) == []  # still deleted


async def test_a_debit_never_sent_before_its_mandate_was_deleted_sends_a_payment_link_instead(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    links: FakePaymentLinks,
    inr_tenant: str,
) -> None:
    setup, _ = await register_mandate(client, razorpay, inr_tenant)
    razorpay.down = True  # the intent is committed; the debit's order is never made
    await _enable(client, inr_tenant)
    with pytest.raises(ProviderUnavailable):
        await run_created(db, app.state.gateways, settings, inr_tenant)
    razorpay.down = False
    await _delete(client, inr_tenant, setup["payment_method_id"])

    report = await _reconcile(app, db, settings)
    assert report.auto_topups_resumed == 1
    assert mandates.recurring_requests == []  # a deleted mandate is never debited
    (link,) = links.create_requests
    assert link["amount"] == 100_000
    (attempt,) = await attempts_of(db, inr_tenant)
    assert attempt["status"] == "requires_action"
    assert await _methods(client, inr_tenant) == []  # deleted stays deleted, not "rejected"


# --- the default mandate ----------------------------------------------------------------------------------


async def test_the_default_mandate_is_the_one_auto_topup_debits_unless_the_settings_name_one(
    client: httpx.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    razorpay: FakeRazorpay,
    mandates: FakeMandates,
    inr_tenant: str,
) -> None:
    headers = owner_headers(inr_tenant)
    older, older_token = await register_mandate(client, razorpay, inr_tenant)
    newer, _ = await register_mandate(client, razorpay, inr_tenant, method="upi")
    pending, _ = await register_mandate(client, razorpay, inr_tenant, confirm=False)
    defaults = {m["id"]: m["default"] for m in await _methods(client, inr_tenant)}
    assert defaults == {
        older["payment_method_id"]: False,
        newer["payment_method_id"]: True,
        pending["payment_method_id"]: False,
    }

    chosen = await client.put(f"/v1/payment-methods/{older['payment_method_id']}/default", headers=headers)
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["default"] is True
    defaults = {m["id"]: m["default"] for m in await _methods(client, inr_tenant)}
    assert [k for k, v in defaults.items() if v] == [older["payment_method_id"]]
    refused = await client.put(f"/v1/payment-methods/{pending['payment_method_id']}/default", headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "CONFLICT"
    forbidden = await client.put(
        f"/v1/payment-methods/{older['payment_method_id']}/default", headers=member_headers(inr_tenant)
    )
    assert forbidden.status_code == 403

    await _enable(client, inr_tenant)
    assert await run_created(db, app.state.gateways, settings, inr_tenant) == [AutoTopupStatus.SUCCEEDED]
    (request,) = mandates.recurring_requests
    assert request["token"] == older_token

    await _delete(client, inr_tenant, older["payment_method_id"])  # the newest active one is used again
    defaults = {m["id"]: m["default"] for m in await _methods(client, inr_tenant)}
    assert defaults == {newer["payment_method_id"]: True, pending["payment_method_id"]: False}
