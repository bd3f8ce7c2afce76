"""POST /v1/admin/charges/{id}/refunds: whole or in parts, back to the wallet as `usage_refund` rows,
never more than was charged, the owed part forgiven first, the quota given back, exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.fixtures.auth import owner_headers
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import TenantFactory
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


async def charge_call(
    client: httpx.AsyncClient, key: dict[str, str], duration_seconds: int, *, expect: int = 201
) -> dict[str, Any]:
    response = await client.post(
        "/v1/usage",
        json={"kind": "call", "reference_id": ref("call"), "duration_seconds": duration_seconds},
        headers=key,
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def refund(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    charge_id: str,
    amount: int | None = None,
    reason: str = "customer complaint",
    **extra_headers: str,
) -> httpx.Response:
    body: dict[str, Any] = {"reason": reason}
    if amount is not None:
        body["amount"] = amount
    return await client.post(
        f"/v1/admin/charges/{charge_id}/refunds", json=body, headers={**headers, **extra_headers}
    )


async def test_whole_refund_goes_back_to_the_wallet_as_a_usage_refund_row(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    charge = await charge_call(client, key, 600)  # 10 minutes + fee = 60
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(940)

    response = await refund(client, admin_headers, charge["id"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["charge_id"] == charge["id"]
    assert body["amount"] == usd(60)
    assert body["to_wallet"] == usd(60)
    assert body["forgiven"] == usd(0)
    assert body["reason"] == "customer complaint"
    assert body["charge"]["refunded"] == usd(60)
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(1_000)

    rows = await ledger(client, tenant["id"], "usage_refund")
    assert len(rows) == 1
    assert rows[0]["amount"] == usd(60)
    assert rows[0]["counter_account"] == "revenue:usage"
    assert rows[0]["reference"] == {"type": "charge_refund", "id": body["id"]}
    assert (rows[0]["balance_before"], rows[0]["balance_after"]) == (usd(940), usd(1_000))
    # The charge row stays: a correction is a new row.
    assert [r["amount"] for r in await ledger(client, tenant["id"], "usage_charge")] == [usd(-60)]


async def test_refund_in_parts_never_exceeds_what_was_charged(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    charge = await charge_call(client, key, 600)  # 60

    first = await refund(client, admin_headers, charge["id"], 25)
    assert first.status_code == 201, first.text
    assert first.json()["to_wallet"] == usd(25)
    assert_problem(await refund(client, admin_headers, charge["id"], 36), 422, "VALIDATION_FAILED")
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(965)

    rest = await refund(client, admin_headers, charge["id"])  # no amount: all that is left
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == usd(35)
    assert rest.json()["charge"]["refunded"] == usd(60)

    assert_problem(await refund(client, admin_headers, charge["id"]), 409, "CONFLICT")
    assert_problem(await refund(client, admin_headers, charge["id"], 1), 422, "VALIDATION_FAILED")
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(1_000)
    assert sorted(r["amount"]["amount"] for r in await ledger(client, tenant["id"], "usage_refund")) == [
        25,
        35,
    ]


async def test_refund_amount_must_be_a_positive_whole_number_and_a_reason_is_required(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    charge = await charge_call(client, key, 600)
    url = f"/v1/admin/charges/{charge['id']}/refunds"
    for body in (
        {"amount": 0, "reason": "x"},
        {"amount": -5, "reason": "x"},
        {"amount": 10.0, "reason": "x"},
        {"amount": "10", "reason": "x"},
        {"amount": 10},
        {"amount": 10, "reason": ""},
    ):
        assert_problem(await client.post(url, json=body, headers=admin_headers), 422, "VALIDATION_FAILED")
    assert await ledger(client, tenant["id"], "usage_refund") == []


async def test_refund_of_a_charge_that_used_quota_gives_the_quota_back(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    plan = await create_plan(client, admin_headers, included_minutes=5)
    await subscribe(client, admin_headers, tenant["id"], plan["id"])
    key = await usage_key(client, admin_headers, tenant["id"])

    # All quota: 3 minutes free, only the 10 cent fee paid.
    free = await charge_call(client, key, 180)
    assert (free["quota_seconds"], free["amount"]) == (180, usd(10))
    # 4 minutes billed: the 2 quota minutes left, then 2 paid minutes and the fee = 20.
    mixed = await charge_call(client, key, 240)
    assert (mixed["quota_seconds"], mixed["paid_seconds"], mixed["amount"]) == (120, 120, usd(20))
    assert await quota_used(client, tenant["id"]) == 300

    whole = await refund(client, admin_headers, free["id"])
    assert whole.status_code == 201, whole.text
    assert (whole.json()["amount"], whole.json()["quota_seconds"]) == (usd(10), 180)
    assert await quota_used(client, tenant["id"]) == 120

    # Half the money of the mixed charge gives back half its quota seconds.
    half = await refund(client, admin_headers, mixed["id"], 10)
    assert half.status_code == 201, half.text
    assert half.json()["quota_seconds"] == 60
    assert await quota_used(client, tenant["id"]) == 60
    rest = await refund(client, admin_headers, mixed["id"])
    assert (rest.json()["amount"], rest.json()["quota_seconds"]) == (usd(10), 60)
    assert await quota_used(client, tenant["id"]) == 0

    sub = (await client.get("/v1/subscription", headers=owner_headers(tenant["id"]))).json()
    assert sub["quota"]["remaining_seconds"] == 300
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(1_000)
    # The given-back quota is used again by the next call.
    again = await charge_call(client, key, 60)
    assert (again["quota_seconds"], again["amount"]) == (60, usd(10))


async def test_refund_of_an_all_quota_charge_without_a_fee_gives_the_quota_back_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    plan = await create_plan(client, admin_headers, included_minutes=5, connection_fee="0")
    await subscribe(client, admin_headers, tenant["id"], plan["id"])
    key = await usage_key(client, admin_headers, tenant["id"])
    free = await charge_call(client, key, 120)
    assert (free["amount"], free["quota_seconds"]) == (usd(0), 120)

    response = await refund(client, admin_headers, free["id"])
    assert response.status_code == 201, response.text
    assert (response.json()["amount"], response.json()["quota_seconds"]) == (usd(0), 120)
    assert await quota_used(client, tenant["id"]) == 0
    assert_problem(await refund(client, admin_headers, free["id"]), 409, "CONFLICT")
    assert await quota_used(client, tenant["id"]) == 0
    assert await ledger(client, tenant["id"], "usage_refund") == []


async def test_refund_of_an_owed_charge_forgives_the_owed_part_first(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=30)
    key = await usage_key(client, admin_headers, tenant["id"])
    owed = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": ref("call"), "duration_seconds": 600}, headers=key
    )
    problem = assert_problem(owed, 402, "INSUFFICIENT_FUNDS")
    assert (problem["charged"], problem["owed"]) == (usd(30), usd(30))
    assert tenant["id"] in await flagged_tenant_ids(client, admin_headers)

    first = await refund(client, admin_headers, problem["charge_id"], 40)
    assert first.status_code == 201, first.text
    assert (first.json()["forgiven"], first.json()["to_wallet"]) == (usd(30), usd(10))
    assert first.json()["charge"]["owed"] == usd(0)
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["owed"], wallet["flagged"]) == (usd(10), usd(0), False)
    assert tenant["id"] not in await flagged_tenant_ids(client, admin_headers)

    rest = await refund(client, admin_headers, problem["charge_id"])
    assert (rest.json()["amount"], rest.json()["forgiven"], rest.json()["to_wallet"]) == (
        usd(20),
        usd(0),
        usd(20),
    )
    # Back to where it started: what the wallet paid came back, what it owed is forgotten.
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["owed"]) == (usd(30), usd(0))
    assert sorted(r["amount"]["amount"] for r in await ledger(client, tenant["id"], "usage_refund")) == [
        10,
        20,
    ]


async def test_partial_forgiveness_keeps_the_tenant_flagged_while_something_is_owed(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=0)
    key = await usage_key(client, admin_headers, tenant["id"])
    owed = await client.post(
        "/v1/usage", json={"kind": "fax", "reference_id": ref("fax"), "quantity": 4}, headers=key
    )
    problem = assert_problem(owed, 402, "INSUFFICIENT_FUNDS")
    assert (problem["charged"], problem["owed"]) == (usd(0), usd(60))

    response = await refund(client, admin_headers, problem["charge_id"], 15)
    assert response.status_code == 201, response.text
    assert (response.json()["forgiven"], response.json()["to_wallet"]) == (usd(15), usd(0))
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["owed"], wallet["flagged"]) == (usd(0), usd(45), True)
    assert await ledger(client, tenant["id"], "usage_refund") == []


async def test_refund_with_an_idempotency_key_moves_money_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    charge = await charge_call(client, key, 600)
    idem = {"Idempotency-Key": f"refund-{ref()}"}

    first = await refund(client, admin_headers, charge["id"], 20, **idem)
    assert first.status_code == 201, first.text
    again = await refund(client, admin_headers, charge["id"], 20, **idem)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"

    other_body = await refund(client, admin_headers, charge["id"], 21, **idem)
    assert_problem(other_body, 422, "IDEMPOTENCY_KEY_REUSED")

    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(960)
    assert [r["amount"] for r in await ledger(client, tenant["id"], "usage_refund")] == [usd(20)]

    # A refused refund is an answer too: the same key and body answer the same refusal.
    beyond = {"Idempotency-Key": f"refund-{ref()}"}
    refused = await refund(client, admin_headers, charge["id"], 100, **beyond)
    assert_problem(refused, 422, "VALIDATION_FAILED")
    replayed = await refund(client, admin_headers, charge["id"], 100, **beyond)
    assert replayed.status_code == 422
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert replayed.json() == refused.json()  # the first answer, its request_id included
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(960)


async def test_only_admins_refund_charges(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    charge = await charge_call(client, key, 600)

    assert_problem(await refund(client, owner_headers(tenant["id"]), charge["id"]), 403, "FORBIDDEN")
    assert_problem(await refund(client, key, charge["id"]), 403, "FORBIDDEN")
    assert_problem(await refund(client, {}, charge["id"]), 401, "UNAUTHORIZED")
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(940)

    admin_key = await usage_key(client, admin_headers, None, scopes=("admin",))
    by_key = await refund(client, admin_key, charge["id"], 5)
    assert by_key.status_code == 201, by_key.text
    assert by_key.json()["created_by"].startswith("api_key:")


async def test_refund_of_an_unknown_charge_is_not_found(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    assert_problem(await refund(client, admin_headers, "999999999999"), 404, "NOT_FOUND")
    assert_problem(await refund(client, admin_headers, "not-a-number"), 422, "VALIDATION_FAILED")


async def test_concurrent_refunds_of_one_charge_never_exceed_it(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    charge = await charge_call(client, key, 600)  # 60
    whole = await charge_call(client, key, 60)  # 15

    parts, wholes = await asyncio.gather(
        asyncio.gather(*(refund(client, admin_headers, charge["id"], 10) for _ in range(10))),
        asyncio.gather(*(refund(client, admin_headers, whole["id"]) for _ in range(5))),
    )

    assert Counter(r.status_code for r in parts) == {201: 6, 422: 4}
    assert Counter(r.status_code for r in wholes) == {201: 1, 409: 4}
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"] == usd(1_000)
    refunds = await ledger(client, tenant["id"], "usage_refund")
    assert sorted(r["amount"]["amount"] for r in refunds) == [10] * 6 + [15]


async def test_money_a_refund_puts_back_pays_what_other_charges_still_owe(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=20)
    key = await usage_key(client, admin_headers, tenant["id"])
    paid = await charge_call(client, key, 60)  # 15: paid in full
    owing = await client.post(
        "/v1/usage", json={"kind": "call", "reference_id": ref("call"), "duration_seconds": 120}, headers=key
    )
    problem = assert_problem(owing, 402, "INSUFFICIENT_FUNDS")
    assert (problem["charged"], problem["owed"]) == (usd(5), usd(15))

    back = await refund(client, admin_headers, paid["id"])
    assert back.status_code == 201, back.text
    assert back.json()["to_wallet"] == usd(15)
    # The 15 that came back paid the 15 the second call still owed: nothing owed, flag lifted.
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert (wallet["balance"], wallet["owed"], wallet["flagged"]) == (usd(0), usd(0), False)
