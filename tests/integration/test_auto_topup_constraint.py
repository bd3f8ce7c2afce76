"""At most one auto top-up in flight per tenant is the database's guarantee, not only the code's: the
trigger statement run from many transactions at once (no wallet lock taken) starts exactly one."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.auto_topups import new_auto_topup_id, start_if_due
from walletsvc.services.tenants import open_tenant


async def _tenant_below_threshold(db: Database) -> str:
    tenant_id = f"it-{uuid.uuid4().hex[:10]}"
    async with unit_of_work(db) as session:
        await open_tenant(session, tenant_id=tenant_id, name="Race", country="USA", currency="USD")
        await session.execute(
            text(
                "UPDATE wallets SET auto_topup_enabled = true, auto_topup_threshold = 500, auto_topup_amount = 2000"
                " WHERE tenant_id = :t"
            ),
            {"t": tenant_id},
        )
    return tenant_id


async def test_the_trigger_from_50_transactions_at_once_starts_exactly_one(db: Database) -> None:
    tenant_id = await _tenant_below_threshold(db)
    gate = asyncio.Event()

    async def trigger(n: int) -> str | None:
        async with unit_of_work(db) as session:
            await session.execute(text("SELECT 1"))  # each its own open transaction
            await gate.wait()
            return await start_if_due(session, tenant_id, f"test:{n}")

    tasks = [asyncio.create_task(trigger(n)) for n in range(50)]
    await asyncio.sleep(0)
    gate.set()
    started = [s for s in await asyncio.gather(*tasks) if s is not None]
    assert len(started) == 1
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT id, status FROM auto_topups WHERE tenant_id = :t"), {"t": tenant_id}
            )
        ).all()
        jobs = await conn.scalar(
            text(
                "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'run_auto_topup'"
                " AND convert_from(payload, 'UTF8')::jsonb ->> 'tenant_id' = :t"
            ),
            {"t": tenant_id},
        )
        paused = await conn.scalar(
            text("SELECT auto_topup_paused_until = 'infinity' FROM wallets WHERE tenant_id = :t"),
            {"t": tenant_id},
        )
    assert [(r[0], r[1]) for r in rows] == [(started[0], "created")]
    assert jobs == 1
    assert paused is True
    async with unit_of_work(db) as session:  # leave nothing for a later test's worker to run
        await session.execute(
            text("UPDATE auto_topups SET status = 'canceled' WHERE tenant_id = :t"), {"t": tenant_id}
        )


async def test_a_second_in_flight_row_is_refused_by_the_index(db: Database) -> None:
    tenant_id = await _tenant_below_threshold(db)
    insert = text(
        "INSERT INTO auto_topups (tenant_id, id, status, provider, currency, trigger_available, trigger_cause)"
        " VALUES (:t, :id, :status, 'stripe', 'USD', 0, 'test')"
    )
    async with unit_of_work(db) as session:
        await session.execute(
            insert, {"t": tenant_id, "id": new_auto_topup_id(), "status": "requires_action"}
        )
        await session.execute(
            insert, {"t": tenant_id, "id": new_auto_topup_id(), "status": "failed"}
        )  # ended: fine
    with pytest.raises(IntegrityError, match="auto_topups_one_in_flight"):
        async with unit_of_work(db) as session:
            await session.execute(insert, {"t": tenant_id, "id": new_auto_topup_id(), "status": "processing"})
    async with unit_of_work(db) as session:
        await session.execute(
            text("UPDATE auto_topups SET status = 'canceled' WHERE tenant_id = :t"), {"t": tenant_id}
        )
