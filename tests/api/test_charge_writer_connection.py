"""The charge writer keeps one pooled connection across the rounds it writes back to back, and hands it
back to the pool when nothing more came for `linger_seconds` after its last round."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text

from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ref
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.charging import ChargeOutcome, UsageRecord
from walletsvc.domain.rating import UsageKind
from walletsvc.services.charging import ChargeWriter


async def test_one_writer_writes_its_rounds_on_one_checkout_and_then_returns_it(
    create_tenant: TenantFactory, database_url: str, settings: Settings
) -> None:
    wallets = [await create_tenant(currency="USD", country="USA", balance=1_000) for _ in range(3)]
    database = Database.connect(database_url, pool_size=2, max_overflow=0)
    checkouts: list[Any] = []
    checkins: list[Any] = []
    event.listen(database.engine.sync_engine, "checkout", lambda *args: checkouts.append(args))
    event.listen(database.engine.sync_engine, "checkin", lambda *args: checkins.append(args))
    # One writer, one wallet a round: three rounds, one after the other.
    writer = ChargeWriter(
        database, settings.model_copy(update={"charge_writers": 1, "charge_batch_wallets": 1})
    )
    writer.linger_seconds = 60  # longer than the test: what comes next finds the writer waiting
    try:
        records = [_sms(w["id"]) for w in wallets]
        answers = await writer.charge_many(records)
        assert all(isinstance(a, ChargeOutcome) for a in answers)
        async with database.engine.connect() as conn:
            rounds = (
                await conn.execute(
                    text("SELECT count(DISTINCT xmin::text) FROM usage_charges WHERE tenant_id = ANY(:t)"),
                    {"t": [w["id"] for w in wallets]},
                )
            ).scalar_one()
        assert rounds == 3  # three transactions...
        assert len(checkouts) == 2  # ...on the writer's one checkout (the other is the count above)
        assert len(checkins) == 1  # the count's: the writer waits for more, its connection kept

        [later] = await writer.charge_many([_sms(wallets[0]["id"])])
        assert isinstance(later, ChargeOutcome)
        assert len(checkouts) == 2  # the waiting writer wrote it on the same connection

        await writer.idle()  # stops the wait
        assert len(checkins) == 2  # the writer handed its connection back
    finally:
        await database.dispose()


async def test_a_writer_with_nothing_more_to_write_hands_its_connection_back(
    create_tenant: TenantFactory, database_url: str, settings: Settings
) -> None:
    wallet = await create_tenant(currency="USD", country="USA", balance=1_000)
    database = Database.connect(database_url, pool_size=2, max_overflow=0)
    returned = asyncio.Event()
    event.listen(database.engine.sync_engine, "checkin", lambda *args: returned.set())
    writer = ChargeWriter(database, settings)
    try:
        [answer] = await writer.charge_many([_sms(wallet["id"])])
        assert isinstance(answer, ChargeOutcome)
        # Nothing else comes: the writer ends by itself after linger_seconds, no idle() asked.
        await asyncio.wait_for(returned.wait(), timeout=30)
        pool = database.engine.sync_engine.pool
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await database.dispose()


async def test_what_arrives_while_writers_wait_wakes_one_of_them_and_starts_no_other(
    create_tenant: TenantFactory, database_url: str, settings: Settings
) -> None:
    wallet = await create_tenant(currency="USD", country="USA", balance=1_000)
    async with _waiting_writer(database_url, settings, writers=4) as (writer, checkouts):
        for _ in range(3):  # one after the other: each finds the one writer waiting for more
            answer = await writer.charge(_sms(wallet["id"]))
            assert isinstance(answer, ChargeOutcome)
        assert writer._writers == 1
        assert len(checkouts) == 1


async def test_a_record_that_arrives_as_the_wait_runs_out_is_still_written(
    create_tenant: TenantFactory, database_url: str, settings: Settings
) -> None:
    wallet = await create_tenant(currency="USD", country="USA", balance=1_000)
    async with _waiting_writer(database_url, settings, writers=1) as (writer, _):
        first = await writer.charge(_sms(wallet["id"]))
        assert isinstance(first, ChargeOutcome)
        [waiting] = writer._sleepers
        writer._give_up(waiting)  # the wait runs out; the writer (the only one allowed) has not resumed
        [arrived] = writer._enqueue([_sms(wallet["id"])])
        later = await asyncio.wait_for(arrived, timeout=30)  # the writer takes it before it ends
        assert isinstance(later, ChargeOutcome)
        assert later.charge.reference_id != first.charge.reference_id


async def test_a_connection_ended_while_the_writer_waits_is_replaced_before_the_next_round(
    create_tenant: TenantFactory,
    db: Database,
    database_url: str,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL ends the writer's connection (pg_terminate_backend, a restart) while the writer keeps
    it, waiting for more: the next round, a known wallet's, is written without the lock on a fresh
    connection, and no round is spent on the dead one (nothing logged)."""
    wallet = await create_tenant(currency="USD", country="USA", balance=1_000)
    async with _waiting_writer(database_url, settings, writers=1) as (writer, checkouts):
        answers = await writer.charge_many([_sms(wallet["id"]) for _ in range(5)])  # known from now on
        assert all(isinstance(a, ChargeOutcome) for a in answers)
        [held] = checkouts
        kept: asyncpg.Connection = held.driver_connection
        async with db.engine.connect() as other:
            ended = await other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": kept.get_server_pid()})
            assert ended.scalar_one()
        for _ in range(1000):  # until the writer's connection has seen its end (at most ~10 s)
            if kept.is_closed():
                break
            await asyncio.sleep(0.01)
        assert kept.is_closed()

        with caplog.at_level(logging.WARNING, logger="walletsvc.services.charging"):
            later = await writer.charge(_sms(wallet["id"]))
        assert isinstance(later, ChargeOutcome)
        assert later.balance_after == 1_000 - 6 * 2  # the test rates: 2 a message
        assert writer.known_rounds == 1  # without the lock
        assert len(checkouts) == 2  # on a fresh connection
        assert [r.getMessage() for r in caplog.records] == []


@asynccontextmanager
async def _waiting_writer(
    database_url: str, settings: Settings, *, writers: int
) -> AsyncIterator[tuple[ChargeWriter, list[Any]]]:
    """A writer of up to `writers` tasks on a pool of its own, waiting for more longer than any test
    (what comes next finds it waiting), and the pool's checkouts (the asyncpg-adapted connections)."""
    database = Database.connect(database_url, pool_size=writers + 1, max_overflow=0)
    checkouts: list[Any] = []
    event.listen(database.engine.sync_engine, "checkout", lambda conn, *_: checkouts.append(conn))
    writer = ChargeWriter(database, settings.model_copy(update={"charge_writers": writers}))
    writer.linger_seconds = 60
    try:
        yield writer, checkouts
    finally:
        await writer.idle()
        await database.dispose()


def _sms(tenant_id: str) -> UsageRecord:
    return UsageRecord(tenant_id, UsageKind.SMS, ref("sms"), None, 1, "t")
