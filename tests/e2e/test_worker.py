"""Real `walletsvc worker` processes on the suite's PostgreSQL: a committed job runs once, two workers
share jobs without running one twice, and a worker killed mid-job has its job run again, to one effect."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from tests.fixtures.events import delivery_jobs
from tests.fixtures.worker_processes import (
    commit_events,
    job_log,
    start_worker,
    wait_delivered,
    wait_schedules,
    worker_running,
)
from walletsvc.db.engine import Database


def _dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_a_committed_job_runs_once_when_a_worker_starts(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    _, ids = await commit_events(db, 3)
    [job, *_] = await delivery_jobs(db, ids[:1])
    with worker_running(database_url, tmp_path, "worker"):
        done = await wait_delivered(db, ids)
        schedules = await wait_schedules(db, 5)
    assert done == {i: ("no_endpoints", 1) for i in ids}
    assert await delivery_jobs(db, ids) == []  # done jobs leave the queue
    assert await job_log(db, job["id"]) == ["queued", "picked", "successful"]
    # The housekeeping schedules, one run per tick across all workers.
    assert schedules == {
        ("expire_holds", "* * * * *"),
        ("purge_idempotency_keys", "17 * * * *"),
        ("reconcile", "*/5 * * * *"),
        ("close_periods", "* * * * *"),
        ("issue_statements", "*/10 * * * *"),
    }


async def test_two_workers_run_each_job_to_one_effect(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    with (
        worker_running(database_url, tmp_path, "one", "--concurrency", "4"),
        worker_running(database_url, tmp_path, "two", "--concurrency", "4"),
    ):
        _, ids = await commit_events(db, 60)  # after both listen: their NOTIFY wakes them
        jobs = await delivery_jobs(db, ids)
        done = await wait_delivered(db, ids)
    assert done == {i: ("no_endpoints", 1) for i in ids}
    assert len(jobs) == len(ids)
    for job in jobs:
        # Picked by one worker only, and done once.
        assert await job_log(db, job["id"]) == ["queued", "picked", "successful"]


async def _wait_for_lock_wait(conn: asyncpg.Connection, within: float = 60.0) -> None:
    """Until a walletsvc backend waits for the row lock the test holds (the job is mid-way). `conn` is
    outside a transaction: inside one, pg_stat_activity is a snapshot taken at its first read."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'walletsvc'"
            " AND wait_event_type = 'Lock' AND query LIKE '%FROM events%FOR UPDATE%'"
        )
        if waiting:
            return
        await asyncio.sleep(0.1)  # polling the worker's progress
    activity = await conn.fetch(
        "SELECT application_name, state, wait_event_type, left(query, 80) AS q FROM pg_stat_activity"
        " WHERE datname = current_database()"
    )
    raise AssertionError(f"the worker never reached the event's lock: {[dict(r) for r in activity]}")


async def test_a_worker_killed_mid_job_has_the_job_run_again_to_one_effect(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    _, [event_id] = await commit_events(db, 1)
    [job] = await delivery_jobs(db, [event_id])
    blocker = await asyncpg.connect(_dsn(database_url))
    watcher = await asyncpg.connect(_dsn(database_url))
    try:
        # Hold the event's row: the job's dispatch waits for its lock, so the worker is killed mid-job.
        held = blocker.transaction()
        await held.start()
        await blocker.execute("SELECT 1 FROM events WHERE id = $1 FOR UPDATE", event_id)
        first = start_worker(database_url, tmp_path, "first")
        try:
            first.wait_ready()
            await _wait_for_lock_wait(watcher)
            [picked] = await delivery_jobs(db, [event_id])
            assert picked["status"] == "picked"
        finally:
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=30)
        await held.rollback()
    finally:
        await blocker.close()
        await watcher.close()

    with worker_running(database_url, tmp_path, "second"):
        done = await wait_delivered(db, [event_id])
    assert done == {event_id: ("no_endpoints", 1)}  # the killed run's dispatch never committed
    assert await delivery_jobs(db, [event_id]) == []
    # Picked by the killed worker, picked again once its heartbeat went stale, done once.
    assert await job_log(db, job["id"]) == ["queued", "picked", "picked", "successful"]
