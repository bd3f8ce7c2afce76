"""A busy wallet's rounds without the lock: the writer decides a known wallet's next round on what its
last round left and writes it in one statement that checks the row versions. Whatever changed the
wallet, its subscription, its plan or its currency's defaults in between must be seen: the round is
charged again under the lock, on what is there now, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import assert_ledger_verifies, ref, wallet_of
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.charging import ChargeOutcome, UsageRecord
from walletsvc.domain.rating import UsageKind
from walletsvc.services.charging import ChargeWriter

Headers = dict[str, str]
BUSY = 5  # records of one wallet in one round: enough to be written without the lock once known


def sms(tenant_id: str, reference: str | None = None) -> UsageRecord:
    return UsageRecord(tenant_id, UsageKind.SMS, reference or ref("sms"), None, 1, "test")


async def charged(writer: ChargeWriter, records: list[UsageRecord]) -> list[ChargeOutcome]:
    answers = await writer.charge_many(records)
    outcomes = [a for a in answers if isinstance(a, ChargeOutcome)]
    assert len(outcomes) == len(records), answers
    return outcomes


async def ledger_of(db: Database, tenant_id: str) -> list[asyncpg.Record]:
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        rows: list[asyncpg.Record] = await driver.fetch(
            "SELECT seq, type, amount, balance_before, balance_after FROM ledger_entries"
            " WHERE tenant_id = $1 ORDER BY seq",
            tenant_id,
        )
        return rows


def chained(rows: list[asyncpg.Record]) -> bool:
    return all(
        b["seq"] == a["seq"] + 1 and b["balance_before"] == a["balance_after"]
        for a, b in itertools.pairwise(rows)
    )


@pytest.fixture
def writer(db: Database, settings: Settings) -> ChargeWriter:
    return ChargeWriter(db, settings.model_copy(update={"charge_writers": 1}))


async def test_a_busy_known_wallet_is_charged_without_the_lock_and_chains_on(
    create_tenant: TenantFactory, db: Database, writer: ChargeWriter
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    first = await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 0  # not known yet: under the lock
    later = [await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)]) for _ in range(3)]
    assert writer.known_rounds == 3
    assert writer.known_misses == 0
    answers = [*first, *(o for round_ in later for o in round_)]
    assert [o.balance_after for o in answers] == [1_000 - 2 * (i + 1) for i in range(4 * BUSY)]
    assert all(not o.replayed for o in answers)
    rows = await ledger_of(db, tenant["id"])
    assert len(rows) == 1 + 4 * BUSY
    assert chained(rows)
    await assert_ledger_verifies(db)


async def test_a_few_records_of_a_wallet_share_the_locked_round(
    create_tenant: TenantFactory, writer: ChargeWriter
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    for _ in range(3):
        await charged(writer, [sms(tenant["id"]) for _ in range(BUSY - 2)])
    assert writer.known_rounds == 0


async def test_a_credit_between_rounds_is_seen(
    client: httpx.AsyncClient,
    admin_headers: Headers,
    create_tenant: TenantFactory,
    db: Database,
    writer: ChargeWriter,
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    writer.contended_seconds = 0  # locked only for the round that found the change
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 1
    credit = await client.post(
        f"/v1/admin/tenants/{tenant['id']}/adjustments",
        json={"amount": 500, "reason": "goodwill"},
        headers=admin_headers,
    )
    assert credit.status_code == 201, credit.text

    after = await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])

    assert writer.known_misses == 1  # the credit changed the wallet: charged again under the lock
    assert after[-1].balance_after == 1_000 - 2 * 3 * BUSY + 500
    assert (await wallet_of(client, admin_headers, tenant["id"]))["balance"]["amount"] == after[
        -1
    ].balance_after
    rows = await ledger_of(db, tenant["id"])
    assert [r["type"] for r in rows].count("adjustment") == 2
    assert chained(rows)
    # Known again from that locked round on.
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 2
    await assert_ledger_verifies(db)


async def test_a_reference_charged_before_is_answered_as_the_first_charge(
    create_tenant: TenantFactory, db: Database, writer: ChargeWriter
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    first = await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 1
    again = [sms(tenant["id"]) for _ in range(BUSY - 1)]
    again.insert(2, sms(tenant["id"], first[3].charge.reference_id))  # a telephony retry among new ones

    answers = await charged(writer, again)

    assert answers[2].replayed
    assert answers[2].charge.id == first[3].charge.id
    assert [a.replayed for a in answers].count(True) == 1
    rows = await ledger_of(db, tenant["id"])
    assert len(rows) == 1 + 3 * BUSY - 1
    assert chained(rows)
    assert answers[-1].balance_after == rows[-1]["balance_after"] == 1_000 - 2 * (3 * BUSY - 1)
    await assert_ledger_verifies(db)


async def test_new_default_prices_between_rounds_apply_to_the_next(
    client: httpx.AsyncClient,
    admin_headers: Headers,
    create_tenant: TenantFactory,
    db: Database,
    writer: ChargeWriter,
) -> None:
    put = await client.put(
        "/v1/admin/billing-defaults/NOK",
        json={"per_minute_rate": "10", "sms_price": "3", "minimum_balance": 0},
        headers=admin_headers,
    )
    assert put.status_code == 200, put.text
    tenant = await create_tenant(currency="NOK", country="NOR", balance=1_000)
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 1
    put = await client.put(
        "/v1/admin/billing-defaults/NOK",
        json={"per_minute_rate": "10", "sms_price": "7", "minimum_balance": 0},
        headers=admin_headers,
    )
    assert put.status_code == 200, put.text

    after = await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])

    assert writer.known_misses == 1
    assert {o.charge.amount.amount for o in after} == {7}
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 1  # changed lately: under the lock for contended_seconds
    assert after[-1].balance_after == 1_000 - 3 * 2 * BUSY - 7 * BUSY
    await assert_ledger_verifies(db)


async def test_two_writers_on_one_busy_wallet_charge_everything_once(
    create_tenant: TenantFactory, db: Database, settings: Settings
) -> None:
    """Two writers (as two processes have) charging one wallet in busy rounds at once: each one's
    known state goes stale under the other's writes; every charge is written once, the chain holds."""
    tenant = await create_tenant(currency="USD", country="USA", balance=100_000)
    writers = [ChargeWriter(db, settings.model_copy(update={"charge_writers": 1})) for _ in range(2)]

    async def rounds(writer: ChargeWriter) -> list[ChargeOutcome]:
        out: list[ChargeOutcome] = []
        for _ in range(8):
            out += await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
        return out

    results = await asyncio.gather(*(rounds(w) for w in writers))

    outcomes = [o for result in results for o in result]
    assert len({o.charge.id for o in outcomes}) == 2 * 8 * BUSY
    rows = await ledger_of(db, tenant["id"])
    assert len(rows) == 1 + 2 * 8 * BUSY
    assert chained(rows)
    assert rows[-1]["balance_after"] == 100_000 - 2 * 2 * 8 * BUSY
    assert sum(w.known_rounds for w in writers) + sum(w.known_misses for w in writers) > 0
    await assert_ledger_verifies(db)


async def test_a_known_round_whose_connection_dies_is_charged_once_under_the_lock(
    create_tenant: TenantFactory, db: Database, writer: ChargeWriter
) -> None:
    """The writer's connection is killed (pg_terminate_backend) while its one-statement round waits on
    the wallet's row lock: the round is charged under the lock on a fresh connection, once."""
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 1
    async with db.engine.connect() as blocker, db.engine.connect() as watcher:
        # Another transaction holds the wallet's row lock (without changing the row).
        await blocker.execute(
            text("SELECT 1 FROM wallets WHERE tenant_id = :t FOR UPDATE"), {"t": tenant["id"]}
        )
        pending = asyncio.create_task(  # noqa: RUF006 - awaited below, once the lock is let go
            writer.charge_many([sms(tenant["id"]) for _ in range(BUSY)])
        )
        waiting = None
        for _ in range(500):  # until the round's statement waits on that lock (at most ~10 s)
            waiting = (
                await watcher.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query LIKE '%WITH wallet AS (%'"
                    )
                )
            ).scalar()
            await watcher.rollback()
            if waiting is not None:
                break
            await asyncio.sleep(0.02)
        assert waiting is not None, "the known round never waited on the wallet's lock"
        await watcher.execute(text("SELECT pg_terminate_backend(:p)"), {"p": waiting})
        await blocker.rollback()  # the locked round now gets the lock
    answers = await pending

    assert all(isinstance(a, ChargeOutcome) for a in answers), answers
    assert writer.known_rounds == 1  # that round was not written without the lock
    rows = await ledger_of(db, tenant["id"])
    assert len(rows) == 1 + 3 * BUSY
    assert chained(rows)
    assert rows[-1]["balance_after"] == 1_000 - 2 * 3 * BUSY
    await assert_ledger_verifies(db)


async def test_a_known_wallet_stays_known_through_a_small_round(
    db: Database, create_tenant: TenantFactory, writer: ChargeWriter
) -> None:
    """A hot wallet's queue is drained in rounds of every size (in a closed loop they alternate: what
    waited while the last round was written, then the record or two that came in since): a round of
    one record of a known wallet is written without the lock too, and so is the busy one after it."""
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    [small] = await charged(writer, [sms(tenant["id"])])
    assert writer.known_rounds == 1
    await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 2
    assert writer.known_misses == 0
    rows = await ledger_of(db, tenant["id"])
    assert chained(rows)
    assert rows[-1]["balance_after"] == 1_000 - (2 * BUSY + 1) * 2  # the test rates: 2 a message
    assert small.balance_after == 1_000 - (BUSY + 1) * 2


async def test_the_writers_connection_goes_back_to_the_pool_planning_by_default(
    create_tenant: TenantFactory, db: Database, writer: ChargeWriter
) -> None:
    """The writer plans its statements generically while it holds a connection (for the known
    statement, until it hands the connection back); every other user of the pool plans as PostgreSQL
    chooses."""
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    for _ in range(3):  # under the lock, then known twice
        await charged(writer, [sms(tenant["id"]) for _ in range(BUSY)])
    assert writer.known_rounds == 2
    await writer.idle()

    pool = db.engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    idle = [await db.engine.connect() for _ in range(pool.checkedin())]  # every pooled connection
    try:
        modes = [(await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() for conn in idle]
    finally:
        for conn in idle:
            await conn.close()
    assert modes
    assert set(modes) == {"auto"}
