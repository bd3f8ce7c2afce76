"""The auto top-up trigger in the money paths: in the transaction that lowers the available balance,
exactly one auto top-up however many charges race across the threshold, on `balance - reserved`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fixtures.auth import owner_headers
from tests.fixtures.auto_topup import (
    FakeStripeCards,
    attempts_of,
    cancel_unstarted,
    put_auto_topup,
    queued_runs,
    run_created,
    save_card,
)
from tests.fixtures.stripe_fake import balance_of, fake_stripe
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ref, usage_key
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.auto_topup import AutoTopupStatus
from walletsvc.services.ledger_verify import verify_ledger


@pytest.fixture(autouse=True)
async def _no_attempt_left_behind(db: Database) -> AsyncIterator[None]:
    yield
    await cancel_unstarted(db)


async def test_200_charges_racing_across_the_threshold_start_exactly_one_auto_topup(
    client: httpx.AsyncClient,
    app: Any,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    db: Database,
    settings: Settings,
) -> None:
    tenant = str((await create_tenant(currency="USD", country="USA", balance=6_000))["id"])
    with fake_stripe() as stripe:
        cards = FakeStripeCards(stripe)
        await save_card(client, cards, tenant)
        enabled = await put_auto_topup(client, tenant, enabled=True, threshold=5_000, amount=2_000)
        assert enabled.status_code == 200, enabled.text
        assert await attempts_of(db, tenant) == []  # 6,000: above the threshold, nothing yet
        key = await usage_key(client, admin_headers, tenant)
        other_app = create_app(settings, database=db)  # a second API process, with its own charge writer
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other_app), base_url="http://walletsvc.test"
        ) as other:
            calls = [
                c.post("/v1/usage", json={"kind": "sms", "reference_id": ref(), "quantity": 10}, headers=key)
                for _ in range(100)
                for c in (client, other)
            ]
            responses = await asyncio.gather(*calls)
        assert {r.status_code for r in responses} == {201}
        assert await balance_of(client, tenant) == 6_000 - 200 * 20
        (attempt,) = await attempts_of(db, tenant)
        assert attempt["status"] == "created"
        # Started in the transaction of the batch of charges that crossed (the writer coalesces a hot wallet's
        # charges), and never again: while it is in flight the wallet is paused and the index holds.
        assert 6_000 - 200 * 20 <= attempt["trigger_available"] < 5_000
        assert attempt["trigger_cause"].startswith("charge:")
        assert await queued_runs(db, tenant) == 1

        assert await run_created(db, app.state.gateways, settings, tenant) == [AutoTopupStatus.SUCCEEDED]
        assert len(cards.off_session_requests) == 1
        assert await balance_of(client, tenant) == 2_000 + 2_000
    async with db.engine.connect() as conn:
        results, _ = await verify_ledger(conn)
    assert [r.check.name for r in results if not r.ok] == []


async def test_a_hold_for_a_call_in_progress_starts_it_before_the_call_ends(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = str((await create_tenant(currency="USD", country="USA", balance=5_100))["id"])
    with fake_stripe() as stripe:
        cards = FakeStripeCards(stripe)
        await save_card(client, cards, tenant)
        assert (
            await put_auto_topup(client, tenant, enabled=True, threshold=5_000, amount=2_000)
        ).status_code == 200
        key = await usage_key(client, admin_headers, tenant)
        held = await client.post(
            f"/v1/calls/{ref('call')}/authorize", json={"max_duration_seconds": 3600}, headers=key
        )
        assert held.status_code == 200, held.text
    wallet = (await client.get("/v1/wallet", headers=owner_headers(tenant))).json()
    assert wallet["balance"]["amount"] == 5_100  # nothing charged yet: the money is only held
    assert wallet["available"]["amount"] < 5_000
    (attempt,) = await attempts_of(db, tenant)
    assert attempt["trigger_cause"].startswith("hold:")
    assert attempt["trigger_available"] == wallet["available"]["amount"]


async def test_an_admin_debit_below_the_threshold_starts_one(
    client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str], db: Database
) -> None:
    tenant = str((await create_tenant(currency="USD", country="USA", balance=6_000))["id"])
    with fake_stripe() as stripe:
        cards = FakeStripeCards(stripe)
        await save_card(client, cards, tenant)
        assert (
            await put_auto_topup(client, tenant, enabled=True, threshold=5_000, amount=2_000)
        ).status_code == 200
    for amount in (-500, -1_000):  # 5,500 (above), then 4,500: crosses
        debit = await client.post(
            f"/v1/admin/tenants/{tenant}/adjustments",
            json={"amount": amount, "reason": "correction"},
            headers=admin_headers,
        )
        assert debit.status_code == 201, debit.text
    (attempt,) = await attempts_of(db, tenant)
    assert attempt["trigger_cause"].startswith("adjustment")
    assert attempt["trigger_available"] == 4_500
