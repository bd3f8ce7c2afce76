"""The PgQueuer the worker runs: its entrypoints (jobs.py) and cron schedules."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.executors import DatabaseRetryEntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.models import Job, Schedule

from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.db.repositories.auto_topups import RUN_AUTO_TOPUP
from walletsvc.gateway_config import build_gateways
from walletsvc.service_config import (
    document_config,
    smtp_config,
    smtp_off_reason,
    webhook_delivery_config,
    webhook_secret_box,
)
from walletsvc.services.documents import configure_documents
from walletsvc.services.events import DELIVER_EVENT
from walletsvc.services.gateways import Gateways
from walletsvc.services.notifications import MAX_ATTEMPTS as EMAIL_MAX_ATTEMPTS
from walletsvc.services.notifications import SEND_EMAIL
from walletsvc.services.periods import CLOSE_PERIODS_JOB
from walletsvc.services.webhook_delivery import SEND_WEBHOOK, WebhookSender
from walletsvc.worker import jobs

log = logging.getLogger("walletsvc.worker")

# Cron expressions (UTC), one run per tick across every worker (pgqueuer's schedule lock).
SCHEDULES = {
    "expire_holds": "* * * * *",
    "purge_idempotency_keys": "17 * * * *",
    "reconcile": "*/5 * * * *",
    "close_periods": "* * * * *",
    "issue_statements": "*/10 * * * *",  # last month's statements, once the month has ended (a no-op after)
}


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _retrying(parameters: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
    # A job that raises runs again with exponential backoff (1 s, 2 s, 4 s ...), up to ten attempts.
    return DatabaseRetryEntrypointExecutor(parameters=parameters, max_attempts=10)


def _retrying_email(parameters: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
    # An e-mail the server refused for now: 1 s, 2 s, 4 s ... at most 30 min apart. The row counts its own
    # attempts and gives up (`failed`) before pgqueuer would.
    return DatabaseRetryEntrypointExecutor(
        parameters=parameters, max_attempts=EMAIL_MAX_ATTEMPTS + 1, max_delay=timedelta(minutes=30)
    )


@dataclass
class Worker:
    pgq: PgQueuer
    db: Database
    gateways: Gateways
    pool: asyncpg.Pool


def build(
    settings: Settings,
    db: Database,
    gateways: Gateways,
    pool: asyncpg.Pool,
    *,
    webhooks: WebhookSender | None = None,
) -> PgQueuer:
    pgq = PgQueuer.from_asyncpg_pool(pool)
    policy = settings.auto_topup_policy()  # what a decline does, fixed for this worker's life

    if webhooks is not None:

        @pgq.entrypoint(SEND_WEBHOOK, executor_factory=_retrying)
        async def send_webhook(job: Job) -> None:
            await jobs.send_webhook(db, job.payload, webhooks)

    @pgq.entrypoint(DELIVER_EVENT, executor_factory=_retrying)
    async def deliver_event(job: Job) -> None:
        await jobs.deliver_event(db, job.payload)

    email_off = smtp_off_reason(settings)
    if email_off is not None:
        log.warning(f"e-mail notifications off: {email_off}")  # said once; events still go to webhooks
    email = smtp_config(settings)

    @pgq.entrypoint(SEND_EMAIL, executor_factory=_retrying_email)
    async def send_email(job: Job) -> None:
        await jobs.send_email(db, job.payload, email)

    @pgq.entrypoint(RUN_AUTO_TOPUP, executor_factory=_retrying)
    async def run_auto_topup(job: Job) -> None:
        await jobs.run_auto_topup(db, gateways, settings, policy, job.payload)

    @pgq.schedule("expire_holds", SCHEDULES["expire_holds"])
    async def expire_holds(_schedule: Schedule) -> None:
        await jobs.expire_holds(db)

    @pgq.schedule("purge_idempotency_keys", SCHEDULES["purge_idempotency_keys"])
    async def purge(_schedule: Schedule) -> None:
        await jobs.purge_idempotency_keys(db, settings)

    @pgq.schedule("reconcile", SCHEDULES["reconcile"])
    async def reconcile(_schedule: Schedule) -> None:
        await jobs.reconcile_pending(db, gateways, settings, policy)

    if settings.period_close_schedule:  # PERIOD_CLOSE_SCHEDULE (default SCHEDULES["close_periods"])

        @pgq.schedule("close_periods", settings.period_close_schedule)
        async def close_periods(_schedule: Schedule) -> None:
            await jobs.close_periods(db)

    @pgq.schedule("issue_statements", SCHEDULES["issue_statements"])
    async def issue_statements(_schedule: Schedule) -> None:
        await jobs.issue_statements(db)

    # The same close, asked for now (`walletsvc periods close --enqueue`): any worker picks it.
    @pgq.entrypoint(CLOSE_PERIODS_JOB, executor_factory=_retrying)
    async def close_periods_now(_job: Job) -> None:
        await jobs.close_periods(db)

    return pgq


@asynccontextmanager
async def worker(settings: Settings, url: str, *, concurrency: int) -> AsyncIterator[Worker]:
    db = Database.connect(url, pool_size=max(2, concurrency), max_overflow=2)
    configure_documents(
        db.sessionmaker, document_config(settings)
    )  # invoices issued by reconcile, statements
    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=2, max_size=max(4, concurrency + 2))
    gateways = build_gateways(settings)
    webhooks = WebhookSender(webhook_delivery_config(settings), webhook_secret_box(settings))
    if webhooks.box is None:  # said once; deliveries are recorded as refused until the key is set
        log.warning("webhook deliveries cannot be signed: WEBHOOK_SECRETS_KEY is not set")
    try:
        yield Worker(
            pgq=build(settings, db, gateways, pool, webhooks=webhooks), db=db, gateways=gateways, pool=pool
        )
    finally:
        await webhooks.aclose()
        await gateways.aclose()
        await pool.close()
        await db.dispose()
