"""The tenant's wallet view, and manual adjustments by admins: credits, debits, refusals, the ledger rows."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import bearer, make_token, member_headers, owner_headers
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import TenantFactory, new_tenant_id

WALLET_FIELDS = {
    "tenant_id",
    "currency",
    "balance",
    "reserved",
    "available",
    "low_balance_threshold",
    "below_threshold",
    "flagged",
    "auto_topup",
}


def money(amount: int, currency: str = "INR") -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def assert_money(value: Any, currency: str) -> int:
    """`{"amount": <int>, "currency": "INR"}` and nothing else; returns the amount."""
    assert isinstance(value, dict), value
    assert set(value) == {"amount", "currency"}, value
    assert type(value["amount"]) is int, value  # never a float, never a string, never a bool
    assert value["currency"] == currency
    return value["amount"]


async def adjust(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tenant_id: str,
    amount: Any,
    reason: Any = "test",
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {"amount": amount, "reason": reason, **extra}
    return await client.post(f"/v1/admin/tenants/{tenant_id}/adjustments", json=body, headers=headers)


async def history(client: httpx.AsyncClient, tenant_id: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/transactions", params={"limit": 500}, headers=member_headers(tenant_id))
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


async def wallet_of(client: httpx.AsyncClient, tenant_id: str) -> dict[str, Any]:
    response = await client.get("/v1/wallet", headers=member_headers(tenant_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_wallet_shows_balance_reserved_available_threshold_flags_and_auto_topup(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="INR", balance=1_234, low_balance_threshold=5_000)
    wallet = await wallet_of(client, tenant["id"])
    assert set(wallet) >= WALLET_FIELDS
    assert wallet["tenant_id"] == tenant["id"]
    assert wallet["currency"] == "INR"
    assert assert_money(wallet["balance"], "INR") == 1_234
    assert assert_money(wallet["reserved"], "INR") == 0
    assert assert_money(wallet["available"], "INR") == 1_234
    assert assert_money(wallet["low_balance_threshold"], "INR") == 5_000
    assert wallet["below_threshold"] is True
    assert wallet["flagged"] is False
    assert wallet["auto_topup"] == {"enabled": False, "threshold": None, "amount": None}


async def test_wallet_above_its_threshold_is_not_below_threshold(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=5_000, low_balance_threshold=5_000)
    wallet = await wallet_of(client, tenant["id"])
    assert wallet["below_threshold"] is False


async def test_member_owner_and_admin_see_the_same_wallet(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="JPY", country="JPN", balance=9_000)
    as_member = (await client.get("/v1/wallet", headers=member_headers(tenant["id"]))).json()
    as_owner = (await client.get("/v1/wallet", headers=owner_headers(tenant["id"]))).json()
    as_admin = (await client.get(f"/v1/admin/tenants/{tenant['id']}/wallet", headers=admin_headers)).json()
    assert as_member == as_owner == as_admin
    assert as_member["balance"] == money(9_000, "JPY")


async def test_a_token_for_a_tenant_that_does_not_exist_finds_no_wallet(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/wallet", headers=member_headers(new_tenant_id())), 404, "NOT_FOUND")


async def test_admin_without_a_tenant_is_sent_to_the_admin_routes(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = assert_problem(await client.get("/v1/wallet", headers=admin_headers), 403, "FORBIDDEN")
    assert "admin" in body["detail"]


async def test_credit_adds_to_the_balance_and_writes_one_ledger_row(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant()
    response = await adjust(client, admin_headers, tenant["id"], 2_500, "goodwill credit for outage")
    assert response.status_code == 201, response.text
    body = response.json()
    row = body["transaction"]
    assert row["type"] == "adjustment"
    assert row["tenant_id"] == tenant["id"]
    assert row["seq"] == 1
    assert assert_money(row["amount"], "INR") == 2_500
    assert assert_money(row["balance_before"], "INR") == 0
    assert assert_money(row["balance_after"], "INR") == 2_500
    assert row["counter_account"] == "adjustments"
    assert row["reference"]["type"] == "adjustment"
    assert row["reference"]["id"]
    assert row["description"] == "goodwill credit for outage"
    assert row["created_at"]
    assert body["wallet"]["balance"] == money(2_500)
    assert body["wallet"]["available"] == money(2_500)

    assert (await wallet_of(client, tenant["id"]))["balance"] == money(2_500)
    assert await history(client, tenant["id"]) == [row]


async def test_debit_takes_from_the_balance(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(balance=1_000)
    response = await adjust(client, admin_headers, tenant["id"], -400, "clawback of duplicate credit")
    assert response.status_code == 201, response.text
    row = response.json()["transaction"]
    assert row["amount"] == money(-400)
    assert row["balance_before"] == money(1_000)
    assert row["balance_after"] == money(600)
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(600)


async def test_debit_to_exactly_zero_is_allowed(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(balance=1_000)
    response = await adjust(client, admin_headers, tenant["id"], -1_000, "close out")
    assert response.status_code == 201, response.text
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(0)


async def test_adjustment_row_names_the_admin_who_made_it(
    client: httpx.AsyncClient, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    alice = bearer(make_token(role="super_admin", sub="ops-alice"))
    response = await adjust(client, alice, tenant["id"], 100, "manual credit")
    assert response.status_code == 201, response.text
    assert response.json()["transaction"]["actor"] == "user:ops-alice"
    bob = bearer(make_token(role="super_admin", sub="ops-bob"))
    assert (await adjust(client, bob, tenant["id"], -50, "manual debit")).status_code == 201
    rows = await history(client, tenant["id"])
    assert [r["actor"] for r in rows] == ["user:ops-bob", "user:ops-alice"]


async def test_adjustment_by_an_admin_api_key_names_the_key(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant()
    created = await client.post(
        "/v1/admin/api-keys", json={"scopes": ["admin"], "name": "ops automation"}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    key = created.json()
    response = await adjust(client, bearer(key["key"]), tenant["id"], 300, "scripted credit")
    assert response.status_code == 201, response.text
    assert response.json()["transaction"]["actor"] == f"api_key:{key['id']}"


@pytest.mark.parametrize("reason", [None, "", "   ", "\t\n", 42, ["why"], "r" * 501])
async def test_adjustment_reason_is_required_and_nothing_is_written_without_one(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], reason: Any
) -> None:
    tenant = await create_tenant(balance=100)
    response = await adjust(client, admin_headers, tenant["id"], 50, reason)
    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert any(err["loc"][-1] == "reason" for err in problem["errors"])
    assert len(await history(client, tenant["id"])) == 1
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(100)


async def test_adjustment_without_a_reason_field_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant()
    response = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments", json={"amount": 100}, headers=admin_headers
    )
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert await history(client, tenant["id"]) == []


async def test_adjustment_reason_is_stored_trimmed(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant()
    response = await adjust(client, admin_headers, tenant["id"], 100, "  refund for ticket #812  ")
    assert response.json()["transaction"]["description"] == "refund for ticket #812"


async def test_debit_below_zero_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(balance=1_000)
    wallet_before = await wallet_of(client, tenant["id"])
    history_before = await history(client, tenant["id"])

    response = await adjust(client, admin_headers, tenant["id"], -1_001, "too much")
    problem = assert_problem(response, 402, "INSUFFICIENT_FUNDS")
    assert problem["available"] == money(1_000)
    assert problem["requested"] == money(1_001)

    assert await wallet_of(client, tenant["id"]) == wallet_before
    assert await history(client, tenant["id"]) == history_before


async def test_debit_with_allow_negative_false_is_still_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(balance=10)
    response = await adjust(client, admin_headers, tenant["id"], -11, "no", allow_negative=False)
    assert_problem(response, 402, "INSUFFICIENT_FUNDS")
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(10)


async def test_allow_negative_lets_an_admin_debit_go_below_zero(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(balance=1_000)
    response = await adjust(
        client, admin_headers, tenant["id"], -1_500, "chargeback recovery", allow_negative=True
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["transaction"]["balance_before"] == money(1_000)
    assert body["transaction"]["balance_after"] == money(-500)
    wallet = await wallet_of(client, tenant["id"])
    assert wallet["balance"] == money(-500)
    assert wallet["available"] == money(-500)
    assert wallet["below_threshold"] is True

    # Once below zero, an ordinary debit is refused; a credit brings it back.
    assert_problem(await adjust(client, admin_headers, tenant["id"], -1, "more"), 402, "INSUFFICIENT_FUNDS")
    assert (await adjust(client, admin_headers, tenant["id"], 700, "settled")).status_code == 201
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(200)


async def test_zero_adjustment_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(balance=100)
    assert_problem(await adjust(client, admin_headers, tenant["id"], 0, "nothing"), 422, "VALIDATION_FAILED")
    assert len(await history(client, tenant["id"])) == 1


@pytest.mark.parametrize(
    "amount", [10.5, 10.0, -0.5, 1e3, "100", "10.50", "-5", True, None, [100], {"amount": 1}]
)
async def test_money_is_never_a_float_or_a_string(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], amount: Any
) -> None:
    tenant = await create_tenant(balance=100)
    response = await adjust(client, admin_headers, tenant["id"], amount, "typed wrong")
    problem = assert_problem(response, 422, "VALIDATION_FAILED")
    assert any(err["loc"][-1] == "amount" for err in problem["errors"])
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(100)
    assert len(await history(client, tenant["id"])) == 1


@pytest.mark.parametrize("amount", [10**15 + 1, -(10**15) - 1, 2**63, -(2**63) - 1, 10**40])
async def test_amount_beyond_any_real_adjustment_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], amount: int
) -> None:
    tenant = await create_tenant()
    response = await adjust(client, admin_headers, tenant["id"], amount, "fat finger", allow_negative=True)
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert await history(client, tenant["id"]) == []


async def test_largest_allowed_amounts_stay_exact(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="KWD", country="KWT")
    assert (await adjust(client, admin_headers, tenant["id"], 10**15, "big")).status_code == 201
    assert (await adjust(client, admin_headers, tenant["id"], 10**15, "bigger")).status_code == 201
    assert (await adjust(client, admin_headers, tenant["id"], -1, "exact")).status_code == 201
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(2 * 10**15 - 1, "KWD")


@pytest.mark.parametrize("allow_negative", ["true", "yes", 1, None])
async def test_allow_negative_must_be_a_boolean(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    allow_negative: Any,
) -> None:
    tenant = await create_tenant()
    response = await adjust(client, admin_headers, tenant["id"], -10, "x", allow_negative=allow_negative)
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert await history(client, tenant["id"]) == []


async def test_adjustment_in_another_currency_is_a_currency_mismatch(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="INR", balance=100)
    response = await adjust(client, admin_headers, tenant["id"], 100, "wrong money", currency="USD")
    problem = assert_problem(response, 422, "CURRENCY_MISMATCH")
    assert problem["expected_currency"] == "INR"
    assert problem["currency"] == "USD"
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(100)
    assert len(await history(client, tenant["id"])) == 1


async def test_adjustment_naming_the_wallet_currency_is_accepted(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="JPY", country="JPN")
    response = await adjust(client, admin_headers, tenant["id"], 500, "yen", currency="JPY")
    assert response.status_code == 201, response.text
    assert response.json()["transaction"]["amount"] == money(500, "JPY")


@pytest.mark.parametrize("currency", ["inr", "RUPEES", "", 356])
async def test_adjustment_with_a_malformed_currency_is_refused(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], currency: Any
) -> None:
    tenant = await create_tenant()
    response = await adjust(client, admin_headers, tenant["id"], 100, "x", currency=currency)
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert await history(client, tenant["id"]) == []


async def test_adjustment_for_an_unknown_tenant_is_not_found(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    assert_problem(await adjust(client, admin_headers, new_tenant_id(), 100, "ghost"), 404, "NOT_FOUND")


async def test_each_ledger_row_starts_where_the_previous_one_ended(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    amounts = [1_000, -300, 50, -750, 1, 99_999, -100_000, 7]
    for amount in amounts:
        response = await adjust(client, admin_headers, tenant["id"], amount, f"step {amount}")
        assert response.status_code == 201, response.text
    # One refused debit in the middle of the chain leaves no gap.
    assert_problem(
        await adjust(client, admin_headers, tenant["id"], -(10**6), "refused"), 402, "INSUFFICIENT_FUNDS"
    )
    assert (await adjust(client, admin_headers, tenant["id"], 3, "after refusal")).status_code == 201
    amounts.append(3)

    rows = list(reversed(await history(client, tenant["id"])))  # oldest first
    assert [r["amount"]["amount"] for r in rows] == amounts
    assert [r["seq"] for r in rows] == list(range(1, len(amounts) + 1))
    assert rows[0]["balance_before"] == money(0, "USD")
    for previous, row in itertools.pairwise(rows):
        assert row["balance_before"] == previous["balance_after"]
    for row in rows:
        assert row["balance_after"]["amount"] == row["balance_before"]["amount"] + row["amount"]["amount"]
    wallet = await wallet_of(client, tenant["id"])
    assert wallet["balance"]["amount"] == sum(amounts) == rows[-1]["balance_after"]["amount"]


async def test_concurrent_debits_never_overdraw_the_wallet(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(balance=1_000)
    responses = await asyncio.gather(
        *(adjust(client, admin_headers, tenant["id"], -300, f"racer {i}") for i in range(6))
    )
    accepted = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 402]
    assert len(accepted) == 3
    assert len(refused) == 3
    for r in refused:
        assert_problem(r, 402, "INSUFFICIENT_FUNDS")
    assert (await wallet_of(client, tenant["id"]))["balance"] == money(100)
    rows = await history(client, tenant["id"])
    assert len(rows) == 4
    assert sorted(r["seq"] for r in rows) == [1, 2, 3, 4]
