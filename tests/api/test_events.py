"""The event log: each change records its event once, in its own transaction (a refused change records
none), with money named as the API names it; the admin and tenant routes page and keep tenants apart."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.events import api_events, delivery_jobs, stored_events
from tests.fixtures.problems import assert_problem
from tests.fixtures.razorpay_flow import FakeRazorpay, deliver, paid_topup, payment_event, start_topup
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ref, usage_key
from walletsvc.db.engine import Database

pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")


async def test_an_adjustment_records_one_event_and_queues_its_delivery(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant()
    made = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 50_000, "reason": "goodwill"},
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    [event] = await stored_events(db, tenant["id"])
    assert event["type"] == "adjustment.created"
    assert event["payload"]["amount"] == {"amount": 50_000, "currency": "INR"}
    assert event["payload"]["reason"] == "goodwill"
    assert event["payload"]["transaction_id"] == made.json()["transaction"]["id"]
    assert event["delivery"] == "pending"
    [job] = await delivery_jobs(db, [event["id"]])
    assert job["status"] == "queued"


async def test_a_refused_change_records_no_event_and_queues_no_job(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant()
    # A debit below zero is refused (402): its transaction rolls back, and with it the event and the job.
    refused = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": -500, "reason": "too much"},
        headers=admin_headers,
    )
    assert_problem(refused, 402, "INSUFFICIENT_FUNDS")
    assert await stored_events(db, tenant["id"]) == []


async def test_topup_succeeded_failed_and_refunded_are_recorded_once(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    razorpay: FakeRazorpay,
    db: Database,
) -> None:
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 5_000)
    # The provider's webhook for the same payment changes nothing: no second event.
    again = await deliver(client, payment_event("payment.captured", payment))
    assert again.status_code == 200, again.text
    refund = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds",
        json={"amount": 2_000, "reason": "duplicate payment"},
        headers=admin_headers,
    )
    assert refund.status_code == 201, refund.text

    declined_topup = await start_topup(client, tenant["id"], 3_000)
    declined = razorpay.pay(declined_topup["checkout"]["order_id"], status="failed")
    assert (await deliver(client, payment_event("payment.failed", declined))).status_code == 200
    assert (await deliver(client, payment_event("payment.failed", declined))).status_code == 200

    events = await stored_events(db, tenant["id"])
    # The top-up's invoice and the refund's credit note are events of their own (docs/invoices.md).
    issued = [e["payload"]["kind"] for e in events if e["type"] == "invoice.issued"]
    assert issued == ["invoice", "credit_note"]
    events = [e for e in events if e["type"] != "invoice.issued"]
    assert [e["type"] for e in events] == ["topup.succeeded", "topup.refunded", "topup.failed"]
    succeeded, refunded, failed = (e["payload"] for e in events)
    assert succeeded["topup_id"] == topup["id"]
    assert succeeded["amount"] == {"amount": 5_000, "currency": "INR"}
    assert refunded["topup_id"] == topup["id"]
    assert refunded["refund_id"] == refund.json()["id"]
    assert refunded["amount"] == {"amount": 2_000, "currency": "INR"}
    assert failed["topup_id"] == declined_topup["id"]
    assert failed["amount"] == {"amount": 3_000, "currency": "INR"}
    assert len(await delivery_jobs(db, [e["id"] for e in events])) == 3


async def test_wallet_flagged_when_usage_is_owed_and_unflagged_when_paid(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=30)
    key = await usage_key(client, admin_headers, tenant["id"])
    call = {"kind": "call", "reference_id": ref("call"), "duration_seconds": 600}
    assert_problem(await client.post("/v1/usage", json=call, headers=key), 402, "INSUFFICIENT_FUNDS")
    # More owed on a wallet already flagged: no second wallet.flagged.
    sms = {"kind": "sms", "reference_id": ref()}
    assert_problem(await client.post("/v1/usage", json=sms, headers=key), 402, "INSUFFICIENT_FUNDS")
    paid = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 1_000, "reason": "pays it off"},
        headers=admin_headers,
    )
    assert paid.status_code == 201, paid.text
    events = await stored_events(db, tenant["id"])
    assert [e["type"] for e in events] == [
        "adjustment.created",  # the funding
        "wallet.flagged",
        "charge.insufficient_funds",  # one per charge not paid in full
        "charge.insufficient_funds",
        "adjustment.created",
        "wallet.unflagged",
    ]
    assert events[1]["payload"]["owed"] == {"amount": 30, "currency": "USD"}
    assert events[2]["payload"]["owed"] == {"amount": 30, "currency": "USD"}
    assert events[3]["payload"]["owed"] == {"amount": 2, "currency": "USD"}
    assert events[5]["payload"]["paid"] == {"amount": 32, "currency": "USD"}


async def test_routes_page_newest_first_and_keep_tenants_apart(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    mine = await create_tenant()
    theirs = await create_tenant()
    for i in range(5):
        made = await client.post(
            f"/v1/admin/tenants/{mine['id']}/adjustments",
            json={"amount": 100 + i, "reason": f"credit {i}"},
            headers=admin_headers,
        )
        assert made.status_code == 201, made.text
    other = await client.post(
        f"/v1/admin/tenants/{theirs['id']}/adjustments",
        json={"amount": 999, "reason": "theirs"},
        headers=admin_headers,
    )
    assert other.status_code == 201, other.text

    own = await api_events(client, "/v1/events", member_headers(mine["id"]), limit=2)
    assert [e["payload"]["amount"]["amount"] for e in own] == [104, 103, 102, 101, 100]
    assert {e["tenant_id"] for e in own} == {mine["id"]}
    assert {e["type"] for e in own} == {"adjustment.created"}
    stored = [e["id"] for e in await stored_events(db, mine["id"])]
    assert [e["id"] for e in own] == list(reversed(stored))

    theirs_seen = await api_events(client, "/v1/events", owner_headers(theirs["id"]))
    assert [e["payload"]["amount"]["amount"] for e in theirs_seen] == [999]

    admin_view = await api_events(
        client, "/v1/admin/events", admin_headers, tenant_id=mine["id"], type="adjustment.created", limit=3
    )
    assert [e["id"] for e in admin_view] == [e["id"] for e in own]
    everyone = await api_events(client, "/v1/admin/events", admin_headers, limit=500)
    assert {mine["id"], theirs["id"]} <= {e["tenant_id"] for e in everyone}
    # A type with no such events, for this tenant: an empty page.
    none = await api_events(
        client, "/v1/admin/events", admin_headers, tenant_id=mine["id"], type="topup.failed"
    )
    assert none == []


async def test_a_tenant_cannot_read_events_through_the_admin_route(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    refused = await client.get("/v1/admin/events", headers=owner_headers(tenant["id"]))
    assert_problem(refused, 403, "FORBIDDEN")
    bad = await client.get("/v1/events", params={"cursor": "nope"}, headers=owner_headers(tenant["id"]))
    assert_problem(bad, 422, "VALIDATION_FAILED")
    unknown = await client.get("/v1/events", params={"type": "nope"}, headers=owner_headers(tenant["id"]))
    assert_problem(unknown, 422, "VALIDATION_FAILED")
