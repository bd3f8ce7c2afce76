"""Period close by real `walletsvc worker` processes: two workers closing the same ended periods at once,
one of them SIGKILLed in the middle of a close, still charge every period's plan fee exactly once and lose
none; the ledger verifies afterwards."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from tests.fixtures.periods import fee_counts, subscribed_tenants, wallet_row
from tests.fixtures.worker_processes import job_log, start_worker, worker_running
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.services.ledger_verify import verify_ledger
from walletsvc.services.periods import request_close

TENANTS = 60
PERIODS = 3
FEE = 5_00
# Only the close jobs the test queues run: the every-minute schedule would add runs the test cannot name.
NO_SCHEDULE = {"PERIOD_CLOSE_SCHEDULE": ""}


def _dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _enqueue_close(db: Database) -> int:
    async with unit_of_work(db) as session:
        return await request_close(session)


async def _wait_for_lock_wait(conn: asyncpg.Connection, query: str, within: float = 60.0) -> None:
    """Until a walletsvc backend running `query` (a LIKE pattern) waits for a row lock."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'walletsvc'"
            " AND wait_event_type = 'Lock' AND query LIKE $1",
            query,
        )
        if waiting:
            return
        await asyncio.sleep(0.1)  # polling the workers' progress
    raise AssertionError(f"no worker came to wait for a lock on {query}")


async def _wait_all_closed(
    db: Database, tenants: list[str], within: float = 120.0
) -> dict[str, tuple[int, int, int]]:
    deadline = time.monotonic() + within
    while True:
        counts = await fee_counts(db, tenants)
        if all(c[0] >= PERIODS and c[2] >= PERIODS for c in counts.values()) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)  # polling the workers' progress


async def _wait_job_done(db: Database, job_id: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if (await job_log(db, job_id))[-1:] == ["successful"] or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)  # polling the re-picked job


async def test_two_workers_and_a_kill_charge_each_period_once(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    tenants = await subscribed_tenants(db, TENANTS, fee=FEE, balance=100_00, ended=PERIODS)
    held = tenants[TENANTS // 2]
    blocker = await asyncpg.connect(_dsn(database_url))
    watcher = await asyncpg.connect(_dsn(database_url))
    try:
        # Hold one tenant's period cursor: the first worker's close of that tenant stops half-way (its
        # transaction open, the tenant's wallet locked) and is killed there.
        hold = blocker.transaction()
        await hold.start()
        await blocker.execute("SELECT 1 FROM period_cursors WHERE tenant_id = $1 FOR UPDATE", held)
        first = start_worker(database_url, tmp_path, "first", "--concurrency", "2", env=NO_SCHEDULE)
        try:
            first.wait_ready()
            killed_job = await _enqueue_close(db)
            await _wait_for_lock_wait(watcher, "%FROM period_cursors%FOR UPDATE%")
            with worker_running(database_url, tmp_path, "second", "--concurrency", "4", env=NO_SCHEDULE):
                # More runs while the first is stuck: they close the other tenants beside it (and wait
                # behind its lock on the held tenant's wallet).
                others = [await _enqueue_close(db) for _ in range(3)]
                # They reach the held tenant and wait for its wallet, locked by the stuck close, then
                # leave it for a later run (the close's wallet lock timeout) and go on.
                await _wait_for_lock_wait(watcher, "%FROM wallets%FOR UPDATE%")
                partly = await _wait_all_closed(db, [t for t in tenants if t != held])
                first.process.send_signal(signal.SIGKILL)
                first.process.wait(timeout=30)
                await hold.rollback()  # the killed close rolled back; the held tenant is free again
                counts = await _wait_all_closed(db, tenants)
                for job in [killed_job, *others]:
                    await _wait_job_done(db, job)
        finally:
            if first.process.poll() is None:
                first.process.kill()
                first.process.wait(timeout=30)
    finally:
        await blocker.close()
        await watcher.close()

    # Before the kill: every other tenant closed (by both workers' runs), the held one not at all: its
    # close was in flight in the first worker, and the other runs could not have its wallet.
    assert partly == {t: (PERIODS, PERIODS, PERIODS) for t in tenants if t != held}
    # Every period closed, its fee charged and announced exactly once: none twice, none lost.
    assert counts == {t: (PERIODS, PERIODS, PERIODS) for t in tenants}
    for tenant_id in (tenants[0], held, tenants[-1]):
        wallet = await wallet_row(db, tenant_id)
        assert (wallet["balance"], wallet["owed"]) == (100_00 - PERIODS * FEE, 0)
    # The killed worker's job was picked again once its heartbeat went stale, and finished.
    log = await job_log(db, killed_job)
    assert log[0] == "queued"
    assert log.count("picked") >= 2, log
    assert log[-1] == "successful", log
    async with db.engine.connect() as conn:
        results, _ = await verify_ledger(conn)
    assert {r.check.name: r.offending for r in results if not r.ok} == {}
