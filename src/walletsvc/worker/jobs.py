"""What the worker runs. Each job is its own unit of work (the second place, beside the request
transaction, that commits) and writes only through services."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from walletsvc.config import Settings
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.services import calls, events, periods, retention
from walletsvc.services.gateways import Gateways
from walletsvc.services.reconcile import reconcile

log = logging.getLogger("walletsvc.worker")


def job_payload(raw: bytes | None) -> dict[str, object]:
    value = json.loads(raw or b"{}")
    if not isinstance(value, dict):
        raise ValueError("a job's payload is a JSON object")
    return value


async def deliver_event(db: Database, raw: bytes | None) -> None:
    event_id = str(job_payload(raw)["event_id"])
    async with unit_of_work(db) as session:
        queued = await events.dispatch_event(session, event_id)
    log.info("event dispatched", extra={"event_id": event_id, "queued": queued})


async def close_periods(db: Database) -> None:
    closed = await periods.close_due_periods(db)
    log.info("periods closed", extra={"closed": closed})


async def expire_holds(db: Database) -> None:
    await calls.expire_holds(db)


async def purge_idempotency_keys(db: Database, settings: Settings) -> None:
    purged = await retention.purge_idempotency_keys(db, settings)
    log.info("idempotency keys purged", extra={"purged": purged})


async def reconcile_pending(db: Database, gateways: Gateways, settings: Settings) -> None:
    report = await reconcile(db, gateways, older_than=timedelta(seconds=settings.reconcile_after_seconds))
    log.info(
        "reconcile",
        extra={
            "checked": report.checked,
            "credited": report.credited,
            "failed": report.failed,
            "errors": len(report.errors),
        },
    )
