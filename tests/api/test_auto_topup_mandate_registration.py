"""A Razorpay recurring mandate (card or UPI AutoPay) for INR auto top-up: registered through an
authorization payment, usable on `token.confirmed` (or on reconcile's look at the token when Razorpay's
webhooks were lost), expired when nobody paid it, cancelled at Razorpay when deleted; the default mandate
is the one auto top-up debits. Its debits: test_auto_topup_mandate_debits.py."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import text

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.auto_topup import FakeMandates, send_token_event, token_entity
from tests.fixtures.inr_auto_topup import AMOUNT, AUTH, START, InrAutoTopup
from walletsvc.db.engine import Database
from walletsvc.domain.auto_topup import AutoTopupStatus


async def test_a_mandate_is_registered_through_an_authorization_payment_and_listed_once_confirmed(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    headers = {**owner_headers(inr.tenant), "Idempotency-Key": "register-1"}
    first = await inr.client.post("/v1/payment-methods/setup", json={"method": "upi"}, headers=headers)
    assert first.status_code == 201, first.text
    setup = first.json()
    assert setup["kind"] == "razorpay_mandate"
    assert setup["recurring"] == "1"
    assert setup["key_id"].startswith("rzp_")
    assert setup["customer_id"].startswith("cust_")
    assert setup["amount"] == {"amount": AUTH, "currency": "INR"}
    again = await inr.client.post("/v1/payment-methods/setup", json={"method": "upi"}, headers=headers)
    assert again.json()["order_id"] == setup["order_id"]  # a retry: the same order, one customer
    assert len(inr.razorpay.order_requests) == 1
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

    (pending,) = await inr.methods()
    assert (pending["id"], pending["status"], pending["provider"]) == (
        setup["payment_method_id"],
        "pending",
        "razorpay",
    )

    token_id = "token_Upi0000000000a"
    payment = inr.razorpay.pay(setup["order_id"])
    payment.update(recurring=True, token_id=token_id, customer_id=setup["customer_id"])
    await inr.deliver_payment("payment.captured", payment)
    assert await inr.balance() == START + AUTH  # the authorization payment is the tenant's
    (still,) = await inr.methods()
    assert still["status"] == "pending"  # the bank has not confirmed the mandate yet

    await send_token_event(inr.client, "token.confirmed", token_entity(token_id, method="upi"))
    (method,) = await inr.methods()
    assert method["status"] == "active"
    assert method["kind"] == "upi"
    assert method["vpa"] == "ga****@okhdfcbank"
    assert method["max_amount"] == {"amount": 1_500_000, "currency": "INR"}
    assert method["default"] is True
    assert token_id not in json.dumps(method)  # the token stays walletsvc's


async def test_deleting_a_mandate_cancels_its_token_at_razorpay(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    setup, token_id = await inr.register()
    await inr.delete(setup["payment_method_id"])
    assert mandates.deleted_tokens == [(setup["customer_id"], token_id)]
    assert await inr.methods() == []
    # Razorpay's own word of the cancellation changes nothing more.
    await send_token_event(inr.client, "token.cancelled", token_entity(token_id, status="cancelled"))
    assert await inr.methods() == []


# --- what reconcile finishes when Razorpay's word is lost -------------------------------------------------


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
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    setup = await inr.setup()
    token_id = "token_Lost00000000a"
    payment = inr.razorpay.pay(setup["order_id"])  # paid in Checkout; neither webhook ever arrives
    payment.update(method="card", recurring=True, token_id=token_id, customer_id=setup["customer_id"])
    mandates.tokens[token_id] = token_entity(token_id)

    report = await inr.reconcile()
    assert report.mandates_updated == 1
    assert mandates.token_fetches == [(setup["customer_id"], token_id)]
    (method,) = await inr.methods()
    assert (method["id"], method["status"], method["brand"], method["last4"]) == (
        setup["payment_method_id"],
        "active",
        "RuPay",
        "8950",
    )
    assert method["default"] is True
    assert await inr.balance() == START + AUTH  # the authorization payment, credited once
    again = await inr.reconcile()
    assert again.mandates_updated == 0
    assert len(mandates.token_fetches) == 1  # an active mandate is not asked about again

    await inr.enable()  # and auto top-up debits it
    assert await inr.run() == [AutoTopupStatus.SUCCEEDED]
    (request,) = mandates.recurring_requests
    assert request["token"] == token_id
    assert await inr.balance() == START + AUTH + AMOUNT


async def test_a_token_event_before_its_payment_is_answered_2xx_and_reconcile_records_it(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    setup = await inr.setup(method="upi")
    token_id = "token_Early0000000a"
    rejected = token_entity(token_id, status="rejected", method="upi")
    rejected["recurring_details"]["failure_reason"] = "Mandate registration declined by the bank"
    mandates.tokens[token_id] = rejected
    # Razorpay's token event overtakes the payment's: walletsvc cannot place it yet, and says 2xx.
    answer = await send_token_event(inr.client, "token.rejected", rejected)
    assert "reconcile" in answer.text
    (method,) = await inr.methods()
    assert method["status"] == "pending"

    payment = inr.razorpay.pay(setup["order_id"])
    payment.update(method="upi", recurring=True, token_id=token_id, customer_id=setup["customer_id"])
    await inr.deliver_payment("payment.captured", payment)
    report = await inr.reconcile()
    assert report.mandates_updated == 1
    (method,) = await inr.methods()
    assert (method["status"], method["status_reason"]) == (
        "rejected",
        "Mandate registration declined by the bank",
    )
    assert method["default"] is False


async def test_a_registration_nobody_paid_expires_after_a_day_but_one_being_paid_waits(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    abandoned = await inr.setup()
    approving = await inr.setup(method="upi")
    inr.razorpay.pay(abandoned["order_id"], status="failed")  # a failed try does not keep it
    inr.razorpay.pay(approving["order_id"], status="authorized")  # waiting for the customer's UPI app
    assert (await inr.reconcile()).mandates_updated == 0  # young: both wait
    for setup in (abandoned, approving):
        await _age_registration(inr.db, setup["payment_method_id"], hours=25)

    assert (await inr.reconcile()).mandates_updated == 1
    statuses = {m["id"]: (m["status"], m["status_reason"]) for m in await inr.methods()}
    assert statuses[abandoned["payment_method_id"]][0] == "expired"
    assert "never made" in str(statuses[abandoned["payment_method_id"]][1])
    assert statuses[approving["payment_method_id"]] == ("pending", None)
    made_default = await inr.client.put(
        f"/v1/payment-methods/{abandoned['payment_method_id']}/default", headers=owner_headers(inr.tenant)
    )
    assert made_default.status_code == 404, made_default.text
    assert mandates.token_fetches == []
    # Its authorization top-up is failed with it; the one being paid still waits.
    assert await _topup_status(inr, abandoned["topup_id"]) == "failed"
    assert await _topup_status(inr, approving["topup_id"]) == "pending"


async def test_an_expired_registrations_top_up_still_credits_a_late_payment_of_its_order(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    setup = await inr.setup()
    await _age_registration(inr.db, setup["payment_method_id"], hours=25)
    report = await inr.reconcile()
    assert (report.mandates_updated, report.failed) == (1, 1)
    assert await _topup_status(inr, setup["topup_id"]) == "failed"
    before = await inr.balance()
    assert (await inr.reconcile()).failed == 0  # failed once, not again

    inr.razorpay.pay(setup["order_id"])  # the customer pays the old order after all
    assert (await inr.reconcile()).credited == 1
    assert await _topup_status(inr, setup["topup_id"]) == "succeeded"
    assert await inr.balance() == before + AUTH
    assert (await inr.reconcile()).credited == 0  # credited once
    assert await inr.balance() == before + AUTH


async def _topup_status(inr: InrAutoTopup, topup_id: str) -> str:
    found = await inr.client.get(f"/v1/topups/{topup_id}", headers=member_headers(inr.tenant))
    assert found.status_code == 200, found.text
    status: str = found.json()["status"]
    return status


# --- the default mandate ----------------------------------------------------------------------------------


async def test_the_default_mandate_is_the_one_auto_topup_debits_unless_the_settings_name_one(
    inr: InrAutoTopup, mandates: FakeMandates
) -> None:
    headers = owner_headers(inr.tenant)
    older, older_token = await inr.register()
    newer, _ = await inr.register(method="upi")
    pending, _ = await inr.register(confirm=False)
    defaults = {m["id"]: m["default"] for m in await inr.methods()}
    assert defaults == {
        older["payment_method_id"]: False,
        newer["payment_method_id"]: True,
        pending["payment_method_id"]: False,
    }

    chosen = await inr.client.put(
        f"/v1/payment-methods/{older['payment_method_id']}/default", headers=headers
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["default"] is True
    defaults = {m["id"]: m["default"] for m in await inr.methods()}
    assert [k for k, v in defaults.items() if v] == [older["payment_method_id"]]
    refused = await inr.client.put(
        f"/v1/payment-methods/{pending['payment_method_id']}/default", headers=headers
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "CONFLICT"
    forbidden = await inr.client.put(
        f"/v1/payment-methods/{older['payment_method_id']}/default", headers=member_headers(inr.tenant)
    )
    assert forbidden.status_code == 403

    await inr.enable()
    assert await inr.run() == [AutoTopupStatus.SUCCEEDED]
    (request,) = mandates.recurring_requests
    assert request["token"] == older_token

    await inr.delete(older["payment_method_id"])  # the newest active one is used again
    defaults = {m["id"]: m["default"] for m in await inr.methods()}
    assert defaults == {newer["payment_method_id"]: True, pending["payment_method_id"]: False}
