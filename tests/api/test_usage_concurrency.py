"""Many charges at once: no lost update, never below zero, one ledger row per charge, exactly once."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest

from tests.fixtures.razorpay_flow import isolated_client
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import assert_ledger_verifies, ledger_charge_rows, ref, usage_key, wallet_of
from walletsvc.config import Settings
from walletsvc.db.engine import Database

# Default USD prices: a call of 61 s is 2 minutes at 5 + the 10 fee = 20; SMS 2, email 1, fax 15, file 5.
RECORDS: list[tuple[dict[str, Any], int]] = [
    ({"kind": "call", "duration_seconds": 61}, 20),
    ({"kind": "sms", "quantity": 3}, 6),
    ({"kind": "email"}, 1),
    ({"kind": "fax", "quantity": 2}, 30),
    ({"kind": "file_transfer"}, 5),
]


@pytest.fixture
def client(usage_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Every test here runs through each entry point of `POST /v1/usage` (tests/fixtures/usage.py)."""
    return usage_client


async def test_600_concurrent_charges_over_21_wallets_lose_no_update(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    start = 5_000
    wallets = [await create_tenant(currency="USD", country="USA", balance=start) for _ in range(20)]
    # The hot wallet cannot pay for everything: 100 calls of 20 on 1,500 pay 75 and owe 25.
    hot = await create_tenant(currency="USD", country="USA", balance=1_500)
    platform = await usage_key(client, admin_headers, None)

    jobs: list[tuple[str, dict[str, Any], int]] = []
    for i in range(500):
        record, price = RECORDS[(i // 20) % len(RECORDS)]
        jobs.append((wallets[i % 20]["id"], record, price))
    jobs += [(hot["id"], RECORDS[0][0], RECORDS[0][1]) for _ in range(100)]

    async def charge(tenant_id: str, record: dict[str, Any]) -> httpx.Response:
        body = {**record, "tenant_id": tenant_id, "reference_id": ref()}
        return await client.post("/v1/usage", json=body, headers=platform)

    responses = await asyncio.gather(*(charge(t, r) for t, r, _ in jobs))

    charged: dict[str, int] = defaultdict(int)
    charge_ids: dict[str, list[str]] = defaultdict(list)
    for (tenant_id, _, price), response in zip(jobs, responses, strict=True):
        body = response.json()
        if response.status_code == 201:
            assert body["amount"]["amount"] == price
            assert body["charged"]["amount"] == price
            charged[tenant_id] += price
            charge_ids[tenant_id].append(body["id"])
        else:
            assert response.status_code == 402, response.text
            assert body["code"] == "INSUFFICIENT_FUNDS"
            assert tenant_id == hot["id"]
            assert body["amount"]["amount"] == body["charged"]["amount"] + body["owed"]["amount"]
            charged[tenant_id] += body["charged"]["amount"]
            if body["charged"]["amount"]:
                charge_ids[tenant_id].append(body["charge_id"])

    statuses = Counter((t == hot["id"], r.status_code) for (t, _, _), r in zip(jobs, responses, strict=True))
    assert statuses == {(False, 201): 500, (True, 201): 75, (True, 402): 25}

    for tenant in wallets:
        wallet = await wallet_of(client, admin_headers, tenant["id"])
        assert wallet["balance"]["amount"] == start - charged[tenant["id"]]
        assert charged[tenant["id"]] == 5 * (20 + 6 + 1 + 30 + 5)  # 25 charges, each kind 5 times
        assert wallet["owed"]["amount"] == 0
        assert wallet["flagged"] is False
    hot_wallet = await wallet_of(client, admin_headers, hot["id"])
    assert hot_wallet["balance"]["amount"] == 1_500 - charged[hot["id"]] == 0
    assert hot_wallet["owed"]["amount"] == 100 * 20 - 1_500
    assert hot_wallet["flagged"] is True

    # Every charge the wallet paid is exactly one ledger row for exactly what it paid.
    tenant_ids = [t["id"] for t in [*wallets, hot]]
    rows = await ledger_charge_rows(db, tenant_ids)
    assert sorted((t, ref_id) for t, ref_id, _ in rows) == sorted(
        (t, charge_id) for t, ids in charge_ids.items() for charge_id in ids
    )
    paid_per_tenant: dict[str, int] = defaultdict(int)
    for tenant_id, _, amount in rows:
        assert amount < 0
        paid_per_tenant[tenant_id] -= amount
    assert paid_per_tenant == dict(charged)

    # Chained without a gap, newest first, never below zero.
    history = await client.get(
        "/v1/admin/transactions", params={"tenant_id": hot["id"], "limit": 500}, headers=admin_headers
    )
    hot_rows = history.json()["data"]
    assert len(hot_rows) == 1 + 75  # the funding, then the paid charges
    for newer, older in itertools.pairwise(hot_rows):
        assert newer["balance_before"] == older["balance_after"]
        assert newer["balance_after"]["amount"] >= 0
    await assert_ledger_verifies(db)


async def test_50_concurrent_retries_of_one_hangup_charge_once(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    body = {"kind": "call", "reference_id": ref("call"), "duration_seconds": 185}  # 4 min + fee = 30

    responses = await asyncio.gather(*(client.post("/v1/usage", json=body, headers=key) for _ in range(50)))

    assert Counter(r.status_code for r in responses) == {201: 1, 200: 49}
    assert len({r.json()["id"] for r in responses}) == 1
    assert {r.json()["replayed"] for r in responses if r.status_code == 200} == {True}
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"]["amount"] == 970
    rows = await ledger_charge_rows(db, [tenant["id"]])
    assert [(ref_id, amount) for _, ref_id, amount in rows] == [(responses[0].json()["id"], -30)]


async def test_concurrent_retries_through_two_api_processes_charge_once(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    db: Database,
    settings: Settings,
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    # A second API process: its own charge writer, the same database.
    async with isolated_client(settings, db) as other:
        references = [ref("sms") for _ in range(20)]
        calls = [
            c.post("/v1/usage", json={"kind": "sms", "reference_id": r, "quantity": 5}, headers=key)
            for r in references
            for c in (client, other, client, other)
        ]
        responses = await asyncio.gather(*calls)

    assert all(r.status_code in (200, 201) for r in responses), [
        r.text for r in responses if r.status_code >= 300
    ]
    by_reference: dict[str, set[str]] = defaultdict(set)
    created: Counter[str] = Counter()
    for response in responses:
        by_reference[response.json()["reference_id"]].add(response.json()["id"])
        created[response.json()["reference_id"]] += response.status_code == 201
    assert all(len(ids) == 1 for ids in by_reference.values())
    assert set(created.values()) == {1}
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"]["amount"] == 1_000 - 20 * 10
    assert len(await ledger_charge_rows(db, [tenant["id"]])) == 20
    await assert_ledger_verifies(db)


async def test_concurrent_batches_and_single_charges_on_one_wallet_lose_no_update(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=100_000)
    key = await usage_key(client, admin_headers, tenant["id"])

    def batch() -> list[dict[str, Any]]:
        return [{"kind": "email", "reference_id": ref()} for _ in range(50)]

    singles = [
        client.post("/v1/usage", json={"kind": "fax", "reference_id": ref()}, headers=key) for _ in range(40)
    ]
    batches = [client.post("/v1/usage/batch", json={"records": batch()}, headers=key) for _ in range(10)]
    responses = await asyncio.gather(*singles, *batches)

    assert {r.status_code for r in responses[:40]} == {201}
    assert {r.status_code for r in responses[40:]} == {200}
    assert {res["status"] for r in responses[40:] for res in r.json()["results"]} == {201}
    wallet = await wallet_of(client, admin_headers, tenant["id"])
    assert wallet["balance"]["amount"] == 100_000 - 40 * 15 - 10 * 50 * 1
    assert len(await ledger_charge_rows(db, [tenant["id"]])) == 40 + 500
    await assert_ledger_verifies(db)
