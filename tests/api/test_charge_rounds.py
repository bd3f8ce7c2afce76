"""The charge writer's rounds: many wallets in one transaction, each record answered on its own, and
two API processes writing overlapping wallet sets at once without a deadlock or a double charge."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.razorpay_flow import isolated_client
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import assert_ledger_verifies, ref, usage_key, wallet_of
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.charging import ChargeOutcome, UsageRecord
from walletsvc.domain.errors import InvalidRequest, NotFound
from walletsvc.domain.rating import UsageKind
from walletsvc.services.charging import ChargeWriter

# Default USD prices: SMS 2, email 1, fax 15 a page.


def sms(tenant_id: str, quantity: int = 1, reference: str | None = None) -> UsageRecord:
    return UsageRecord(tenant_id, UsageKind.SMS, reference or ref("sms"), None, quantity, "test")


async def transactions_of(db: Database, tenant_ids: list[str]) -> set[str]:
    """The transactions that wrote these tenants' charges and ledger rows (xmin)."""
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT xmin::text FROM usage_charges WHERE tenant_id = ANY(:t) "
                    "UNION SELECT xmin::text FROM ledger_entries "
                    "WHERE tenant_id = ANY(:t) AND type = 'usage_charge'"
                ),
                {"t": tenant_ids},
            )
        ).all()
    return {r[0] for r in rows}


async def test_one_round_charges_many_wallets_and_refuses_only_what_is_refused(
    create_tenant: TenantFactory, db: Database, settings: Settings
) -> None:
    wallets = [await create_tenant(currency="USD", country="USA", balance=1_000) for _ in range(12)]
    no_rates = await create_tenant(currency="EUR", country="DEU", balance=1_000)  # no plan, no EUR rates
    writer = ChargeWriter(db, settings.model_copy(update={"charge_writers": 1}))
    records: list[UsageRecord] = []
    for i, wallet in enumerate(wallets):
        records += [sms(wallet["id"], quantity=i + 1) for _ in range(3)]
    bad_call = UsageRecord(wallets[0]["id"], UsageKind.CALL, ref("call"), -1, None, "test")
    records.insert(1, bad_call)  # cannot be rated: beside good records of the same wallet
    records.insert(5, sms("t-no-such-wallet"))
    records.append(sms(no_rates["id"]))

    busy = await create_tenant(currency="USD", country="USA", balance=1_000)
    records += [sms(busy["id"]) for _ in range(300)]  # many of one wallet: ids still in sequence order

    answers = await writer.charge_many(records)

    assert isinstance(answers[1], InvalidRequest)
    assert isinstance(answers[5], NotFound)
    refused = answers[-301]
    assert isinstance(refused, InvalidRequest)
    assert "no rates are set for EUR" in refused.detail
    charged = [a for a in answers if isinstance(a, ChargeOutcome)]
    assert len(charged) == 36 + 300
    # One transaction wrote all the wallets' charges and ledger rows.
    assert len(await transactions_of(db, [w["id"] for w in [*wallets, busy]])) == 1
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT tenant_id, seq, balance_before, balance_after, id FROM ledger_entries "
                    "WHERE tenant_id = ANY(:t) ORDER BY tenant_id, seq"
                ),
                {"t": [w["id"] for w in [*wallets, busy]]},
            )
        ).all()
        balances: dict[str, int] = dict(
            (
                await conn.execute(
                    text("SELECT tenant_id, balance FROM wallets WHERE tenant_id = ANY(:t)"),
                    {"t": [w["id"] for w in [*wallets, no_rates, busy]]},
                )
            ).all()
        )
    for i, wallet in enumerate(wallets):
        chain = [r for r in rows if r[0] == wallet["id"]]
        assert [r[1] for r in chain] == [1, 2, 3, 4]  # the funding, then three charges
        assert [r[4] for r in chain] == sorted(r[4] for r in chain)  # history lists by id: seq order
        for older, newer in itertools.pairwise(chain):
            assert newer[2] == older[3]
        assert chain[-1][3] == balances[wallet["id"]] == 1_000 - 3 * 2 * (i + 1)
    assert balances[no_rates["id"]] == 1_000
    busy_chain = [r for r in rows if r[0] == busy["id"]]
    assert [r[1] for r in busy_chain] == list(range(1, 302))
    assert [r[4] for r in busy_chain] == sorted(r[4] for r in busy_chain)
    await assert_ledger_verifies(db)


async def test_a_wallet_whose_rows_the_database_refuses_fails_alone(
    create_tenant: TenantFactory, db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    good = [await create_tenant(currency="USD", country="USA", balance=500) for _ in range(3)]
    bad = await create_tenant(currency="USD", country="USA", balance=500)
    writer = ChargeWriter(db, settings.model_copy(update={"charge_writers": 1}))
    records = [
        sms(good[0]["id"]),
        sms(bad["id"]),
        sms(bad["id"], reference="x" * 300),
        *map(sms, [g["id"] for g in good]),
    ]
    results = await asyncio.gather(*(writer.charge(r) for r in records), return_exceptions=True)

    # The reference is longer than the column: the database refuses that wallet's rows, only them.
    assert all(isinstance(r, asyncpg.StringDataRightTruncationError) for r in results[1:3])
    assert all(isinstance(r, ChargeOutcome) for r in [results[0], *results[3:]])
    assert "writing its wallets one by one" in caplog.text
    for wallet in good:
        async with db.engine.connect() as conn:
            balance = (
                await conn.execute(
                    text("SELECT balance FROM wallets WHERE tenant_id = :t"), {"t": wallet["id"]}
                )
            ).scalar_one()
        assert balance == 500 - (4 if wallet is good[0] else 2)
    async with db.engine.connect() as conn:
        untouched = (
            await conn.execute(
                text("SELECT balance, ledger_seq FROM wallets WHERE tenant_id = :t"), {"t": bad["id"]}
            )
        ).one()
    assert tuple(untouched) == (500, 1)


async def test_two_api_processes_charging_overlapping_wallets_at_once_charge_each_once(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    db: Database,
    settings: Settings,
) -> None:
    start = 100_000
    wallets = [(await create_tenant(currency="USD", country="USA", balance=start))["id"] for _ in range(16)]
    platform = await usage_key(client, admin_headers, None)
    rng = random.Random(12)
    # Each process gets batches over overlapping wallet sets, in opposite orders: rounds that locked
    # wallets in the order they came would deadlock here.
    expected: Counter[str] = Counter()
    async with isolated_client(settings, db) as other:  # a second API process: its own charge writer
        requests = []
        references: list[str] = []
        for n in range(24):
            chosen = rng.sample(wallets, 10)
            chosen.sort(reverse=n % 2 == 1)
            records: list[dict[str, Any]] = []
            for tenant_id in chosen:
                reference = ref("r")
                references.append(reference)
                records.append(
                    {"tenant_id": tenant_id, "kind": "fax", "reference_id": reference, "quantity": 1}
                )
                expected[tenant_id] += 15
            # The same batch sent to both processes at once: a retry racing its first try.
            body = {"records": records}
            requests.append(client.post("/v1/usage/batch", json=body, headers=platform))
            requests.append(other.post("/v1/usage/batch", json=body, headers=platform))
        singles = [
            (client if i % 2 else other).post(
                "/v1/usage",
                json={"tenant_id": wallets[i % 16], "kind": "email", "reference_id": ref("e")},
                headers=platform,
            )
            for i in range(64)
        ]
        for i in range(64):
            expected[wallets[i % 16]] += 1
        responses = await asyncio.gather(*requests, *singles)

    assert [r.status_code for r in responses[: len(requests)]] == [200] * len(requests)
    assert [r.status_code for r in responses[len(requests) :]] == [201] * 64
    statuses = Counter(result["status"] for r in responses[: len(requests)] for result in r.json()["results"])
    # Each reference charged once (201) and answered as that charge on the other process (200).
    assert statuses == {201: len(references), 200: len(references)}
    ids: dict[str, set[str]] = {}
    for response in responses[: len(requests)]:
        for result in response.json()["results"]:
            ids.setdefault(result["charge"]["reference_id"], set()).add(result["charge"]["id"])
    assert all(len(v) == 1 for v in ids.values())
    for tenant_id in wallets:
        wallet = await wallet_of(client, admin_headers, tenant_id)
        assert wallet["balance"]["amount"] == start - expected[tenant_id]
    await assert_ledger_verifies(db)
