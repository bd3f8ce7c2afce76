"""A top-up's life as the portal and admins read it: lists, filters, cursors, history, refunds, and
tenant isolation."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.razorpay_flow import (
    FakeRazorpay,
    deliver,
    paid_topup,
    payment_event,
    start_topup,
    topup_detail,
)
from tests.fixtures.tenants import TenantFactory

pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")


async def test_list_is_newest_first_and_pages_with_a_cursor(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    made = [(await start_topup(client, tenant["id"], 1000 + i))["id"] for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/topups", params=params, headers=owner_headers(tenant["id"]))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 2
        seen.extend(t["id"] for t in page["data"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(made))


async def test_list_filters_by_status(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    paid, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    waiting = await start_topup(client, tenant["id"], 6_000)
    declined = await start_topup(client, tenant["id"], 7_000)
    failure = razorpay.pay(declined["checkout"]["order_id"], status="failed")
    assert (await deliver(client, payment_event("payment.failed", failure))).status_code == 200

    async def ids(status: str) -> list[str]:
        response = await client.get(
            "/v1/topups", params={"status": status}, headers=owner_headers(tenant["id"])
        )
        assert response.status_code == 200, response.text
        assert {t["status"] for t in response.json()["data"]} <= {status}
        return [t["id"] for t in response.json()["data"]]

    assert await ids("succeeded") == [paid["id"]]
    assert await ids("pending") == [waiting["id"]]
    assert await ids("failed") == [declined["id"]]
    assert await ids("flagged") == []


async def test_list_refuses_an_unknown_status_and_a_bad_cursor(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    bad_status = await client.get(
        "/v1/topups", params={"status": "paid"}, headers=owner_headers(tenant["id"])
    )
    assert bad_status.status_code == 422, bad_status.text
    bad_cursor = await client.get(
        "/v1/topups", params={"cursor": "not-a-cursor"}, headers=owner_headers(tenant["id"])
    )
    assert bad_cursor.status_code == 422, bad_cursor.text


async def test_detail_shows_history_of_a_successful_topup(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "succeeded"
    assert detail["succeeded_at"] is not None
    assert detail["credited"] == {"amount": 5_000, "currency": "INR"}
    assert detail["refunded"] == {"amount": 0, "currency": "INR"}
    assert detail["refunds"] == []
    history = detail["history"]
    assert [e["kind"] for e in history] == ["created", "checkout_created", "succeeded"]
    assert history[-1]["source"] == "razorpay_verify"
    assert history[0]["detail"] == "routed by rule: INR or India"


async def test_detail_shows_a_failed_payment_with_its_reason(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 5_000)
    failure = razorpay.pay(topup["checkout"]["order_id"], status="failed")
    await deliver(client, payment_event("payment.failed", failure))
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "failed"
    assert detail["status_reason"] == "Payment was declined by the bank"
    assert detail["credited"] is None
    assert [e["kind"] for e in detail["history"]] == ["created", "checkout_created", "payment_failed"]
    assert detail["history"][-1]["source"] == "razorpay:payment.failed"


async def test_detail_lists_refunds_and_their_history(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    refund = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds",
        json={"amount": 2_000, "reason": "duplicate payment"},
        headers=admin_headers,
    )
    assert refund.status_code == 201, refund.text
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["refunded"] == {"amount": 2_000, "currency": "INR"}
    [listed] = detail["refunds"]
    assert listed["id"] == refund.json()["id"]
    assert listed["reason"] == "duplicate payment"
    assert listed["amount"] == {"amount": 2_000, "currency": "INR"}
    kinds = [e["kind"] for e in detail["history"]]
    assert kinds[-2:] == ["refund_requested", "refunded"]


async def test_member_reads_topups_but_cannot_start_one(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 5_000)
    listed = await client.get("/v1/topups", headers=member_headers(tenant["id"]))
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()["data"]] == [topup["id"]]
    read = await client.get(f"/v1/topups/{topup['id']}", headers=member_headers(tenant["id"]))
    assert read.status_code == 200, read.text
    started = await client.post("/v1/topups", json={"amount": 5_000}, headers=member_headers(tenant["id"]))
    assert started.status_code == 403, started.text


async def test_tenant_cannot_read_another_tenants_topup(
    client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    a = await create_tenant()
    b = await create_tenant()
    topup_a = await start_topup(client, a["id"], 5_000)
    read = await client.get(f"/v1/topups/{topup_a['id']}", headers=owner_headers(b["id"]))
    assert read.status_code == 404, read.text
    assert read.json()["code"] == "NOT_FOUND"
    listed = await client.get("/v1/topups", headers=owner_headers(b["id"]))
    assert listed.json()["data"] == []


async def test_unauthenticated_caller_reads_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/topups")
    assert response.status_code == 401, response.text


async def test_admin_reads_any_tenants_topup_with_history(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, _ = await paid_topup(client, razorpay, tenant["id"], 5_000)
    response = await client.get(f"/v1/admin/topups/{topup['id']}", headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant_id"] == tenant["id"]
    assert body["status"] == "succeeded"
    assert [e["kind"] for e in body["history"]] == ["created", "checkout_created", "succeeded"]


async def test_admin_route_refuses_tenants_and_unknown_ids(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 5_000)
    as_owner = await client.get(f"/v1/admin/topups/{topup['id']}", headers=owner_headers(tenant["id"]))
    assert as_owner.status_code == 403, as_owner.text
    unknown = await client.get("/v1/admin/topups/top_doesnotexist", headers=admin_headers)
    assert unknown.status_code == 404, unknown.text
