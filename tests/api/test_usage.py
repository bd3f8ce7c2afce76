"""POST /v1/usage and /v1/usage/batch: rated exactly, one ledger row per charge, exactly once per
(tenant, kind, reference id), quota first, and what the wallet cannot pay is owed and flagged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.auth import owner_headers
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from tests.fixtures.usage import (
    create_plan,
    flagged_tenant_ids,
    ledger,
    quota_used,
    ref,
    subscribe,
    usage_key,
    usd,
    wallet_of,
)
from walletsvc.db.engine import Database

# The default USD rates (settings.default_rates): 5 cents a minute by the minute, a 10 cent connection
# fee; SMS 2, email 1, fax page 15, file transfer 5.


@pytest.fixture
def client(usage_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Every test here runs through each entry point of `POST /v1/usage` (tests/fixtures/usage.py)."""
    return usage_client


# --- each kind, rated exactly ------------------------------------------------------------------------


async def test_each_kind_is_charged_its_rated_price_with_one_usage_charge_row(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=10_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    records: list[tuple[dict[str, Any], int]] = [
        ({"kind": "call", "duration_seconds": 61}, 20),  # 2 minutes at 5 + the 10 cent fee
        ({"kind": "call", "duration_seconds": 60}, 15),  # exactly a minute: not rounded up
        ({"kind": "sms", "quantity": 3}, 6),
        ({"kind": "email", "quantity": 4}, 4),
        ({"kind": "fax", "quantity": 2}, 30),  # per page
        ({"kind": "file_transfer"}, 5),  # quantity defaults to one
    ]
    charges: list[dict[str, Any]] = []
    for record, price in records:
        response = await client.post("/v1/usage", json={**record, "reference_id": ref()}, headers=key)
        assert response.status_code == 201, response.text
        charge = response.json()
        assert charge["kind"] == record["kind"]
        assert charge["amount"] == usd(price), record
        assert charge["charged"] == usd(price)
        assert charge["owed"] == usd(0)
        assert charge["replayed"] is False
        assert charge["tenant_id"] == tenant["id"]
        charges.append(charge)

    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert wallet["balance"] == usd(10_000 - 80)
    assert wallet["flagged"] is False
    rows = await ledger(client, tenant["id"], "usage_charge")
    assert len(rows) == len(records)
    by_charge = {row["reference"]["id"]: row for row in rows}
    assert set(by_charge) == {c["id"] for c in charges}
    for charge in charges:
        row = by_charge[charge["id"]]
        assert row["amount"] == usd(-charge["charged"]["amount"])
        assert row["counter_account"] == "revenue:usage"
        assert row["reference"]["type"] == "usage_charge"
        assert row["balance_after"]["amount"] == row["balance_before"]["amount"] - charge["charged"]["amount"]


async def test_inr_call_is_charged_per_started_minute_in_paise(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="INR", balance=50_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    response = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": ref(), "duration_seconds": 121}, headers=key
    )
    assert response.status_code == 201, response.text
    charge = response.json()
    assert charge["amount"] == {"amount": 3_000, "currency": "INR"}  # 3 started minutes at Rs 10
    assert charge["billable_seconds"] == 180
    assert charge["paid_seconds"] == 180
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"]["amount"] == 47_000


async def test_call_that_never_connected_costs_nothing_and_writes_no_ledger_row(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=500)
    key = await usage_key(client, admin_headers, tenant["id"])
    response = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": ref(), "duration_seconds": 0}, headers=key
    )
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == usd(0)
    assert response.json()["billable_seconds"] == 0
    assert await ledger(client, tenant["id"], "usage_charge") == []
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(500)


# --- exactly once ------------------------------------------------------------------------------------


async def test_retried_hangup_answers_the_first_charge_and_charges_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    call_id = ref("call")
    first = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": call_id, "duration_seconds": 125}, headers=key
    )
    assert first.status_code == 201, first.text
    assert first.json()["amount"] == usd(25)

    retry = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": call_id, "duration_seconds": 125}, headers=key
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["replayed"] is True
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["amount"] == usd(25)

    # A retry that disagrees about the duration is still the same hangup: the first charge stands.
    late = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": call_id, "duration_seconds": 3_600}, headers=key
    )
    assert late.status_code == 200, late.text
    assert late.json()["id"] == first.json()["id"]
    assert late.json()["duration_seconds"] == 125

    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(975)
    rows = await ledger(client, tenant["id"], "usage_charge")
    assert [r["reference"]["id"] for r in rows] == [first.json()["id"]]


async def test_same_reference_id_with_another_kind_is_another_charge(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    shared = ref("shared")
    call = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": shared, "duration_seconds": 30}, headers=key
    )
    sms = await client.post("/v1/usage", json={"kind": "sms", "reference_id": shared}, headers=key)
    fax = await client.post(
        "/v1/usage", json={"kind": "fax", "reference_id": shared, "quantity": 1}, headers=key
    )
    assert [call.status_code, sms.status_code, fax.status_code] == [201, 201, 201]
    assert len({call.json()["id"], sms.json()["id"], fax.json()["id"]}) == 3
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(1_000 - 15 - 2 - 15)
    assert len(await ledger(client, tenant["id"], "usage_charge")) == 3


async def test_same_reference_id_in_two_tenants_is_charged_in_each(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    first = await create_tenant(currency="USD", country="USA", balance=100)
    second = await create_tenant(currency="USD", country="USA", balance=100)
    platform = await usage_key(client, admin_headers, None)
    shared = ref("sms")
    for tenant in (first, second):
        response = await client.post(
            "/v1/usage",
            json={"tenant_id": tenant["id"], "kind": "sms", "reference_id": shared},
            headers=platform,
        )
        assert response.status_code == 201, response.text
        assert response.json()["tenant_id"] == tenant["id"]
    for tenant in (first, second):
        assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(98)


# --- who may charge whom ---------------------------------------------------------------------------


async def test_platform_key_must_name_the_tenant_and_charges_the_one_it_names(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=100)
    platform = await usage_key(client, admin_headers, None)
    missing = await client.post("/v1/usage", json={"kind": "sms", "reference_id": ref()}, headers=platform)
    assert_problem(missing, 422, "VALIDATION_FAILED")
    named = await client.post(
        "/v1/usage", json={"tenant_id": tenant["id"], "kind": "sms", "reference_id": ref()}, headers=platform
    )
    assert named.status_code == 201, named.text
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(98)


async def test_unknown_tenant_is_not_found_for_a_platform_key(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    platform = await usage_key(client, admin_headers, None)
    response = await client.post(
        "/v1/usage",
        json={"tenant_id": new_tenant_id(), "kind": "sms", "reference_id": ref()},
        headers=platform,
    )
    assert_problem(response, 404, "NOT_FOUND")


async def test_tenant_key_may_not_charge_another_tenant(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    mine = await create_tenant(currency="USD", country="USA", balance=100)
    theirs = await create_tenant(currency="USD", country="USA", balance=100)
    key = await usage_key(client, admin_headers, mine["id"])
    response = await client.post(
        "/v1/usage", json={"tenant_id": theirs["id"], "kind": "sms", "reference_id": ref()}, headers=key
    )
    assert_problem(response, 403, "FORBIDDEN")
    own = await client.post(
        "/v1/usage", json={"tenant_id": mine["id"], "kind": "sms", "reference_id": ref()}, headers=key
    )
    assert own.status_code == 201, own.text
    assert (await wallet_of(client, admin_headers, theirs["id"]))["balance"] == usd(100)
    assert (await wallet_of(client, admin_headers, mine["id"]))["balance"] == usd(98)


async def test_key_without_usage_write_may_not_charge(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=100)
    reader = await usage_key(client, admin_headers, tenant["id"], scopes=("wallet:read", "wallet:write"))
    response = await client.post("/v1/usage", json={"kind": "sms", "reference_id": ref()}, headers=reader)
    assert_problem(response, 403, "FORBIDDEN")
    portal_owner = await client.post(
        "/v1/usage", json={"kind": "sms", "reference_id": ref()}, headers=owner_headers(tenant["id"])
    )
    assert_problem(portal_owner, 403, "FORBIDDEN")
    no_credentials = await client.post("/v1/usage", json={"kind": "sms", "reference_id": ref()})
    assert_problem(no_credentials, 401, "UNAUTHORIZED")
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(100)


async def test_malformed_usage_records_are_refused_and_charge_nothing(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=100)
    key = await usage_key(client, admin_headers, tenant["id"])
    bad: list[dict[str, Any]] = [
        {"kind": "call"},  # a call needs its duration
        {"kind": "sms", "duration_seconds": 10},  # messages are counted, not timed
        {"kind": "fax", "duration_seconds": 10, "quantity": 2},
        {"kind": "call", "duration_seconds": 60.0},  # never a float, even a whole one
        {"kind": "call", "duration_seconds": 61.5},
        {"kind": "call", "duration_seconds": "61"},
        {"kind": "call", "duration_seconds": -1},
        {"kind": "sms", "quantity": 0},
        {"kind": "sms", "quantity": 1.0},
        {"kind": "voicemail", "quantity": 1},
    ]
    for record in bad:
        response = await client.post("/v1/usage", json={**record, "reference_id": ref()}, headers=key)
        assert_problem(response, 422, "VALIDATION_FAILED")
    bad_reference = await client.post("/v1/usage", json={"kind": "sms", "reference_id": ""}, headers=key)
    assert_problem(bad_reference, 422, "VALIDATION_FAILED")
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(100)
    assert await ledger(client, tenant["id"], "usage_charge") == []


# --- quota first -----------------------------------------------------------------------------------


async def test_plan_quota_pays_first_and_the_wallet_pays_the_rest(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    plan = await create_plan(
        client, admin_headers, included_minutes=2, per_minute_rate="7", connection_fee="3"
    )
    subscription = await subscribe(client, admin_headers, tenant["id"], plan["id"])
    assert subscription["quota"] == {"included_seconds": 120, "used_seconds": 0, "remaining_seconds": 120}
    key = await usage_key(client, admin_headers, tenant["id"])

    # 30 s bills a minute, all of it from the quota: only the connection fee is paid.
    free = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": ref(), "duration_seconds": 30}, headers=key
    )
    assert free.status_code == 201, free.text
    assert free.json()["quota_seconds"] == 60
    assert free.json()["paid_seconds"] == 0
    assert free.json()["amount"] == usd(3)
    assert await quota_used(client, tenant["id"]) == 60

    # 130 s bills 3 minutes: the last quota minute, then 2 paid minutes at 7 and the fee.
    partly = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": ref(), "duration_seconds": 130}, headers=key
    )
    assert partly.status_code == 201, partly.text
    assert partly.json()["billable_seconds"] == 180
    assert partly.json()["quota_seconds"] == 60
    assert partly.json()["paid_seconds"] == 120
    assert partly.json()["amount"] == usd(2 * 7 + 3)

    sub = (await client.get("/v1/subscription", headers=owner_headers(tenant["id"]))).json()
    assert sub["quota"] == {"included_seconds": 120, "used_seconds": 120, "remaining_seconds": 0}

    # The quota is spent: the next call is paid in full.
    paid = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": ref(), "duration_seconds": 60}, headers=key
    )
    assert paid.json()["quota_seconds"] == 0
    assert paid.json()["amount"] == usd(7 + 3)
    assert await quota_used(client, tenant["id"]) == 120

    # Messages never touch the call quota.
    sms = await client.post("/v1/usage", json={"kind": "sms", "reference_id": ref()}, headers=key)
    assert sms.json()["quota_seconds"] == 0
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(1_000 - 3 - 17 - 10)


async def test_replayed_call_does_not_use_the_quota_twice(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    plan = await create_plan(client, admin_headers, included_minutes=10)
    await subscribe(client, admin_headers, tenant["id"], plan["id"])
    key = await usage_key(client, admin_headers, tenant["id"])
    body = {"kind": "call", "reference_id": ref(), "duration_seconds": 150}
    assert (await client.post("/v1/usage", json=body, headers=key)).status_code == 201
    assert (await client.post("/v1/usage", json=body, headers=key)).status_code == 200
    assert await quota_used(client, tenant["id"]) == 180


# --- not enough money --------------------------------------------------------------------------------


async def test_charge_beyond_the_balance_pays_what_it_can_owes_the_rest_and_flags_the_tenant(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=30)
    key = await usage_key(client, admin_headers, tenant["id"])
    body = {"kind": "call", "reference_id": ref("call"), "duration_seconds": 600}  # 10 min + fee = 60

    refused = await client.post("/v1/usage", json=body, headers=key)
    problem = assert_problem(refused, 402, "INSUFFICIENT_FUNDS")
    assert problem["charged"] == usd(30)
    assert problem["owed"] == usd(30)
    assert problem["amount"] == usd(60)
    charge_id = problem["charge_id"]

    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert wallet["balance"] == usd(0)
    assert wallet["owed"] == usd(30)
    assert wallet["flagged"] is True
    portal_view = (await client.get("/v1/wallet", headers=owner_headers(tenant["id"]))).json()
    assert portal_view["flagged"] is True
    assert portal_view["owed"] == usd(30)
    assert tenant["id"] in await flagged_tenant_ids(client, admin_headers)
    rows = await ledger(client, tenant["id"], "usage_charge")
    assert [(r["reference"]["id"], r["amount"]) for r in rows] == [(charge_id, usd(-30))]

    # The same record again: the same refusal about the same charge, nothing more charged.
    again = await client.post("/v1/usage", json=body, headers=key)
    repeat = assert_problem(again, 402, "INSUFFICIENT_FUNDS")
    assert (repeat["charge_id"], repeat["charged"], repeat["owed"]) == (charge_id, usd(30), usd(30))

    # More usage on an empty wallet: nothing paid, all owed, the balance stays at zero.
    sms = await client.post("/v1/usage", json={"kind": "sms", "reference_id": ref()}, headers=key)
    sms_problem = assert_problem(sms, 402, "INSUFFICIENT_FUNDS")
    assert sms_problem["charged"] == usd(0)
    assert sms_problem["owed"] == usd(2)
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert wallet["balance"] == usd(0)
    assert wallet["owed"] == usd(32)
    assert len(await ledger(client, tenant["id"], "usage_charge")) == 1


async def test_credit_pays_what_is_owed_first_and_lifts_the_flag(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=30)
    key = await usage_key(client, admin_headers, tenant["id"])
    body = {"kind": "call", "reference_id": ref("call"), "duration_seconds": 600}
    charge_id = assert_problem(
        await client.post("/v1/usage", json=body, headers=key), 402, "INSUFFICIENT_FUNDS"
    )["charge_id"]
    sms_id = assert_problem(
        await client.post("/v1/usage", json={"kind": "sms", "reference_id": ref()}, headers=key),
        402,
        "INSUFFICIENT_FUNDS",
    )["charge_id"]

    # A credit smaller than what is owed pays the oldest charge first and keeps the flag.
    small = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 20, "reason": "goodwill"},
        headers=admin_headers,
    )
    assert small.status_code == 201, small.text
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["owed"], wallet["flagged"]) == (usd(0), usd(12), True)

    credit = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 100, "reason": "top up by hand"},
        headers=admin_headers,
    )
    assert credit.status_code == 201, credit.text
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert wallet["balance"] == usd(100 - 12)
    assert wallet["owed"] == usd(0)
    assert wallet["flagged"] is False
    assert tenant["id"] not in await flagged_tenant_ids(client, admin_headers)

    paid_rows = [
        (r["reference"]["id"], r["amount"]["amount"])
        for r in reversed(await ledger(client, tenant["id"], "usage_charge"))
    ]
    # The charge's own 30, then the owed 30 in two credits' worth, then the SMS's 2.
    assert paid_rows == [(charge_id, -30), (charge_id, -20), (charge_id, -10), (sms_id, -2)]
    assert sum(amount for _, amount in paid_rows) == -62

    # The record that was refused is now paid in full: its retry is a plain replay.
    replay = await client.post("/v1/usage", json=body, headers=key)
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == charge_id
    assert replay.json()["charged"] == usd(60)
    assert replay.json()["owed"] == usd(0)


# --- batches -----------------------------------------------------------------------------------------


async def test_batch_answers_every_record_on_its_own_in_order(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    rich = await create_tenant(currency="USD", country="USA", balance=1_000)
    poor = await create_tenant(currency="USD", country="USA", balance=10)
    platform = await usage_key(client, admin_headers, None)
    dup = ref("sms")
    records = [
        {"tenant_id": rich["id"], "kind": "sms", "reference_id": dup, "quantity": 2},
        {"tenant_id": new_tenant_id(), "kind": "sms", "reference_id": ref()},  # unknown tenant
        {"tenant_id": rich["id"], "kind": "sms", "reference_id": ref(), "duration_seconds": 5},
        {"tenant_id": poor["id"], "kind": "call", "reference_id": ref(), "duration_seconds": 120},
        {"tenant_id": rich["id"], "kind": "call", "reference_id": ref(), "duration_seconds": 61},
        {"kind": "email", "reference_id": ref()},  # no tenant named by a platform key
        {"tenant_id": rich["id"], "kind": "sms", "reference_id": dup, "quantity": 2},  # duplicate
        {"tenant_id": poor["id"], "kind": "email", "reference_id": ref()},
    ]
    response = await client.post("/v1/usage/batch", json={"records": records}, headers=platform)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(records)))
    assert [r["status"] for r in results] == [201, 404, 422, 402, 201, 422, 200, 402]
    assert results[1]["problem"]["code"] == "NOT_FOUND"
    assert results[2]["problem"]["code"] == "VALIDATION_FAILED"
    assert results[5]["problem"]["code"] == "VALIDATION_FAILED"
    assert results[1]["charge"] is None
    # The poor tenant's call costs 20 on a balance of 10; its email then finds nothing left.
    assert results[3]["problem"]["code"] == "INSUFFICIENT_FUNDS"
    assert results[3]["charge"]["charged"] == usd(10)
    assert results[3]["charge"]["owed"] == usd(10)
    assert results[7]["charge"]["owed"] == usd(1)
    assert results[0]["charge"]["amount"] == usd(4)
    assert results[4]["charge"]["amount"] == usd(20)
    # The duplicate is the first record's charge, charged once.
    assert results[6]["charge"]["id"] == results[0]["charge"]["id"]
    assert results[6]["charge"]["replayed"] is True

    assert (await wallet_of(client, admin_headers, rich["id"]))["balance"] == usd(1_000 - 4 - 20)
    poor_wallet = await wallet_of(client, admin_headers, poor["id"])
    assert (poor_wallet["balance"], poor_wallet["owed"], poor_wallet["flagged"]) == (usd(0), usd(11), True)
    assert len(await ledger(client, rich["id"], "usage_charge")) == 2


async def test_batch_with_a_tenant_key_refuses_only_the_records_naming_another_tenant(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    mine = await create_tenant(currency="USD", country="USA", balance=100)
    theirs = await create_tenant(currency="USD", country="USA", balance=100)
    key = await usage_key(client, admin_headers, mine["id"])
    records = [
        {"kind": "sms", "reference_id": ref()},
        {"tenant_id": theirs["id"], "kind": "sms", "reference_id": ref()},
        {"tenant_id": mine["id"], "kind": "email", "reference_id": ref()},
    ]
    response = await client.post("/v1/usage/batch", json={"records": records}, headers=key)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 403, 201]
    assert results[1]["problem"]["code"] == "FORBIDDEN"
    assert (await wallet_of(client, admin_headers, mine["id"]))["balance"] == usd(97)
    assert (await wallet_of(client, admin_headers, theirs["id"]))["balance"] == usd(100)


async def test_batch_of_a_thousand_records_is_charged_in_full_and_a_thousand_and_one_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=5_000)
    key = await usage_key(client, admin_headers, tenant["id"])

    too_many = [{"kind": "sms", "reference_id": ref()} for _ in range(1_001)]
    assert_problem(
        await client.post("/v1/usage/batch", json={"records": too_many}, headers=key),
        422,
        "VALIDATION_FAILED",
    )
    assert_problem(
        await client.post("/v1/usage/batch", json={"records": []}, headers=key), 422, "VALIDATION_FAILED"
    )
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(5_000)

    # 900 distinct messages and 100 of them sent twice in the same batch.
    distinct = [{"kind": "sms", "reference_id": ref()} for _ in range(900)]
    records = distinct + distinct[:100]
    response = await client.post("/v1/usage/batch", json={"records": records}, headers=key)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 1_000
    assert [r["status"] for r in results] == [201] * 900 + [200] * 100
    assert [r["charge"]["id"] for r in results[900:]] == [r["charge"]["id"] for r in results[:100]]
    assert len({r["charge"]["id"] for r in results}) == 900

    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(5_000 - 900 * 2)
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT reference_id, amount FROM ledger_entries WHERE tenant_id = :t AND type = 'usage_charge'"
                ),
                {"t": tenant["id"]},
            )
        ).all()
    assert len(rows) == 900
    assert {r[0] for r in rows} == {r["charge"]["id"] for r in results}
    assert {r[1] for r in rows} == {-2}

    # The whole batch again: every record answers its first charge, nothing is charged.
    again = await client.post("/v1/usage/batch", json={"records": records}, headers=key)
    assert {r["status"] for r in again.json()["results"]} == {200}
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(5_000 - 900 * 2)


# Malformed records, each refused in its place: (the record, where its error is, the error's type).
MALFORMED: list[tuple[Any, list[str], str]] = [
    ({"kind": "voicemail", "reference_id": "r-1", "quantity": 1}, ["kind"], "enum"),
    ({"kind": "sms"}, ["reference_id"], "missing"),
    (
        {"kind": "call", "reference_id": "r-2", "duration_seconds": -1},
        ["duration_seconds"],
        "greater_than_equal",
    ),
    ({"kind": "call", "reference_id": "r-3", "duration_seconds": 12.5}, ["duration_seconds"], "int_type"),
    ({"kind": "sms", "reference_id": "r-4", "quantity": "2"}, ["quantity"], "int_type"),
    ("sms", [], "model_attributes_type"),
    (None, [], "model_attributes_type"),
    ([{"kind": "sms", "reference_id": "r-5"}], [], "model_attributes_type"),
]


async def test_a_malformed_record_is_refused_in_its_place_and_the_others_are_charged(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=100)
    key = await usage_key(client, admin_headers, tenant["id"])
    records: list[Any] = [{"kind": "sms", "reference_id": ref()}]
    records += [record for record, _, _ in MALFORMED]
    records += [{"kind": "call", "reference_id": ref(), "duration_seconds": 61}]
    response = await client.post("/v1/usage/batch", json={"records": records}, headers=key)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(records)))
    assert [r["status"] for r in results] == [201] + [422] * len(MALFORMED) + [201]
    for result, (_, field, error_type) in zip(results[1:-1], MALFORMED, strict=True):
        assert result["charge"] is None
        problem = result["problem"]
        assert (problem["status"], problem["code"]) == (422, "VALIDATION_FAILED")
        assert problem["instance"] == "/v1/usage/batch"
        located = ["body", "records", str(result["index"]), *field]
        assert [(e["loc"], e["type"]) for e in problem["errors"]] == [(located, error_type)], problem
        assert problem["detail"].startswith(".".join(located))
    assert results[0]["charge"]["amount"] == usd(2)
    assert results[-1]["charge"]["amount"] == usd(20)
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(100 - 2 - 20)
    assert len(await ledger(client, tenant["id"], "usage_charge")) == 2


def _without(problem: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k not in fields}


async def test_a_record_refused_in_a_batch_is_refused_as_it_would_be_alone(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=100)
    key = await usage_key(client, admin_headers, tenant["id"])
    records: list[Any] = [record for record, _, _ in MALFORMED if isinstance(record, dict)]
    # Well formed, but an SMS is counted, not timed: refused when the record is made.
    records.append({"kind": "sms", "reference_id": ref(), "duration_seconds": 5})
    batch = await client.post("/v1/usage/batch", json={"records": records}, headers=key)
    assert batch.status_code == 200, batch.text
    for index, (record, result) in enumerate(zip(records, batch.json()["results"], strict=True)):
        alone = assert_problem(
            await client.post("/v1/usage", json=record, headers=key), 422, "VALIDATION_FAILED"
        )
        in_batch = result["problem"]
        assert result["status"] == 422
        assert _without(in_batch, "detail", "errors", "instance", "request_id") == _without(
            alone, "detail", "errors", "instance", "request_id"
        )
        where = ["body", "records", str(index)]
        assert [{**e, "loc": e["loc"][len(where) :]} for e in in_batch.get("errors", [])] == [
            {**e, "loc": e["loc"][1:]} for e in alone.get("errors", [])
        ]
        assert all(e["loc"][: len(where)] == where for e in in_batch.get("errors", []))
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(100)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[]",
        b'[{"kind": "sms", "reference_id": "r-1"}]',
        b'"records"',
        b"{}",
        b'{"record": [{"kind": "sms", "reference_id": "r-1"}]}',
        b'{"records": null}',
        b'{"records": "sms"}',
        b'{"records": {"kind": "sms", "reference_id": "r-1"}}',
        b'{"records": []}',
    ],
)
async def test_a_batch_whose_envelope_is_malformed_is_refused_whole(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], body: bytes
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=100)
    key = await usage_key(client, admin_headers, tenant["id"])
    response = await client.post(
        "/v1/usage/batch", content=body, headers={**key, "content-type": "application/json"}
    )
    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert all(e["loc"][0] == "body" for e in problem["errors"]), problem
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(100)


async def test_a_batch_retried_with_its_idempotency_key_answers_the_first_answer(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=100)
    key = await usage_key(client, admin_headers, tenant["id"])
    records = [{"kind": "sms", "reference_id": ref()}, {"kind": "fax", "reference_id": ""}]
    headers = {**key, "Idempotency-Key": ref("batch")}
    first = await client.post("/v1/usage/batch", json={"records": records}, headers=headers)
    assert first.status_code == 200, first.text
    assert [r["status"] for r in first.json()["results"]] == [201, 422]
    again = await client.post("/v1/usage/batch", json={"records": records}, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post("/v1/usage/batch", json={"records": records[:1]}, headers=headers)
    assert_problem(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(98)


async def test_a_call_with_a_quantity_is_refused_and_charges_nothing(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    response = await client.post(
        "/v1/usage",
        json={"kind": "call", "reference_id": ref("call"), "duration_seconds": 60, "quantity": 5},
        headers=key,
    )
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(1_000)
