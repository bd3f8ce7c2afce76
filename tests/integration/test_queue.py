"""Jobs are rows written in the caller's transaction: a rolled-back change leaves no job and no event,
a committed one wakes the workers at commit, and pgqueuer itself runs the rows `enqueue` writes."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest
from pgqueuer import PgQueuer
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.fixtures.events import delivery_jobs
from tests.fixtures.worker_processes import commit_events, deliveries, wait_delivered
from walletsvc.config import Settings
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.domain.events import EventType
from walletsvc.gateway_config import build_gateways
from walletsvc.services.events import record_event
from walletsvc.services.queue import enqueue
from walletsvc.worker.app import build


class Boom(Exception):
    pass


def _dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _change_then_fail(db: Database, made: list[str | int]) -> None:
    async with unit_of_work(db) as session:
        event_id = await record_event(session, EventType.WALLET_FLAGGED, "it-rolled-back", {})
        made += [event_id, await enqueue(session, "deliver_event", {"event_id": "evt_never"})]
        assert await delivery_jobs(db, [event_id]) == []  # not visible to others before commit either
        raise Boom


async def test_a_rolled_back_change_leaves_no_job_and_no_event(db: Database) -> None:
    made: list[str | int] = []
    with pytest.raises(Boom):
        await _change_then_fail(db, made)
    event_id, job_id = made
    assert await deliveries(db, [str(event_id)]) == {}
    async with db.engine.connect() as conn:
        left = await conn.execute(text("SELECT count(*) FROM pgqueuer WHERE id = :j"), {"j": job_id})
        assert left.scalar_one() == 0


async def test_the_wake_up_reaches_listeners_at_commit(db: Database, database_url: str) -> None:
    listener = await asyncpg.connect(_dsn(database_url))
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("ch_pgqueuer", lambda *args: heard.put_nowait(args[3]))
    try:
        async with unit_of_work(db) as session:
            await enqueue(session, "deliver_event", {"event_id": "evt_wake"})
            assert heard.empty()
        message = json.loads(await asyncio.wait_for(heard.get(), timeout=30))
        assert (message["type"], message["table"], message["operation"]) == (
            "table_changed_event",
            "pgqueuer",
            "insert",
        )
    finally:
        await listener.close()


async def test_pgqueuer_runs_the_jobs_enqueue_writes(
    db: Database, database_url: str, settings: Settings
) -> None:
    _, ids = await commit_events(db, 3)
    pool = await asyncpg.create_pool(_dsn(database_url), min_size=1, max_size=4)
    gateways = build_gateways(settings)
    try:
        pgq: PgQueuer = build(settings, db, gateways, pool)
        # Continuous, not drain: the suite's database holds other tests' jobs too (some due later), so
        # run until these three are done, then stop.
        running = asyncio.create_task(pgq.qm.run(dequeue_timeout=timedelta(seconds=1), batch_size=5))
        try:
            done = await wait_delivered(db, ids, within=120)
        finally:
            pgq.qm.shutdown.set()
            await asyncio.wait_for(running, timeout=60)
    finally:
        await gateways.aclose()
        await pool.close()
    assert done == {i: ("no_endpoints", 1) for i in ids}
    assert await delivery_jobs(db, ids) == []
