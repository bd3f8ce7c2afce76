"""What the worker runs. Each job is its own unit of work (the second place, beside the request
transaction, that commits) and writes only through services."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from walletsvc.config import Settings
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.domain.auto_topup import AutoTopupPolicy
from walletsvc.services import auto_topup, calls, events, notifications, periods, retention, statements
from walletsvc.services.gateways import Gateways
from walletsvc.services.reconcile import reconcile
from walletsvc.services.webhook_delivery import WebhookSender

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


async def send_email(db: Database, raw: bytes | None, config: notifications.SmtpConfig | None) -> None:
    email_id = int(str(job_payload(raw)["email_id"]))
    status = await notifications.send_email(db, email_id, config=config)  # EmailRetry: run again later
    log.info("e-mail job done", extra={"email_id": email_id, "status": status})


async def send_webhook(db: Database, raw: bytes | None, sender: WebhookSender) -> None:
    payload = job_payload(raw)
    delivery_id, attempt = int(str(payload["delivery_id"])), int(str(payload["attempt"]))
    outcome = await sender.run(db, delivery_id, attempt)  # a failed attempt queues its own retry
    log.info("webhook job done", extra={"delivery_id": delivery_id, "attempt": attempt, "outcome": outcome})


async def run_auto_topup(
    db: Database, gateways: Gateways, settings: Settings, policy: AutoTopupPolicy, raw: bytes | None
) -> None:
    payload = job_payload(raw)
    tenant_id, attempt_id = str(payload["tenant_id"]), str(payload["auto_topup_id"])
    status = await auto_topup.run_auto_topup(
        db, gateways, settings, policy=policy, tenant_id=tenant_id, auto_topup_id=attempt_id
    )  # ProviderUnavailable: raised, so the job runs again under the same idempotency key
    log.info("auto top-up job done", extra={"auto_topup_id": attempt_id, "status": status.value})


async def close_periods(db: Database) -> None:
    report = await periods.close_due_periods_report(db)
    log.info("periods closed", extra={"closed": report.closed, "busy": report.busy, "failed": report.failed})


async def issue_statements(db: Database) -> None:
    run = await statements.issue_due_statements(db, now=datetime.now(UTC))
    if run.issued or run.failed:
        log.info(
            "statements issued", extra={"period": run.period, "issued": run.issued, "failed": run.failed}
        )


async def expire_holds(db: Database) -> None:
    await calls.expire_holds(db)


async def purge_idempotency_keys(db: Database, settings: Settings) -> None:
    purged = await retention.purge_idempotency_keys(
        db,
        retention=timedelta(hours=settings.idempotency_retention_hours),
        lock_timeout=timedelta(seconds=settings.idempotency_lock_seconds),
    )
    log.info("idempotency keys purged", extra={"purged": purged})


async def reconcile_pending(
    db: Database, gateways: Gateways, settings: Settings, policy: AutoTopupPolicy
) -> None:
    report = await reconcile(
        db,
        gateways,
        older_than=timedelta(seconds=settings.reconcile_after_seconds),
        policy=policy,
        settings=settings,
    )
    log.info(
        "reconcile",
        extra={
            "checked": report.checked,
            "credited": report.credited,
            "failed": report.failed,
            "errors": len(report.errors),
        },
    )
