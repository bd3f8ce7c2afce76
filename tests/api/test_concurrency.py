"""Concurrent writers on one wallet: no lost update, never below zero, invariants intact."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import httpx

from tests.fixtures.tenants import TenantFactory
from walletsvc.db.engine import Database
from walletsvc.services.ledger_verify import verify_ledger


async def test_200_concurrent_debits_on_150_give_150_successes_and_50_refusals(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = await create_tenant(currency="INR", balance=150)
    url = f"/v1/admin/tenants/{tenant['id']}/adjustments"

    async def debit(i: int) -> httpx.Response:
        return await client.post(url, json={"amount": -1, "reason": f"debit {i}"}, headers=admin_headers)

    responses = await asyncio.gather(*(debit(i) for i in range(200)))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 150, 402: 50}
    assert {r.json()["code"] for r in responses if r.status_code == 402} == {"INSUFFICIENT_FUNDS"}
    wallet = (await client.get(f"/v1/admin/tenants/{tenant['id']}/wallet", headers=admin_headers)).json()
    assert wallet["balance"] == {"amount": 0, "currency": "INR"}
    # Every success saw a distinct balance: 149 down to 0, each exactly once.
    afters = sorted(
        r.json()["transaction"]["balance_after"]["amount"] for r in responses if r.status_code == 201
    )
    assert afters == list(range(150))
    async with db.engine.connect() as conn:
        results, _ = await verify_ledger(conn)
    assert [r.check.name for r in results if not r.ok] == []


async def test_concurrent_credits_and_debits_lose_no_update(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="JPY", country="JPN", balance=1_000)
    url = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    amounts = [7, -3, 11, -5] * 25  # net +250 over 100 writes; the balance never nears zero

    responses = await asyncio.gather(
        *(client.post(url, json={"amount": a, "reason": "mix"}, headers=admin_headers) for a in amounts)
    )

    assert all(r.status_code == 201 for r in responses)
    history = await client.get(
        "/v1/admin/transactions", params={"tenant_id": tenant["id"], "limit": 500}, headers=admin_headers
    )
    rows = history.json()["data"]
    assert len(rows) == 101
    assert rows[0]["balance_after"] == {"amount": 1_250, "currency": "JPY"}
    # Newest first: each row starts where the one before it (older) ended.
    for newer, older in itertools.pairwise(rows):
        assert newer["balance_before"] == older["balance_after"]
