"""The PgQueuer the worker runs: its entrypoints (jobs.py) and cron schedules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.executors import DatabaseRetryEntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.models import Job, Schedule

from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.services.events import DELIVER_EVENT
from walletsvc.services.gateways import Gateways, build_gateways
from walletsvc.worker import jobs

log = logging.getLogger("walletsvc.worker")

# Cron expressions (UTC), one run per tick across every worker (pgqueuer's schedule lock).
SCHEDULES = {
    "expire_holds": "* * * * *",
    "purge_idempotency_keys": "17 * * * *",
    "reconcile": "*/5 * * * *",
    "close_periods": "* * * * *",
}


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _retrying(parameters: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
    # A job that raises runs again with exponential backoff (1 s, 2 s, 4 s ...), up to ten attempts.
    return DatabaseRetryEntrypointExecutor(parameters=parameters, max_attempts=10)


@dataclass
class Worker:
    pgq: PgQueuer
    db: Database
    gateways: Gateways
    pool: asyncpg.Pool


def build(settings: Settings, db: Database, gateways: Gateways, pool: asyncpg.Pool) -> PgQueuer:
    pgq = PgQueuer.from_asyncpg_pool(pool)

    @pgq.entrypoint(DELIVER_EVENT, executor_factory=_retrying)
    async def deliver_event(job: Job) -> None:
        await jobs.deliver_event(db, job.payload)

    @pgq.schedule("expire_holds", SCHEDULES["expire_holds"])
    async def expire_holds(_schedule: Schedule) -> None:
        await jobs.expire_holds(db)

    @pgq.schedule("purge_idempotency_keys", SCHEDULES["purge_idempotency_keys"])
    async def purge(_schedule: Schedule) -> None:
        await jobs.purge_idempotency_keys(db, settings)

    @pgq.schedule("reconcile", SCHEDULES["reconcile"])
    async def reconcile(_schedule: Schedule) -> None:
        await jobs.reconcile_pending(db, gateways, settings)

    @pgq.schedule("close_periods", SCHEDULES["close_periods"])
    async def close_periods(_schedule: Schedule) -> None:
        await jobs.close_periods(db)

    return pgq


@asynccontextmanager
async def worker(settings: Settings, url: str, *, concurrency: int) -> AsyncIterator[Worker]:
    db = Database.connect(url, pool_size=max(2, concurrency), max_overflow=2)
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=2, max_size=max(4, concurrency + 2))
    gateways = build_gateways(settings)
    try:
        yield Worker(pgq=build(settings, db, gateways, pool), db=db, gateways=gateways, pool=pool)
    finally:
        await gateways.aclose()
        await pool.close()
        await db.dispose()
