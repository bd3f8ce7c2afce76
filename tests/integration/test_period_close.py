"""Period close on real PostgreSQL: each ended period closed once, in order; the plan fee charged as one
`plan_fee` row, what the wallet cannot pay owed (and paid first by the next credit); plan changes take
effect on the fee from the next period; concurrent closes never charge twice."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import text

from tests.fixtures.events import stored_events
from tests.fixtures.periods import (
    backdate_subscription,
    closed_periods,
    create_plan,
    plan_fee_rows,
    subscription_row,
    wallet_row,
)
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import subscribe
from walletsvc.db.engine import Database
from walletsvc.services.ledger_verify import verify_ledger
from walletsvc.services.periods import close_due_periods, close_due_periods_report

Headers = dict[str, str]


async def _subscribed(
    client: httpx.AsyncClient,
    admin_headers: Headers,
    create_tenant: TenantFactory,
    *,
    balance: int,
    fee: int,
    **plan_fields: Any,
) -> tuple[str, dict[str, Any]]:
    tenant = await create_tenant(balance=balance)
    plan = await create_plan(client, admin_headers, monthly_price=fee, **plan_fields)
    await subscribe(client, admin_headers, tenant["id"], plan["id"])
    return tenant["id"], plan


def _of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in events if e["type"] == kind]


async def test_subscribing_charges_nothing_and_a_running_period_is_not_closed(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant_id, plan = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=20_00)
    assert await close_due_periods(db, tenants=[tenant_id]) == 0
    assert await closed_periods(db, tenant_id) == []
    assert (await wallet_row(db, tenant_id))["balance"] == 100_00  # postpaid: nothing at subscribe time
    [changed] = _of_type(await stored_events(db, tenant_id), "subscription.changed")
    assert changed["from_plan_id"] is None
    assert changed["to_plan_id"] == plan["id"]
    assert changed["changed_by"] == "user:admin-1"


async def test_an_ended_period_is_closed_once_its_quota_reset_and_its_fee_charged(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant_id, plan = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=20_00)
    [(start, end)] = await backdate_subscription(db, tenant_id, ended=1, quota_used_seconds=300)

    assert await close_due_periods(db, tenants=[tenant_id]) == 1
    assert await close_due_periods(db, tenants=[tenant_id]) == 0  # a rerun closes nothing more

    [closed] = await closed_periods(db, tenant_id)
    assert (closed["period_start"], closed["period_end"]) == (start, end)
    assert (closed["fee"], closed["charged"], closed["owed"]) == (20_00, 20_00, 0)
    assert (closed["quota_used_seconds"], closed["included_minutes"]) == (300, 100)
    [fee_row] = await plan_fee_rows(db, tenant_id)
    assert fee_row["amount"] == -20_00
    assert (fee_row["counter_account"], fee_row["reference_type"], fee_row["reference_id"]) == (
        "revenue:plans",
        "plan_period",
        closed["id"],
    )
    assert (fee_row["balance_before"], fee_row["balance_after"]) == (100_00, 80_00)
    wallet = await wallet_row(db, tenant_id)
    assert (wallet["balance"], wallet["owed"], wallet["flagged"]) == (80_00, 0, False)
    subscription = await subscription_row(db, tenant_id)
    assert (subscription["period_start"], subscription["quota_used_seconds"]) == (end, 0)

    events = await stored_events(db, tenant_id)
    [period] = _of_type(events, "period.closed")
    assert period["period_id"] == closed["id"]
    assert period["period_start"] == start.isoformat()
    assert period["period_end"] == end.isoformat()
    assert period["plan_id"] == plan["id"]
    assert (period["quota_used_seconds"], period["included_minutes"]) == (300, 100)
    [charged] = _of_type(events, "plan_fee.charged")
    assert charged["fee"] == {"amount": 20_00, "currency": "INR"}
    assert charged["charged"] == {"amount": 20_00, "currency": "INR"}
    assert charged["owed"] == {"amount": 0, "currency": "INR"}
    assert charged["transaction_id"] == str(fee_row["id"])
    assert _of_type(events, "plan_fee.owed") == []

    # The tenant sees the fee in its transactions, as any other ledger row.
    listed = await client.get(
        "/v1/admin/transactions", params={"tenant_id": tenant_id, "type": "plan_fee"}, headers=admin_headers
    )
    assert listed.status_code == 200, listed.text
    assert [row["amount"]["amount"] for row in listed.json()["data"]] == [-20_00]


async def test_three_missed_periods_are_closed_in_order_once_each(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant_id, _ = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=10_00)
    periods = await backdate_subscription(db, tenant_id, ended=3, quota_used_seconds=120)

    assert await close_due_periods(db, tenants=[tenant_id]) == 3
    assert await close_due_periods(db, tenants=[tenant_id]) == 0

    closed = await closed_periods(db, tenant_id)
    assert [(c["period_start"], c["period_end"]) for c in closed] == periods
    # Only the first period had used quota; the next two started from zero.
    assert [c["quota_used_seconds"] for c in closed] == [120, 0, 0]
    rows = await plan_fee_rows(db, tenant_id)
    assert [r["reference_id"] for r in rows] == [c["id"] for c in closed]  # charged oldest first
    assert [r["balance_after"] for r in rows] == [90_00, 80_00, 70_00]
    events = await stored_events(db, tenant_id)
    assert [e["period_start"] for e in _of_type(events, "period.closed")] == [
        s.isoformat() for s, _ in periods
    ]
    subscription = await subscription_row(db, tenant_id)
    assert subscription["period_start"] == periods[-1][1]  # the period under way now


async def test_a_fee_the_wallet_cannot_pay_is_owed_flagged_and_paid_first_by_the_next_credit(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant_id, _ = await _subscribed(client, admin_headers, create_tenant, balance=30_00, fee=20_00)
    await backdate_subscription(db, tenant_id, ended=3)

    assert await close_due_periods(db, tenants=[tenant_id]) == 3
    closed = await closed_periods(db, tenant_id)
    assert [(c["charged"], c["owed"]) for c in closed] == [(20_00, 0), (10_00, 10_00), (0, 20_00)]
    assert [r["amount"] for r in await plan_fee_rows(db, tenant_id)] == [-20_00, -10_00]
    wallet = await wallet_row(db, tenant_id)
    assert (wallet["balance"], wallet["owed"], wallet["flagged"]) == (0, 30_00, True)
    events = await stored_events(db, tenant_id)
    assert [p["owed"]["amount"] for p in _of_type(events, "plan_fee.owed")] == [10_00, 20_00]
    assert [p["total_owed"]["amount"] for p in _of_type(events, "plan_fee.owed")] == [10_00, 30_00]
    [flagged] = _of_type(events, "wallet.flagged")  # flagged once, by the first fee it could not pay
    assert flagged == {"reason": "plan_fee_owed", "owed": {"amount": 10_00, "currency": "INR"}}

    credit = await client.post(
        f"/v1/admin/tenants/{tenant_id}/adjustments",
        json={"amount": 50_00, "reason": "payment received"},
        headers=admin_headers,
    )
    assert credit.status_code == 201, credit.text
    wallet = await wallet_row(db, tenant_id)
    assert (wallet["balance"], wallet["owed"], wallet["flagged"]) == (20_00, 0, False)
    closed = await closed_periods(db, tenant_id)
    assert [(c["charged"], c["owed"]) for c in closed] == [(20_00, 0), (20_00, 0), (20_00, 0)]
    rows = await plan_fee_rows(db, tenant_id)
    assert [(r["amount"], r["reference_id"]) for r in rows[2:]] == [
        (-10_00, closed[1]["id"]),  # the older debt first
        (-20_00, closed[2]["id"]),
    ]
    assert "wallet.unflagged" in [e["type"] for e in await stored_events(db, tenant_id)]


async def test_a_free_plan_closes_its_period_without_a_ledger_row(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant_id, _ = await _subscribed(client, admin_headers, create_tenant, balance=5_00, fee=0)
    await backdate_subscription(db, tenant_id, ended=1)
    assert await close_due_periods(db, tenants=[tenant_id]) == 1
    [closed] = await closed_periods(db, tenant_id)
    assert (closed["fee"], closed["charged"], closed["owed"]) == (0, 0, 0)
    assert await plan_fee_rows(db, tenant_id) == []
    assert (await wallet_row(db, tenant_id))["balance"] == 5_00
    types = [e["type"] for e in await stored_events(db, tenant_id)]
    assert "period.closed" in types
    assert "plan_fee.charged" not in types


async def test_a_plan_changed_mid_period_pays_the_new_fee_from_the_next_period(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant_id, cheap = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=10_00)
    dear = await create_plan(client, admin_headers, monthly_price=30_00)
    before = await subscription_row(db, tenant_id)
    await subscribe(client, admin_headers, tenant_id, dear["id"])
    [_, changed] = _of_type(await stored_events(db, tenant_id), "subscription.changed")
    assert (changed["from_plan_id"], changed["to_plan_id"]) == (cheap["id"], dear["id"])
    assert changed["fee_effective_from"] == before["period_end"].isoformat()

    await backdate_subscription(db, tenant_id, ended=2)
    assert await close_due_periods(db, tenants=[tenant_id]) == 2
    closed = await closed_periods(db, tenant_id)
    assert [(c["plan_id"], c["fee"]) for c in closed] == [(cheap["id"], 10_00), (dear["id"], 30_00)]
    assert (await wallet_row(db, tenant_id))["balance"] == 60_00


async def test_changing_back_within_a_period_keeps_the_old_fee_and_says_so_each_time(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant_id, cheap = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=10_00)
    dear = await create_plan(client, admin_headers, monthly_price=30_00)
    await subscribe(client, admin_headers, tenant_id, dear["id"])
    await subscribe(client, admin_headers, tenant_id, cheap["id"])
    await subscribe(client, admin_headers, tenant_id, cheap["id"])  # the same plan again: no change
    changes = _of_type(await stored_events(db, tenant_id), "subscription.changed")
    assert [(c["from_plan_id"], c["to_plan_id"]) for c in changes] == [
        (None, cheap["id"]),
        (cheap["id"], dear["id"]),
        (dear["id"], cheap["id"]),
    ]
    await backdate_subscription(db, tenant_id, ended=2)
    assert await close_due_periods(db, tenants=[tenant_id]) == 2
    assert [c["fee"] for c in await closed_periods(db, tenant_id)] == [10_00, 10_00]


async def test_a_period_whose_row_was_found_closed_is_not_charged_again(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant_id, _ = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=20_00)
    [(start, end)] = await backdate_subscription(db, tenant_id, ended=1)
    assert await close_due_periods(db, tenants=[tenant_id]) == 1
    # Put the cursor back behind the closed period: only the row's uniqueness stands in the way now.
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE period_cursors SET period_start = :s, period_end = :e WHERE tenant_id = :t"),
            {"t": tenant_id, "s": start, "e": end},
        )
    assert await close_due_periods(db, tenants=[tenant_id]) == 0
    assert len(await closed_periods(db, tenant_id)) == 1
    assert len(await plan_fee_rows(db, tenant_id)) == 1
    assert (await wallet_row(db, tenant_id))["balance"] == 80_00


async def test_concurrent_closes_charge_each_period_once(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenants = []
    for _ in range(8):
        tenant_id, _plan = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=7_00)
        await backdate_subscription(db, tenant_id, ended=3)
        tenants.append(tenant_id)

    counts = await asyncio.gather(*(close_due_periods(db, tenants=tenants) for _ in range(6)))

    assert sum(counts) == 3 * len(tenants)  # every period closed by exactly one of the six
    for tenant_id in tenants:
        assert len(await closed_periods(db, tenant_id)) == 3
        assert [r["amount"] for r in await plan_fee_rows(db, tenant_id)] == [-7_00] * 3
        assert (await wallet_row(db, tenant_id))["balance"] == 79_00
        assert len(_of_type(await stored_events(db, tenant_id), "plan_fee.charged")) == 3
    async with db.engine.connect() as conn:
        results, _ = await verify_ledger(conn)
    assert {r.check.name: r.offending for r in results if not r.ok} == {}


async def test_a_fee_that_takes_the_wallet_below_its_threshold_says_so_once(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(balance=100_00, low_balance_threshold=50_00)
    plan = await create_plan(client, admin_headers, monthly_price=30_00)
    await subscribe(client, admin_headers, tenant["id"], plan["id"])
    await backdate_subscription(db, tenant["id"], ended=2)
    assert await close_due_periods(db, tenants=[tenant["id"]]) == 2
    closed = await closed_periods(db, tenant["id"])
    [low] = _of_type(await stored_events(db, tenant["id"]), "wallet.low_balance")
    assert low["available"] == {"amount": 40_00, "currency": "INR"}  # the second fee crossed it
    assert low["cause"] == {"type": "plan_fee", "id": closed[1]["id"]}


async def test_a_wallet_held_too_long_is_left_for_the_next_run_and_the_others_close(
    db: Database, client: httpx.AsyncClient, admin_headers: Headers, create_tenant: TenantFactory
) -> None:
    stuck, _ = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=10_00)
    free, _ = await _subscribed(client, admin_headers, create_tenant, balance=100_00, fee=10_00)
    for tenant_id in (stuck, free):
        await backdate_subscription(db, tenant_id, ended=1)
    async with db.engine.connect() as holder:
        held = await holder.begin()
        await holder.execute(text("SELECT 1 FROM wallets WHERE tenant_id = :t FOR UPDATE"), {"t": stuck})
        report = await close_due_periods_report(db, tenants=[stuck, free])
        await held.rollback()
    assert (report.closed, report.busy, report.failed) == (1, 1, 0)
    assert await closed_periods(db, stuck) == []
    assert len(await closed_periods(db, free)) == 1
    assert await close_due_periods(db, tenants=[stuck, free]) == 1  # the next run closes it
    assert [r["amount"] for r in await plan_fee_rows(db, stuck)] == [-10_00]
