"""Per-tenant limits set by admins (concurrent calls, daily spend cap, low-balance threshold, payment
provider), and the flagged and low-balance tenant lists, through the API against real PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.tenants import TenantFactory

Headers = dict[str, str]


async def usage_key(client: httpx.AsyncClient, admin_headers: Headers, tenant_id: str) -> Headers:
    created = await client.post(
        "/v1/admin/api-keys", json={"scopes": ["usage:write"], "tenant_id": tenant_id}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def patch_tenant(
    client: httpx.AsyncClient, admin_headers: Headers, tenant_id: str, **changes: Any
) -> dict[str, Any]:
    response = await client.patch(f"/v1/admin/tenants/{tenant_id}", json=changes, headers=admin_headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def authorize(client: httpx.AsyncClient, key: Headers, call_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/calls/{call_id}/authorize", json=body, headers=key)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def wallet(client: httpx.AsyncClient, tenant_id: str) -> dict[str, Any]:
    response = await client.get("/v1/wallet", headers=owner_headers(tenant_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed_ids(client: httpx.AsyncClient, admin_headers: Headers, **filters: str) -> set[str]:
    """Every tenant id the admin list answers for these filters, following the cursor to the end."""
    ids: set[str] = set()
    params: dict[str, str] = {**filters, "limit": "500"}
    while True:
        page = await client.get("/v1/admin/tenants", params=params, headers=admin_headers)
        assert page.status_code == 200, page.text
        ids |= {t["id"] for t in page.json()["data"]}
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids
        params["cursor"] = cursor


# --- concurrent calls -------------------------------------------------------------------------------------


async def test_one_call_more_than_the_concurrency_limit_is_refused_until_a_call_settles(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=10_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    patched = await patch_tenant(client, admin_headers, tenant["id"], max_concurrent_calls=2)
    assert patched["wallet"]["max_concurrent_calls"] == 2

    assert (await authorize(client, key, "cc-1", max_duration_seconds=60))["allowed"] is True
    assert (await authorize(client, key, "cc-2", max_duration_seconds=60))["allowed"] is True
    third = await authorize(client, key, "cc-3", max_duration_seconds=60)
    assert third["allowed"] is False
    assert third["code"] == "CONCURRENT_CALL_LIMIT"
    assert third["hold"] is None
    assert third["max_seconds"] == 0
    # the refused call holds nothing: two holds of 15 cents (1 minute at 5 + a 10 cent connection fee)
    assert (await wallet(client, tenant["id"]))["reserved"]["amount"] == 30

    hangup = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "cc-1", "duration_seconds": 30}, headers=key
    )
    assert hangup.status_code == 201, hangup.text
    assert hangup.json()["hold_released"]["amount"] == 15
    retried = await authorize(client, key, "cc-3", max_duration_seconds=60)
    assert retried["allowed"] is True
    assert retried["code"] is None
    assert (await authorize(client, key, "cc-4", max_duration_seconds=60))["code"] == "CONCURRENT_CALL_LIMIT"


async def test_lifting_the_concurrency_limit_with_null_lets_more_calls_start(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=10_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    await patch_tenant(client, admin_headers, tenant["id"], max_concurrent_calls=1)
    assert (await authorize(client, key, "l-1", max_duration_seconds=60))["allowed"] is True
    assert (await authorize(client, key, "l-2", max_duration_seconds=60))["code"] == "CONCURRENT_CALL_LIMIT"

    lifted = await patch_tenant(client, admin_headers, tenant["id"], max_concurrent_calls=None)
    assert lifted["wallet"]["max_concurrent_calls"] is None
    assert (await wallet(client, tenant["id"]))["max_concurrent_calls"] is None
    for call_id in ("l-2", "l-3", "l-4"):
        assert (await authorize(client, key, call_id, max_duration_seconds=60))["allowed"] is True


# --- daily spend cap ----------------------------------------------------------------------------------------


async def test_daily_spend_cap_shortens_calls_and_refuses_them_once_reached(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=10_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    patched = await patch_tenant(client, admin_headers, tenant["id"], daily_spend_cap=100)
    assert patched["wallet"]["daily_spend_cap"] == {"amount": 100, "currency": "USD"}

    first = await authorize(client, key, "d-1")
    assert first["allowed"] is True
    # $1.00 under the cap, less the 10 cent connection fee, buys 18 minutes at 5 cents
    assert first["max_seconds"] == 18 * 60
    hangup = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "d-1", "duration_seconds": 20 * 60}, headers=key
    )
    assert hangup.status_code == 201, hangup.text
    # the call happened: it is charged in full, past the cap
    assert hangup.json()["charged"] == {"amount": 110, "currency": "USD"}

    refused = await authorize(client, key, "d-2")
    assert refused["allowed"] is False
    assert refused["code"] == "DAILY_SPEND_CAP"
    assert refused["hold"] is None

    raised = await patch_tenant(client, admin_headers, tenant["id"], daily_spend_cap=200)
    assert raised["wallet"]["daily_spend_cap"]["amount"] == 200
    again = await authorize(client, key, "d-2")
    assert again["allowed"] is True
    assert again["max_seconds"] == 16 * 60  # 90 cents left, less the fee: 80 / 5 = 16 minutes

    lifted = await patch_tenant(client, admin_headers, tenant["id"], daily_spend_cap=None)
    assert lifted["wallet"]["daily_spend_cap"] is None
    assert (await authorize(client, key, "d-3", max_duration_seconds=3600))["max_seconds"] == 3600


# --- other fields ------------------------------------------------------------------------------------------


async def test_low_balance_threshold_puts_a_tenant_on_the_low_balance_list(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(balance=5_000)
    assert tenant["id"] not in await listed_ids(client, admin_headers, low_balance="true")

    raised = await patch_tenant(client, admin_headers, tenant["id"], low_balance_threshold=6_000)
    assert raised["wallet"]["low_balance_threshold"] == {"amount": 6_000, "currency": "INR"}
    assert raised["wallet"]["below_threshold"] is True
    assert tenant["id"] in await listed_ids(client, admin_headers, low_balance="true")
    assert tenant["id"] not in await listed_ids(client, admin_headers, low_balance="false")

    # exactly at the threshold is not below it
    at = await patch_tenant(client, admin_headers, tenant["id"], low_balance_threshold=5_000)
    assert at["wallet"]["below_threshold"] is False
    assert tenant["id"] not in await listed_ids(client, admin_headers, low_balance="true")
    assert tenant["id"] in await listed_ids(client, admin_headers, low_balance="false")


async def test_low_balance_threshold_cannot_be_null(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant()
    await patch_tenant(client, admin_headers, tenant["id"], low_balance_threshold=700)
    response = await client.patch(
        f"/v1/admin/tenants/{tenant['id']}", json={"low_balance_threshold": None}, headers=admin_headers
    )
    assert response.status_code == 422
    assert (await wallet(client, tenant["id"]))["low_balance_threshold"]["amount"] == 700


async def test_payments_provider_is_set_and_returned_to_the_default_with_null(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant()
    assert tenant["payments_provider"] is None
    stripe = await patch_tenant(client, admin_headers, tenant["id"], payments_provider="stripe")
    assert stripe["payments_provider"] == "stripe"
    read = await client.get(f"/v1/admin/tenants/{tenant['id']}", headers=admin_headers)
    assert read.json()["payments_provider"] == "stripe"
    cleared = await patch_tenant(client, admin_headers, tenant["id"], payments_provider=None)
    assert cleared["payments_provider"] is None
    bad = await client.patch(
        f"/v1/admin/tenants/{tenant['id']}", json={"payments_provider": "paypal"}, headers=admin_headers
    )
    assert bad.status_code == 422


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(payments_provider="razorpay")
    await patch_tenant(
        client,
        admin_headers,
        tenant["id"],
        max_concurrent_calls=3,
        daily_spend_cap=500,
        low_balance_threshold=10,
    )
    body = await patch_tenant(client, admin_headers, tenant["id"], low_balance_threshold=20)
    assert body["wallet"]["max_concurrent_calls"] == 3
    assert body["wallet"]["daily_spend_cap"]["amount"] == 500
    assert body["wallet"]["low_balance_threshold"]["amount"] == 20
    assert body["payments_provider"] == "razorpay"
    nothing = await patch_tenant(client, admin_headers, tenant["id"])
    assert nothing["wallet"] == {**body["wallet"], "updated_at": nothing["wallet"]["updated_at"]}


@pytest.mark.parametrize(
    "changes",
    [
        {"max_concurrent_calls": 0},
        {"max_concurrent_calls": 1.5},
        {"daily_spend_cap": 0},
        {"daily_spend_cap": 10.0},
        {"daily_spend_cap": "100"},
        {"low_balance_threshold": -1},
    ],
)
async def test_invalid_limits_are_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers, changes: dict[str, Any]
) -> None:
    tenant = await create_tenant()
    response = await client.patch(f"/v1/admin/tenants/{tenant['id']}", json=changes, headers=admin_headers)
    assert response.status_code == 422
    current = await wallet(client, tenant["id"])
    assert current["max_concurrent_calls"] is None
    assert current["daily_spend_cap"] is None


async def test_patching_an_unknown_tenant_is_not_found(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    response = await client.patch(
        "/v1/admin/tenants/t-no-such-tenant", json={"max_concurrent_calls": 1}, headers=admin_headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("headers_for", [member_headers, owner_headers])
async def test_tenant_users_cannot_change_limits_or_list_tenants(
    client: httpx.AsyncClient, create_tenant: TenantFactory, headers_for: Any
) -> None:
    tenant = await create_tenant()
    h = headers_for(tenant["id"])
    patched = await client.patch(
        f"/v1/admin/tenants/{tenant['id']}", json={"max_concurrent_calls": 99}, headers=h
    )
    assert patched.status_code == 403
    assert (await client.get("/v1/admin/tenants", params={"flagged": "true"}, headers=h)).status_code == 403
    assert (await wallet(client, tenant["id"]))["max_concurrent_calls"] is None


# --- flagged tenants and what they owe ---------------------------------------------------------------------


async def test_unpaid_usage_flags_the_tenant_until_a_credit_pays_what_is_owed(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=15, low_balance_threshold=100)
    key = await usage_key(client, admin_headers, tenant["id"])
    assert tenant["id"] not in await listed_ids(client, admin_headers, flagged="true")

    # 61 s: two minutes at 5 cents plus a 10 cent connection fee = 20 cents, on a 15 cent wallet
    unpaid = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "f-1", "duration_seconds": 61}, headers=key
    )
    assert unpaid.status_code == 402, unpaid.text
    problem = unpaid.json()
    assert problem["code"] == "INSUFFICIENT_FUNDS"
    assert problem["amount"] == {"amount": 20, "currency": "USD"}
    assert problem["charged"] == {"amount": 15, "currency": "USD"}
    assert problem["owed"] == {"amount": 5, "currency": "USD"}

    owing = await wallet(client, tenant["id"])
    assert owing["balance"]["amount"] == 0
    assert owing["owed"] == {"amount": 5, "currency": "USD"}
    assert owing["flagged"] is True
    assert tenant["id"] in await listed_ids(client, admin_headers, flagged="true")
    assert tenant["id"] not in await listed_ids(client, admin_headers, flagged="false")
    assert tenant["id"] in await listed_ids(client, admin_headers, low_balance="true")

    # A credit smaller than the debt pays what it can; the flag stays.
    partial = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 3, "reason": "goodwill"},
        headers=admin_headers,
    )
    assert partial.status_code == 201, partial.text
    owing = await wallet(client, tenant["id"])
    assert (owing["balance"]["amount"], owing["owed"]["amount"], owing["flagged"]) == (0, 2, True)

    credit = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 100, "reason": "customer paid by bank transfer"},
        headers=admin_headers,
    )
    assert credit.status_code == 201, credit.text
    assert credit.json()["wallet"]["owed"]["amount"] == 0
    assert credit.json()["wallet"]["flagged"] is False
    assert credit.json()["wallet"]["balance"]["amount"] == 98

    settled = await wallet(client, tenant["id"])
    assert settled["owed"] == {"amount": 0, "currency": "USD"}
    assert settled["flagged"] is False
    assert settled["balance"]["amount"] == 15 + 3 + 100 - 20
    assert tenant["id"] not in await listed_ids(client, admin_headers, flagged="true")
    assert tenant["id"] in await listed_ids(client, admin_headers, flagged="false")
    assert tenant["id"] in await listed_ids(client, admin_headers, low_balance="true")  # 98 < 100

    # the whole 20 cents reached the ledger as usage charges, in whole cents
    history = await client.get(
        "/v1/transactions", params={"type": "usage_charge"}, headers=owner_headers(tenant["id"])
    )
    assert history.status_code == 200, history.text
    assert sum(row["amount"]["amount"] for row in history.json()["data"]) == -20

    # a retry of the hangup answers the first charge, now paid in full, and charges nothing more
    retry = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "f-1", "duration_seconds": 61}, headers=key
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["replayed"] is True
    assert retry.json()["charged"]["amount"] == 20
    assert retry.json()["owed"]["amount"] == 0
    assert (await wallet(client, tenant["id"]))["balance"]["amount"] == 98

    topped = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 2, "reason": "top to threshold"},
        headers=admin_headers,
    )
    assert topped.status_code == 201
    assert tenant["id"] not in await listed_ids(client, admin_headers, low_balance="true")  # 100, not below
