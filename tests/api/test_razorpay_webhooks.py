"""Razorpay webhooks: signed with the webhook secret over the raw body, stored once per event id,
applied in whatever order they arrive, and never crediting or debiting twice."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tests.fixtures.constants import RAZORPAY_WEBHOOK_SECRET
from tests.fixtures.providers import body_of, razorpay_event, razorpay_refund, razorpay_webhook_signature, rid
from tests.fixtures.razorpay_flow import (
    FakeRazorpay,
    balance,
    deliver,
    isolated_client,
    paid_topup,
    payment_event,
    refund_event,
    start_topup,
    topup_detail,
    transactions,
    verify,
)
from tests.fixtures.tenants import TenantFactory
from walletsvc.config import Settings
from walletsvc.db import tables as t
from walletsvc.db.engine import Database

pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")


async def stored_events(db: Database, event_id: str) -> list[dict[str, Any]]:
    w = t.webhook_events.c
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(w.type, w.outcome, w.payload).where(w.provider == "razorpay", w.event_id == event_id)
            )
        ).all()
    return [dict(r._mapping) for r in rows]


async def sessions_waiting_for_a_lock(db: Database) -> int:
    async with db.engine.connect() as conn:
        waiting: int = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        ).scalar_one()
    return waiting


async def count_events_with_payment(db: Database, payment_id: str) -> int:
    w = t.webhook_events.c
    async with db.engine.connect() as conn:
        count: int = (
            await conn.execute(
                select(func.count())
                .select_from(t.webhook_events)
                .where(
                    w.provider == "razorpay",
                    w.payload["payload"]["payment"]["entity"]["id"].astext == payment_id,
                )
            )
        ).scalar_one()
    return count


async def captured_topup(
    client: httpx.AsyncClient, razorpay: FakeRazorpay, tenant_id: str, amount: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A top-up whose order the customer has paid at Razorpay; walletsvc has not heard of it yet."""
    topup = await start_topup(client, tenant_id, amount)
    payment = razorpay.pay(topup["checkout"]["order_id"], notes=topup["checkout"]["notes"])
    return topup, payment


# --- payments ------------------------------------------------------------------------------------


async def test_payment_captured_credits_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, db: Database
) -> None:
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    event_id = rid("evt")
    response = await deliver(client, payment_event("payment.captured", payment), event_id=event_id)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": event_id, "outcome": "top-up succeeded"}
    assert await balance(client, tenant["id"]) == 30_000
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "succeeded"
    assert detail["credited"] == {"amount": 30_000, "currency": "INR"}
    [stored] = await stored_events(db, event_id)
    assert stored["type"] == "payment.captured"
    assert stored["outcome"] == "top-up succeeded"


async def test_payment_captured_without_notes_is_matched_by_its_order(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 30_000)
    payment = razorpay.pay(topup["checkout"]["order_id"], notes=[])  # Razorpay's "no notes"
    response = await deliver(client, payment_event("payment.captured", payment))
    assert response.status_code == 200, response.text
    assert await balance(client, tenant["id"]) == 30_000


async def test_order_paid_credits_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 40_000)
    order = {**razorpay.orders[topup["checkout"]["order_id"]], "status": "paid", "amount_paid": 40_000}
    order["amount_due"] = 0
    response = await deliver(client, payment_event("order.paid", payment, order))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "top-up succeeded"
    assert await balance(client, tenant["id"]) == 40_000
    assert len(await transactions(client, tenant["id"], type_="topup")) == 1


async def test_payment_captured_and_order_paid_together_credit_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 40_000)
    order = {**razorpay.orders[topup["checkout"]["order_id"]], "status": "paid"}
    first = await deliver(client, payment_event("payment.captured", payment))
    second = await deliver(client, payment_event("order.paid", payment, order))
    assert first.status_code == second.status_code == 200
    assert await balance(client, tenant["id"]) == 40_000
    assert len(await transactions(client, tenant["id"], type_="topup")) == 1


async def test_verify_then_webhook_credits_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 25_000)
    verified = await verify(
        client, tenant["id"], topup["id"], order_id=topup["checkout"]["order_id"], payment_id=payment["id"]
    )
    assert verified.json()["status"] == "succeeded"
    hook = await deliver(client, payment_event("payment.captured", payment))
    assert hook.status_code == 200, hook.text
    assert await balance(client, tenant["id"]) == 25_000
    assert len(await transactions(client, tenant["id"])) == 1
    history = [e["kind"] for e in (await topup_detail(client, tenant["id"], topup["id"]))["history"]]
    assert history.count("succeeded") == 1
    assert "confirmation_ignored" in history


async def test_webhook_then_verify_credits_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 25_000)
    hook = await deliver(client, payment_event("payment.captured", payment))
    assert hook.status_code == 200, hook.text
    verified = await verify(
        client, tenant["id"], topup["id"], order_id=topup["checkout"]["order_id"], payment_id=payment["id"]
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "succeeded"
    assert await balance(client, tenant["id"]) == 25_000
    assert len(await transactions(client, tenant["id"])) == 1


async def test_verify_and_webhook_racing_credit_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 25_000)
    order_id = topup["checkout"]["order_id"]
    answers = await asyncio.gather(
        verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"]),
        deliver(client, payment_event("payment.captured", payment)),
        deliver(client, payment_event("order.paid", payment, razorpay.orders[order_id])),
        verify(client, tenant["id"], topup["id"], order_id=order_id, payment_id=payment["id"]),
    )
    assert [a.status_code for a in answers] == [200, 200, 200, 200], [a.text for a in answers]
    assert await balance(client, tenant["id"]) == 25_000
    assert len(await transactions(client, tenant["id"])) == 1


async def test_same_event_id_twice_answers_duplicate_and_changes_nothing(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, db: Database
) -> None:
    tenant = await create_tenant()
    _, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    event = payment_event("payment.captured", payment)
    event_id = rid("evt")
    first = await deliver(client, event, event_id=event_id)
    second = await deliver(client, event, event_id=event_id)
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert second.json() == {"received": event_id, "outcome": "duplicate"}
    assert await balance(client, tenant["id"]) == 30_000
    assert len(await stored_events(db, event_id)) == 1


async def test_same_body_without_event_id_header_is_a_duplicate(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    _, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    payload = body_of(payment_event("payment.captured", payment))
    headers = {"X-Razorpay-Signature": razorpay_webhook_signature(payload)}
    first = await client.post("/v1/webhooks/razorpay", content=payload, headers=headers)
    second = await client.post("/v1/webhooks/razorpay", content=payload, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json()["outcome"] == "duplicate"
    assert await balance(client, tenant["id"]) == 30_000


async def test_ten_concurrent_deliveries_of_one_event_credit_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, db: Database
) -> None:
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    event = payment_event("payment.captured", payment)
    event_id = rid("evt")
    answers = await asyncio.gather(*(deliver(client, event, event_id=event_id) for _ in range(10)))
    assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["duplicate"] * 9 + ["top-up succeeded"]
    assert await balance(client, tenant["id"]) == 30_000
    assert len(await transactions(client, tenant["id"])) == 1
    assert len(await stored_events(db, event_id)) == 1
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "succeeded"


async def test_ten_concurrent_distinct_events_of_one_payment_credit_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    _, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    answers = await asyncio.gather(
        *(deliver(client, payment_event("payment.captured", payment)) for _ in range(10))
    )
    assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
    assert await balance(client, tenant["id"]) == 30_000
    assert len(await transactions(client, tenant["id"])) == 1


async def test_payment_failed_then_captured_still_credits(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 30_000)
    order_id = topup["checkout"]["order_id"]
    declined = razorpay.pay(order_id, status="failed")
    failed = await deliver(client, payment_event("payment.failed", declined))
    assert failed.status_code == 200, failed.text
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "failed"
    assert detail["status_reason"] == "Payment was declined by the bank"

    retried = razorpay.pay(order_id)  # the customer tries again on the same order
    captured = await deliver(client, payment_event("payment.captured", retried))
    assert captured.status_code == 200, captured.text
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "succeeded"
    assert detail["status_reason"] is None
    assert await balance(client, tenant["id"]) == 30_000
    kinds = [e["kind"] for e in detail["history"]]
    assert kinds.index("payment_failed") < kinds.index("succeeded")


async def test_payment_captured_then_failed_stays_succeeded(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    await deliver(client, payment_event("payment.captured", payment))
    late = await deliver(client, payment_event("payment.failed", {**payment, "status": "failed"}))
    assert late.status_code == 200, late.text
    assert late.json()["outcome"] == "top-up succeeded"
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "succeeded"
    assert await balance(client, tenant["id"]) == 30_000


async def test_captured_webhook_with_a_different_amount_flags_and_credits_nothing(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 30_000)
    payment = razorpay.pay(topup["checkout"]["order_id"], amount=3_000)
    response = await deliver(client, payment_event("payment.captured", payment))
    assert response.status_code == 200, response.text
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "flagged"
    assert detail["status_reason"] == "the provider confirmed INR 30.00, the top-up was for INR 300.00"
    assert await balance(client, tenant["id"]) == 0


async def test_event_for_an_unknown_payment_is_stored_and_answered_200(
    client: httpx.AsyncClient, razorpay: FakeRazorpay, db: Database
) -> None:
    from tests.fixtures.providers import razorpay_payment

    stranger = razorpay_payment(payment_id=rid("pay"), order_id=rid("order"), amount=10_000)
    event_id = rid("evt")
    response = await deliver(client, payment_event("payment.captured", stranger), event_id=event_id)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "unknown top-up"
    assert len(await stored_events(db, event_id)) == 1


async def test_unknown_event_types_are_stored_and_answered_200(
    client: httpx.AsyncClient, db: Database
) -> None:
    event = razorpay_event(
        "payment.dispute.created",
        {"dispute": {"id": rid("disp"), "entity": "dispute", "amount": 10_000, "currency": "INR"}},
    )
    event_id = rid("evt")
    response = await deliver(client, event, event_id=event_id)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": event_id, "outcome": "ignored"}
    [stored] = await stored_events(db, event_id)
    assert stored["type"] == "payment.dispute.created"
    assert stored["payload"] == event


# --- signatures ----------------------------------------------------------------------------------


async def test_tampered_body_is_refused_and_not_stored(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, db: Database
) -> None:
    tenant = await create_tenant()
    _, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    genuine = body_of(payment_event("payment.captured", payment))
    signature = razorpay_webhook_signature(genuine)
    tampered = genuine.replace(b'"amount":30000', b'"amount":90000')
    assert tampered != genuine
    event_id = rid("evt")
    response = await deliver(client, tampered, event_id=event_id, signature=signature)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert signature not in response.text
    assert await stored_events(db, event_id) == []
    assert await balance(client, tenant["id"]) == 0


async def test_body_signed_with_a_wrong_secret_is_refused_and_not_stored(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, db: Database
) -> None:
    tenant = await create_tenant()
    _, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    event_id = rid("evt")
    response = await deliver(
        client, payment_event("payment.captured", payment), event_id=event_id, secret="not-our-secret"
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert await stored_events(db, event_id) == []
    assert await count_events_with_payment(db, payment["id"]) == 0
    assert await balance(client, tenant["id"]) == 0


async def test_missing_signature_is_refused_and_not_stored(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, db: Database
) -> None:
    tenant = await create_tenant()
    _, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    event_id = rid("evt")
    response = await deliver(
        client, payment_event("payment.captured", payment), event_id=event_id, signed=False
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert await stored_events(db, event_id) == []
    assert await balance(client, tenant["id"]) == 0


async def test_signature_of_a_json_reformatted_body_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    """The signature is over the raw bytes: the same JSON with other whitespace is not the signed body."""
    tenant = await create_tenant()
    _, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    event = payment_event("payment.captured", payment)
    signature = razorpay_webhook_signature(body_of(event))
    response = await deliver(client, json.dumps(event, indent=2).encode(), signature=signature)
    assert response.status_code == 400, response.text
    assert await balance(client, tenant["id"]) == 0


@pytest.mark.parametrize("secret", ["", RAZORPAY_WEBHOOK_SECRET], ids=["empty-key", "our-secret"])
async def test_app_without_a_webhook_secret_refuses_every_event(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    secret: str,
) -> None:
    tenant = await create_tenant()
    _, payment = await captured_topup(client, razorpay, tenant["id"], 30_000)
    event_id = rid("evt")
    async with isolated_client(settings, db, razorpay_webhook_secret=None) as unconfigured:
        response = await deliver(
            unconfigured, payment_event("payment.captured", payment), event_id=event_id, secret=secret
        )
    assert response.status_code == 503, response.text  # naming the setting: Razorpay retries
    assert response.json()["code"] == "PROVIDER_NOT_CONFIGURED"
    assert response.json()["settings"] == ["RAZORPAY_WEBHOOK_SECRET"]
    assert await stored_events(db, event_id) == []
    assert await balance(client, tenant["id"]) == 0


# --- refunds -------------------------------------------------------------------------------------


async def refund_through_api(
    client: httpx.AsyncClient, admin_headers: dict[str, str], topup_id: str, amount: int
) -> httpx.Response:
    return await client.post(
        f"/v1/admin/topups/{topup_id}/refunds",
        json={"amount": amount, "reason": "customer asked"},
        headers=admin_headers,
    )


async def test_refund_processed_after_the_api_answer_debits_once(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 50_000)
    razorpay.refund_status = "pending"  # Razorpay's usual first answer
    answered = await refund_through_api(client, admin_headers, topup["id"], 20_000)
    assert answered.status_code == 201, answered.text
    assert answered.json()["status"] == "pending"
    assert answered.json()["debited"] is True
    assert await balance(client, tenant["id"]) == 30_000

    [refund] = razorpay.refunds.values()
    processed = {**refund, "status": "processed"}
    hook = await deliver(client, refund_event("refund.processed", processed, payment))
    assert hook.status_code == 200, hook.text
    assert hook.json()["outcome"] == "refund succeeded"
    assert await balance(client, tenant["id"]) == 30_000
    assert len(await transactions(client, tenant["id"], type_="topup_refund")) == 1
    [listed] = (await topup_detail(client, tenant["id"], topup["id"]))["refunds"]
    assert listed["status"] == "succeeded"
    assert listed["debited"] is True


async def test_refund_processed_while_the_api_call_is_in_flight_debits_once(
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    """The refund's intent is committed before Razorpay is called and no lock is held during the call, so
    the webhook, delivered while walletsvc still waits for Razorpay's answer, settles the refund first;
    the answer then finds it debited."""
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 50_000)
    hooks: list[httpx.Response] = []

    async def webhook_races_the_answer(refund: dict[str, Any]) -> None:
        hooks.append(await deliver(client, refund_event("refund.processed", refund, payment)))

    razorpay.on_refund = webhook_races_the_answer
    answered = await refund_through_api(client, admin_headers, topup["id"], 20_000)
    assert answered.status_code == 201, answered.text
    [hook] = hooks
    assert hook.status_code == 200, hook.text
    assert "succeeded" in hook.json()["outcome"]
    assert await balance(client, tenant["id"]) == 30_000
    assert len(await transactions(client, tenant["id"], type_="topup_refund")) == 1
    [listed] = (await topup_detail(client, tenant["id"], topup["id"]))["refunds"]
    assert listed["debited"] is True
    assert listed["status"] == "succeeded"
    assert listed["held"]["amount"] == 0


async def test_refund_processed_before_a_timed_out_api_answer_debits_once(
    settings: Settings,
    db: Database,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    """Razorpay refunded, but walletsvc never read the answer: the webhook debits the pending refund,
    and the admin's retry with the same Idempotency-Key does not debit it again."""
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 50_000)
    razorpay.down = True
    async with isolated_client(settings, db) as isolated:
        failed = await refund_through_api(isolated, admin_headers, topup["id"], 20_000)
    assert failed.status_code == 503, failed.text
    assert await balance(client, tenant["id"]) == 50_000
    [pending] = (await topup_detail(client, tenant["id"], topup["id"]))["refunds"]
    assert pending["status"] == "pending"
    assert pending["debited"] is False

    refund = razorpay_refund(
        refund_id=rid("rfnd"),
        payment_id=payment["id"],
        amount=20_000,
        notes={"walletsvc_refund_id": pending["id"], "topup_id": topup["id"], "tenant_id": tenant["id"]},
    )
    hook = await deliver(client, refund_event("refund.processed", refund, payment))
    assert hook.status_code == 200, hook.text
    assert await balance(client, tenant["id"]) == 30_000
    [settled] = (await topup_detail(client, tenant["id"], topup["id"]))["refunds"]
    assert settled["id"] == pending["id"]
    assert settled["debited"] is True
    assert settled["status"] == "succeeded"
    assert len(await transactions(client, tenant["id"], type_="topup_refund")) == 1


async def test_refund_made_in_the_razorpay_dashboard_debits_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 50_000)
    refund = razorpay_refund(refund_id=rid("rfnd"), payment_id=payment["id"], amount=10_000)
    event = refund_event("refund.processed", refund, payment)
    first = await deliver(client, event)
    again = await deliver(client, event)  # redelivered under a new event id
    assert first.status_code == again.status_code == 200
    assert await balance(client, tenant["id"]) == 40_000
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["refunded"] == {"amount": 10_000, "currency": "INR"}
    assert len(detail["refunds"]) == 1


async def test_refund_processed_before_the_capture_is_heard_of_is_debited_once_credited(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay, db: Database
) -> None:
    """payment.captured was lost (or is being retried) when a dashboard refund's event arrives: the
    refund must not be dropped, or the wallet keeps money Razorpay has paid back."""
    tenant = await create_tenant()
    topup, payment = await captured_topup(client, razorpay, tenant["id"], 50_000)
    refund = razorpay_refund(refund_id=rid("rfnd"), payment_id=payment["id"], amount=10_000)
    refund_event_id = rid("evt")
    early = await deliver(client, refund_event("refund.processed", refund, payment), event_id=refund_event_id)
    assert early.status_code == 409, early.text  # not yet: Razorpay delivers it again later
    assert await stored_events(db, refund_event_id) == []

    captured = await deliver(client, payment_event("payment.captured", payment))
    assert captured.status_code == 200, captured.text
    redelivered = await deliver(
        client, refund_event("refund.processed", refund, payment), event_id=refund_event_id
    )
    assert redelivered.status_code == 200, redelivered.text
    assert await balance(client, tenant["id"]) == 40_000
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["refunded"] == {"amount": 10_000, "currency": "INR"}


async def test_refund_failed_after_a_pending_refund_gives_the_money_back(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 50_000)
    razorpay.refund_status = "pending"
    answered = await refund_through_api(client, admin_headers, topup["id"], 20_000)
    assert answered.status_code == 201, answered.text
    assert await balance(client, tenant["id"]) == 30_000
    [refund] = razorpay.refunds.values()
    failed = await deliver(client, refund_event("refund.failed", {**refund, "status": "failed"}, payment))
    assert failed.status_code == 200, failed.text
    assert failed.json()["outcome"] == "refund failed"
    assert await balance(client, tenant["id"]) == 50_000
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["refunded"] == {"amount": 0, "currency": "INR"}
    assert detail["refunds"][0]["status"] == "failed"
    # The money is refundable again.
    razorpay.refund_status = "processed"
    again = await refund_through_api(client, admin_headers, topup["id"], 50_000)
    assert again.status_code == 201, again.text
    assert await balance(client, tenant["id"]) == 0
