"""Plans, subscriptions and the default rates per currency, through the API against real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import member_headers, owner_headers
from tests.fixtures.tenants import TenantFactory
from walletsvc.config import Settings
from walletsvc.domain.plans import add_month

Headers = dict[str, str]


def plan_id() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


async def create_plan(client: httpx.AsyncClient, admin_headers: Headers, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": plan_id(),
        "name": "Starter",
        "currency": "INR",
        "monthly_price": 49_900,
        "per_minute_rate": "1000",
        **fields,
    }
    response = await client.post("/v1/admin/plans", json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    plan: dict[str, Any] = response.json()
    return plan


async def usage_key(client: httpx.AsyncClient, admin_headers: Headers, tenant_id: str) -> Headers:
    created = await client.post(
        "/v1/admin/api-keys", json={"scopes": ["usage:write"], "tenant_id": tenant_id}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def subscription(client: httpx.AsyncClient, tenant_id: str) -> dict[str, Any]:
    response = await client.get("/v1/subscription", headers=member_headers(tenant_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def balance(client: httpx.AsyncClient, tenant_id: str) -> int:
    wallet = await client.get("/v1/wallet", headers=owner_headers(tenant_id))
    assert wallet.status_code == 200, wallet.text
    amount: int = wallet.json()["balance"]["amount"]
    return amount


# --- plans ----------------------------------------------------------------------------------------------


async def test_admin_creates_a_plan_with_every_field_and_lists_it(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    pid = plan_id()
    body = {
        "id": pid,
        "name": "Pro",
        "currency": "INR",
        "monthly_price": 99_900,
        "included_minutes": 500,
        "per_minute_rate": "42",
        "billing_increment_seconds": 1,
        "minimum_billable_seconds": 30,
        "connection_fee": "10.5",
        "sms_price": "0.35",
        "email_price": "0.1",
        "fax_page_price": "15",
        "file_transfer_price": "2.500000",
        "features": ["Call recording", "Analytics"],
    }
    created = await client.post("/v1/admin/plans", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    expected = {
        "id": pid,
        "name": "Pro",
        "currency": "INR",
        "monthly_price": {"amount": 99_900, "currency": "INR"},
        "included_minutes": 500,
        "rates": {
            "currency": "INR",
            "per_minute_rate": "42",
            "billing_increment_seconds": 1,
            "minimum_billable_seconds": 30,
            "connection_fee": "10.5",
            "sms_price": "0.35",
            "email_price": "0.1",
            "fax_page_price": "15",
            "file_transfer_price": "2.5",
        },
        "features": ["Call recording", "Analytics"],
        "active": True,
    }
    assert created.json() == expected

    listed = await client.get("/v1/admin/plans", headers=admin_headers)
    assert listed.status_code == 200
    assert [p for p in listed.json() if p["id"] == pid] == [expected]


async def test_plan_without_an_id_gets_one_made(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    created = await client.post(
        "/v1/admin/plans",
        json={"name": "Anon", "currency": "USD", "monthly_price": 0, "per_minute_rate": "5"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"].startswith("plan_")
    assert created.json()["included_minutes"] == 0
    assert created.json()["rates"]["billing_increment_seconds"] == 60


async def test_duplicate_plan_id_is_a_conflict(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    plan = await create_plan(client, admin_headers, name="First")
    again = await client.post(
        "/v1/admin/plans",
        json={
            "id": plan["id"],
            "name": "Second",
            "currency": "INR",
            "monthly_price": 1,
            "per_minute_rate": "1",
        },
        headers=admin_headers,
    )
    assert again.status_code == 409
    assert again.json()["code"] == "ALREADY_EXISTS"
    listed = (await client.get("/v1/admin/plans", headers=admin_headers)).json()
    assert [p["name"] for p in listed if p["id"] == plan["id"]] == ["First"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("per_minute_rate", 0.5),  # a JSON number: rates are decimal strings
        ("per_minute_rate", 42),
        ("sms_price", 0.35),
        ("connection_fee", 1.5),
        ("per_minute_rate", "0.1234567"),  # finer than the 6 places stored
        ("per_minute_rate", "-1"),
        ("per_minute_rate", "1e3"),
        ("monthly_price", 499.0),  # money is an integer of minor units
        ("monthly_price", "49900"),
        ("monthly_price", -1),
        ("billing_increment_seconds", 0),
        ("included_minutes", 1.5),
    ],
)
async def test_plan_with_a_float_or_malformed_price_is_refused(
    client: httpx.AsyncClient, admin_headers: Headers, field: str, value: Any
) -> None:
    body = {"id": plan_id(), "name": "Bad", "currency": "INR", "monthly_price": 100, "per_minute_rate": "1"}
    body[field] = value
    response = await client.post("/v1/admin/plans", json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
    listed = (await client.get("/v1/admin/plans", headers=admin_headers)).json()
    assert body["id"] not in {p["id"] for p in listed}


async def test_plan_in_an_unknown_currency_is_refused(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    response = await client.post(
        "/v1/admin/plans",
        json={"name": "X", "currency": "XYZ", "monthly_price": 100, "per_minute_rate": "1"},
        headers=admin_headers,
    )
    assert response.status_code == 422


async def test_admin_edits_a_plan_and_only_the_fields_sent_change(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    plan = await create_plan(
        client,
        admin_headers,
        included_minutes=100,
        connection_fee="5",
        billing_increment_seconds=6,
        features=["A"],
    )
    patched = await client.patch(
        f"/v1/admin/plans/{plan['id']}",
        json={"name": "Starter 2", "per_minute_rate": "30.25", "sms_price": "1.125", "included_minutes": 200},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["name"] == "Starter 2"
    assert body["included_minutes"] == 200
    assert body["rates"]["per_minute_rate"] == "30.25"
    assert body["rates"]["sms_price"] == "1.125"
    # untouched
    assert body["monthly_price"] == {"amount": 49_900, "currency": "INR"}
    assert body["rates"]["connection_fee"] == "5"
    assert body["rates"]["billing_increment_seconds"] == 6
    assert body["features"] == ["A"]
    assert body["currency"] == "INR"
    assert body["active"] is True

    listed = (await client.get("/v1/admin/plans", headers=admin_headers)).json()
    assert [p for p in listed if p["id"] == plan["id"]] == [body]


async def test_patch_can_set_zero_values(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    plan = await create_plan(client, admin_headers, included_minutes=100, connection_fee="5")
    patched = await client.patch(
        f"/v1/admin/plans/{plan['id']}",
        json={"monthly_price": 0, "included_minutes": 0, "connection_fee": "0", "features": []},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["monthly_price"]["amount"] == 0
    assert body["included_minutes"] == 0
    assert body["rates"]["connection_fee"] == "0"
    assert body["features"] == []


async def test_patch_refuses_float_rates(client: httpx.AsyncClient, admin_headers: Headers) -> None:
    plan = await create_plan(client, admin_headers)
    response = await client.patch(
        f"/v1/admin/plans/{plan['id']}", json={"per_minute_rate": 0.5}, headers=admin_headers
    )
    assert response.status_code == 422
    listed = (await client.get("/v1/admin/plans", headers=admin_headers)).json()
    assert [p["rates"]["per_minute_rate"] for p in listed if p["id"] == plan["id"]] == ["1000"]


async def test_patching_an_unknown_plan_is_not_found(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    response = await client.patch(f"/v1/admin/plans/{plan_id()}", json={"name": "X"}, headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_public_plan_list_needs_no_credentials_and_shows_only_active_plans(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    active_inr = await create_plan(client, admin_headers, currency="INR")
    withdrawn_inr = await create_plan(client, admin_headers, currency="INR", active=False)
    active_usd = await create_plan(client, admin_headers, currency="USD", per_minute_rate="5")

    everything = await client.get("/v1/plans")
    assert everything.status_code == 200, everything.text
    ids = {p["id"] for p in everything.json()}
    assert {active_inr["id"], active_usd["id"]} <= ids
    assert withdrawn_inr["id"] not in ids
    assert all(p["active"] for p in everything.json())

    inr = await client.get("/v1/plans", params={"currency": "INR"})
    assert inr.status_code == 200
    inr_ids = {p["id"] for p in inr.json()}
    assert active_inr["id"] in inr_ids
    assert active_usd["id"] not in inr_ids
    assert {p["currency"] for p in inr.json()} == {"INR"}

    # Withdrawing a plan takes it off the pricing page; admins still see it.
    withdrawn = await client.patch(
        f"/v1/admin/plans/{active_inr['id']}", json={"active": False}, headers=admin_headers
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["active"] is False
    assert active_inr["id"] not in {p["id"] for p in (await client.get("/v1/plans")).json()}
    admin_ids = {p["id"] for p in (await client.get("/v1/admin/plans", headers=admin_headers)).json()}
    assert {active_inr["id"], withdrawn_inr["id"]} <= admin_ids


async def test_public_plan_list_refuses_a_malformed_currency_filter(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/plans", params={"currency": "inr"})).status_code == 422


@pytest.mark.parametrize("headers_for", [member_headers, owner_headers])
async def test_tenant_users_are_forbidden_on_admin_plan_routes(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers, headers_for: Any
) -> None:
    tenant = await create_tenant()
    plan = await create_plan(client, admin_headers)
    h = headers_for(tenant["id"])
    body = {"name": "Sneaky", "currency": "INR", "monthly_price": 0, "per_minute_rate": "0"}
    responses = [
        await client.post("/v1/admin/plans", json=body, headers=h),
        await client.get("/v1/admin/plans", headers=h),
        await client.patch(f"/v1/admin/plans/{plan['id']}", json={"monthly_price": 0}, headers=h),
        await client.put(
            f"/v1/admin/tenants/{tenant['id']}/subscription", json={"plan_id": plan["id"]}, headers=h
        ),
        await client.get("/v1/admin/billing-defaults/INR", headers=h),
        await client.put(
            "/v1/admin/billing-defaults/INR", json={"per_minute_rate": "0", "minimum_balance": 0}, headers=h
        ),
    ]
    assert [r.status_code for r in responses] == [403] * len(responses)
    assert {r.json()["code"] for r in responses} == {"FORBIDDEN"}
    listed = (await client.get("/v1/admin/plans", headers=admin_headers)).json()
    assert [p["monthly_price"]["amount"] for p in listed if p["id"] == plan["id"]] == [49_900]
    assert (await subscription(client, tenant["id"]))["plan"] is None


async def test_admin_plan_routes_need_credentials(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/admin/plans")).status_code == 401


# --- subscriptions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "country"), [("INR", "IND"), ("USD", "USA")])
async def test_tenant_without_a_plan_sees_the_default_rates_and_no_quota(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: Headers,
    settings: Settings,
    currency: str,
    country: str,
) -> None:
    tenant = await create_tenant(currency=currency, country=country)
    body = await subscription(client, tenant["id"])
    assert body["tenant_id"] == tenant["id"]
    assert body["plan"] is None
    assert body["period_start"] is None
    assert body["period_end"] is None
    assert body["quota"] == {"included_seconds": 0, "used_seconds": 0, "remaining_seconds": 0}
    configured = settings.default_rates[currency]
    assert body["rates"]["currency"] == currency
    assert body["rates"]["per_minute_rate"] == configured["per_minute_rate"]
    assert body["rates"]["billing_increment_seconds"] == configured["billing_increment_seconds"]
    assert body["rates"]["sms_price"] == configured.get("sms_price", "0")
    defaults = await client.get(f"/v1/admin/billing-defaults/{currency}", headers=admin_headers)
    assert defaults.status_code == 200
    assert defaults.json()["rates"] == body["rates"]
    assert defaults.json()["minimum_balance"] == {
        "amount": settings.minimum_balances[currency],
        "currency": currency,
    }


async def test_owner_subscribes_to_a_plan_in_the_wallet_currency(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant()
    plan = await create_plan(client, admin_headers, included_minutes=100, per_minute_rate="800")
    before = datetime.now(UTC)
    changed = await client.put(
        "/v1/subscription", json={"plan_id": plan["id"]}, headers=owner_headers(tenant["id"])
    )
    after = datetime.now(UTC)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["plan"] == plan
    assert body["quota"] == {"included_seconds": 6000, "used_seconds": 0, "remaining_seconds": 6000}
    assert body["rates"] == plan["rates"]
    start = datetime.fromisoformat(body["period_start"])
    end = datetime.fromisoformat(body["period_end"])
    assert before - timedelta(seconds=5) <= start <= after + timedelta(seconds=5)
    assert end == add_month(start)
    assert await subscription(client, tenant["id"]) == body


async def test_member_cannot_change_the_plan(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant()
    plan = await create_plan(client, admin_headers)
    response = await client.put(
        "/v1/subscription", json={"plan_id": plan["id"]}, headers=member_headers(tenant["id"])
    )
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert (await subscription(client, tenant["id"]))["plan"] is None


async def test_plan_in_another_currency_is_a_currency_mismatch(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(currency="INR")
    usd_plan = await create_plan(client, admin_headers, currency="USD", per_minute_rate="5")
    for response in (
        await client.put(
            "/v1/subscription", json={"plan_id": usd_plan["id"]}, headers=owner_headers(tenant["id"])
        ),
        await client.put(
            f"/v1/admin/tenants/{tenant['id']}/subscription",
            json={"plan_id": usd_plan["id"]},
            headers=admin_headers,
        ),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "CURRENCY_MISMATCH"
        assert response.json()["expected_currency"] == "INR"
        assert response.json()["currency"] == "USD"
    assert (await subscription(client, tenant["id"]))["plan"] is None


async def test_unknown_plan_is_not_found(client: httpx.AsyncClient, create_tenant: TenantFactory) -> None:
    tenant = await create_tenant()
    response = await client.put(
        "/v1/subscription", json={"plan_id": plan_id()}, headers=owner_headers(tenant["id"])
    )
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_withdrawn_plan_is_refused_to_the_owner_but_an_admin_may_override(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant()
    withdrawn = await create_plan(client, admin_headers, active=False, included_minutes=10)
    refused = await client.put(
        "/v1/subscription", json={"plan_id": withdrawn["id"]}, headers=owner_headers(tenant["id"])
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "VALIDATION_FAILED"
    assert (await subscription(client, tenant["id"]))["plan"] is None

    overridden = await client.put(
        f"/v1/admin/tenants/{tenant['id']}/subscription",
        json={"plan_id": withdrawn["id"]},
        headers=admin_headers,
    )
    assert overridden.status_code == 200, overridden.text
    assert overridden.json()["plan"]["id"] == withdrawn["id"]
    assert overridden.json()["plan"]["active"] is False
    assert overridden.json()["quota"]["included_seconds"] == 600
    current = await subscription(client, tenant["id"])
    assert current["plan"]["id"] == withdrawn["id"]


async def test_admin_override_of_an_unknown_tenant_is_not_found(
    client: httpx.AsyncClient, admin_headers: Headers
) -> None:
    plan = await create_plan(client, admin_headers)
    response = await client.put(
        "/v1/admin/tenants/t-nobody-here/subscription", json={"plan_id": plan["id"]}, headers=admin_headers
    )
    assert response.status_code == 404


async def test_changing_plan_keeps_the_period_and_the_quota_used(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(balance=10_000)
    owner = owner_headers(tenant["id"])
    big = await create_plan(client, admin_headers, included_minutes=10)
    small = await create_plan(client, admin_headers, included_minutes=5, per_minute_rate="500")
    first = await client.put("/v1/subscription", json={"plan_id": big["id"]}, headers=owner)
    assert first.status_code == 200, first.text

    key = await usage_key(client, admin_headers, tenant["id"])
    call = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "call-q1", "duration_seconds": 90}, headers=key
    )
    assert call.status_code == 201, call.text
    assert call.json()["quota_seconds"] == 120
    assert call.json()["paid_seconds"] == 0
    assert call.json()["amount"] == {"amount": 0, "currency": "INR"}
    used = await subscription(client, tenant["id"])
    assert used["quota"] == {"included_seconds": 600, "used_seconds": 120, "remaining_seconds": 480}

    switched = await client.put("/v1/subscription", json={"plan_id": small["id"]}, headers=owner)
    assert switched.status_code == 200, switched.text
    body = switched.json()
    assert body["plan"]["id"] == small["id"]
    assert (body["period_start"], body["period_end"]) == (
        first.json()["period_start"],
        first.json()["period_end"],
    )
    assert body["quota"] == {"included_seconds": 300, "used_seconds": 120, "remaining_seconds": 180}
    assert body["rates"]["per_minute_rate"] == "500"

    # Switching back does not refill the quota.
    back = await client.put("/v1/subscription", json={"plan_id": big["id"]}, headers=owner)
    assert back.json()["quota"] == {"included_seconds": 600, "used_seconds": 120, "remaining_seconds": 480}
    assert back.json()["period_start"] == first.json()["period_start"]
    assert await balance(client, tenant["id"]) == 10_000


async def test_call_past_the_quota_pays_the_plan_rate_exactly(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    tenant = await create_tenant(balance=10_000)
    # 0.7 paise a second, by the second, one free minute a period; SMS at 0.35 paise.
    plan = await create_plan(
        client,
        admin_headers,
        included_minutes=1,
        per_minute_rate="42",
        billing_increment_seconds=1,
        sms_price="0.35",
    )
    subscribed = await client.put(
        f"/v1/admin/tenants/{tenant['id']}/subscription", json={"plan_id": plan["id"]}, headers=admin_headers
    )
    assert subscribed.status_code == 200, subscribed.text
    key = await usage_key(client, admin_headers, tenant["id"])

    first = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "c-1", "duration_seconds": 61}, headers=key
    )
    assert first.status_code == 201, first.text
    assert (first.json()["quota_seconds"], first.json()["paid_seconds"]) == (60, 1)
    assert first.json()["amount"] == {"amount": 1, "currency": "INR"}  # 0.7 -> 1

    second = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "c-2", "duration_seconds": 61}, headers=key
    )
    assert second.status_code == 201, second.text
    assert (second.json()["quota_seconds"], second.json()["paid_seconds"]) == (0, 61)
    assert second.json()["amount"]["amount"] == 43  # 42.7 -> 43

    sms = await client.post(
        "/v1/usage", json={"kind": "sms", "reference_id": "m-1", "quantity": 3}, headers=key
    )
    assert sms.status_code == 201, sms.text
    assert sms.json()["amount"]["amount"] == 1  # 1.05 -> 1

    assert await balance(client, tenant["id"]) == 10_000 - 1 - 43 - 1
    quota = (await subscription(client, tenant["id"]))["quota"]
    assert quota == {"included_seconds": 60, "used_seconds": 60, "remaining_seconds": 0}


async def test_plan_in_a_currency_without_default_rates_still_charges(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    # No default rates exist for NOK (not in settings, never PUT by a test): the plan alone prices it.
    tenant = await create_tenant(currency="NOK", country="NOR", balance=10_000)
    plan = await create_plan(
        client,
        admin_headers,
        currency="NOK",
        per_minute_rate="60",
        billing_increment_seconds=1,
        sms_price="7",
    )
    subscribed = await client.put(
        "/v1/subscription", json={"plan_id": plan["id"]}, headers=owner_headers(tenant["id"])
    )
    assert subscribed.status_code == 200, subscribed.text
    assert subscribed.json()["rates"]["per_minute_rate"] == "60"
    key = await usage_key(client, admin_headers, tenant["id"])
    sms = await client.post(
        "/v1/usage", json={"kind": "sms", "reference_id": "n-1", "quantity": 2}, headers=key
    )
    assert sms.status_code == 201, sms.text
    assert sms.json()["amount"] == {"amount": 14, "currency": "NOK"}
    auth = await client.post("/v1/calls/n-call/authorize", json={"max_duration_seconds": 30}, headers=key)
    assert auth.status_code == 200, auth.text
    assert auth.json()["allowed"] is True
    assert auth.json()["hold"] == {"amount": 30, "currency": "NOK"}
    assert await balance(client, tenant["id"]) == 10_000 - 14


@pytest.mark.parametrize(
    ("currency", "country", "rate", "seconds", "amount"),
    [
        ("JPY", "JPN", "3", 10, 1),  # 0.5 yen -> 1
        ("JPY", "JPN", "3", 61, 3),  # 3.05 yen -> 3
        ("KWD", "KWT", "250", 61, 254),  # 254.1667 fils -> 254
    ],
)
async def test_plan_rates_in_zero_and_three_decimal_currencies_charge_whole_minor_units(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: Headers,
    currency: str,
    country: str,
    rate: str,
    seconds: int,
    amount: int,
) -> None:
    tenant = await create_tenant(currency=currency, country=country, balance=100_000)
    plan = await create_plan(
        client, admin_headers, currency=currency, per_minute_rate=rate, billing_increment_seconds=1
    )
    subscribed = await client.put(
        f"/v1/admin/tenants/{tenant['id']}/subscription", json={"plan_id": plan["id"]}, headers=admin_headers
    )
    assert subscribed.status_code == 200, subscribed.text
    key = await usage_key(client, admin_headers, tenant["id"])
    call = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": "x-1", "duration_seconds": seconds}, headers=key
    )
    assert call.status_code == 201, call.text
    assert call.json()["amount"] == {"amount": amount, "currency": currency}
    assert await balance(client, tenant["id"]) == 100_000 - amount


# --- billing defaults -----------------------------------------------------------------------------------


async def test_billing_defaults_change_what_a_tenant_without_a_plan_pays(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    first = await client.put(
        "/v1/admin/billing-defaults/SGD",
        json={"per_minute_rate": "10", "sms_price": "3", "minimum_balance": 100},
        headers=admin_headers,
    )
    assert first.status_code == 200, first.text
    assert first.json()["rates"]["sms_price"] == "3"
    assert first.json()["minimum_balance"] == {"amount": 100, "currency": "SGD"}
    read = await client.get("/v1/admin/billing-defaults/SGD", headers=admin_headers)
    assert read.status_code == 200
    assert read.json() == first.json()

    tenant = await create_tenant(currency="SGD", country="SGP", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    before = await client.post(
        "/v1/usage", json={"kind": "sms", "reference_id": "s-1", "quantity": 2}, headers=key
    )
    assert before.status_code == 201, before.text
    assert before.json()["amount"] == {"amount": 6, "currency": "SGD"}

    second = await client.put(
        "/v1/admin/billing-defaults/SGD",
        json={"per_minute_rate": "12.5", "sms_price": "1.5", "minimum_balance": 100},
        headers=admin_headers,
    )
    assert second.status_code == 200, second.text
    after = await client.post(
        "/v1/usage", json={"kind": "sms", "reference_id": "s-2", "quantity": 3}, headers=key
    )
    assert after.status_code == 201, after.text
    assert after.json()["amount"]["amount"] == 5  # 4.5 -> 5
    assert await balance(client, tenant["id"]) == 1_000 - 6 - 5
    rates = (await subscription(client, tenant["id"]))["rates"]
    assert (rates["per_minute_rate"], rates["sms_price"]) == ("12.5", "1.5")


async def test_billing_defaults_minimum_balance_gates_call_authorization(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: Headers
) -> None:
    put = await client.put(
        "/v1/admin/billing-defaults/AUD",
        json={"per_minute_rate": "10", "minimum_balance": 500},
        headers=admin_headers,
    )
    assert put.status_code == 200, put.text
    tenant = await create_tenant(currency="AUD", country="AUS", balance=499)
    key = await usage_key(client, admin_headers, tenant["id"])

    refused = await client.post("/v1/calls/a-1/authorize", json={}, headers=key)
    assert refused.status_code == 200, refused.text
    assert refused.json()["allowed"] is False
    assert refused.json()["code"] == "BELOW_MINIMUM"
    assert refused.json()["hold"] is None
    assert refused.json()["max_seconds"] == 0
    wallet = (await client.get("/v1/wallet", headers=owner_headers(tenant["id"]))).json()
    assert wallet["reserved"]["amount"] == 0

    lowered = await client.put(
        "/v1/admin/billing-defaults/AUD",
        json={"per_minute_rate": "10", "minimum_balance": 499},
        headers=admin_headers,
    )
    assert lowered.status_code == 200
    allowed = await client.post("/v1/calls/a-2/authorize", json={"max_duration_seconds": 120}, headers=key)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["allowed"] is True
    assert allowed.json()["max_seconds"] == 120
    assert allowed.json()["hold"] == {"amount": 20, "currency": "AUD"}


@pytest.mark.parametrize(
    "body",
    [
        {"per_minute_rate": 0.5, "minimum_balance": 0},
        {"per_minute_rate": "1", "minimum_balance": 10.0},
        {"per_minute_rate": "1", "minimum_balance": -1},
        {"per_minute_rate": "1", "sms_price": 0.02, "minimum_balance": 0},
        {"minimum_balance": 0},
    ],
)
async def test_billing_defaults_refuse_floats_and_missing_rates(
    client: httpx.AsyncClient, admin_headers: Headers, body: dict[str, Any]
) -> None:
    response = await client.put("/v1/admin/billing-defaults/SEK", json=body, headers=admin_headers)
    assert response.status_code == 422, response.text
