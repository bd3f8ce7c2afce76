"""Period close: at each subscription's period end, once, the quota resets and the plan fee is charged.

The fee is postpaid: when a period closes, the fee of the plan that period started on is charged from the
wallet as one `plan_fee` ledger row (a plan change takes effect from the next period; see
domain/periods.py). What the wallet cannot pay is owed, exactly as unpaid usage is (services/debts.py):
the tenant is flagged and the next credit pays it first.

Each period is closed in its own transaction, which takes the wallet row's lock first (the order every
wallet writer uses), then the subscription's period cursor. The closed period's row is unique per
(tenant, period start), so a rerun, two workers at once or a worker killed mid-close never charge a period
twice: the loser of a race finds the cursor moved on (or the row there) and skips, and a killed close
rolls back whole and is done again by the next run. A worker down for several periods closes each of them,
oldest first, once.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.faults import database_unavailable
from walletsvc.db.repositories.periods import PeriodRepository
from walletsvc.db.repositories.plans import PlanRepository, SubscriptionRepository
from walletsvc.db.repositories.usage import UsageRepository
from walletsvc.domain.charging import chain_line
from walletsvc.domain.errors import NotFound
from walletsvc.domain.events import EventType, money
from walletsvc.domain.ledger import CounterAccount, EntryType
from walletsvc.domain.low_balance import Cause, CauseType
from walletsvc.domain.periods import ClosedPeriod, next_period
from walletsvc.domain.plans import settle_charge
from walletsvc.services.events import record_event
from walletsvc.services.low_balance import note_locked_wallet
from walletsvc.services.queue import enqueue

log = logging.getLogger("walletsvc.periods")

ACTOR = "system:periods"
WALLET_LOCK_TIMEOUT_MS = 3000
# The worker entrypoint that runs close_due_periods now (the schedule runs it every minute).
CLOSE_PERIODS_JOB = "close_due_periods"


async def request_close(session: AsyncSession) -> int:
    """Ask the workers to close what is due now: one job, any worker picks it; answers its id."""
    return await enqueue(session, CLOSE_PERIODS_JOB, {})


@dataclass(frozen=True, slots=True)
class CloseReport:
    closed: int  # periods closed by this run
    failed: int  # tenants whose close raised (logged; tried again by the next run)
    busy: int  # tenants whose wallet stayed locked too long (tried again by the next run)


async def close_due_periods(
    db: Database, *, now: datetime | None = None, tenants: Collection[str] | None = None
) -> int:
    """Close every subscription period that has ended by `now` (default: the clock), in order, each once;
    answer how many this run closed. `tenants` limits the run to those tenants."""
    return (await close_due_periods_report(db, now=now, tenants=tenants)).closed


async def close_due_periods_report(
    db: Database, *, now: datetime | None = None, tenants: Collection[str] | None = None
) -> CloseReport:
    moment = now or datetime.now(UTC)
    async with unit_of_work(db) as session:
        repo = PeriodRepository(session)
        await repo.adopt_subscriptions()
        due = await repo.due_tenants(moment, tenants=tenants)
    # Each run walks the tenants in its own order, so that workers running at once spread over different
    # wallets instead of queueing behind each other's locks (a tenant's own periods still go in order).
    random.shuffle(due)
    closed = failed = busy = 0
    for tenant_id in due:
        try:
            while True:
                async with unit_of_work(db) as session:
                    period = await close_next_period(session, tenant_id, now=moment)
                if period is None:
                    break
                closed += 1
        except Exception as exc:
            if database_unavailable(exc) is not None:
                raise  # nothing else would close either: the job fails and is run again
            if _lock_timed_out(exc):
                busy += 1
                log.warning(
                    "period close: wallet busy, left for the next run", extra={"tenant_id": tenant_id}
                )
                continue
            # One tenant's failure (its plan or wallet gone) does not hold up the others; the next run
            # tries it again.
            failed += 1
            log.exception("period close failed", extra={"tenant_id": tenant_id})
    return CloseReport(closed=closed, failed=failed, busy=busy)


def _lock_timed_out(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, asyncpg.exceptions.LockNotAvailableError):
            return True
        current = current.__cause__ or getattr(current, "orig", None)
    return False


async def close_next_period(session: AsyncSession, tenant_id: str, *, now: datetime) -> ClosedPeriod | None:
    """Close the tenant's oldest open period if it has ended by `now`; None when there is none to close
    (not ended yet, or closed meanwhile by another worker)."""
    usage = UsageRepository(session)
    # The wallet first: the lock order of every wallet writer. A charge holds it for milliseconds; a
    # wallet held longer (a stuck transaction) is left for the next run rather than stalling this one.
    await session.execute(text(f"SET LOCAL lock_timeout = '{WALLET_LOCK_TIMEOUT_MS}ms'"))
    wallet = await usage.lock_wallet(tenant_id)
    await session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
    periods = PeriodRepository(session)
    cursor = await periods.cursor(tenant_id, for_update=True)
    if cursor is None or cursor[1] > now:
        return None
    start, end = cursor
    following = next_period(start, end)
    subscriptions = SubscriptionRepository(session)
    subscription = await subscriptions.get(tenant_id, for_update=True)
    plan_id = await periods.plan_for(tenant_id, start) or (subscription.plan_id if subscription else None)
    if plan_id is None:
        raise NotFound("subscription", tenant_id)
    plan = await PlanRepository(session).get(plan_id)

    if subscription is not None and subscription.period_start == start:
        # The charge writer has not rolled this period over yet: its quota figure is the period's, and
        # the quota starts again at zero for the next period.
        quota_used = subscription.quota_used_seconds
        await periods.roll_subscription(tenant_id, from_start=start, start=following[0], end=following[1])
    else:
        # Rolled over already by a charge after the period ended: count the period's charges instead.
        quota_used = await periods.quota_used_between(tenant_id, start, end)

    fee = plan.monthly_price
    settlement = settle_charge(fee, available_after_release=wallet.available)
    closed = await periods.insert_closed(
        {
            "tenant_id": tenant_id,
            "id": f"pp_{secrets.token_hex(8)}",
            "period_start": start,
            "period_end": end,
            "plan_id": plan.id,
            "currency": wallet.currency,
            "fee": fee,
            "charged": settlement.charged,
            "owed": settlement.owed,
            "quota_used_seconds": quota_used,
            "included_minutes": plan.included_minutes,
            "closed_by": ACTOR,
        }
    )
    await periods.advance_cursor(tenant_id, start=following[0], end=following[1])
    if closed is None:
        # Closed before, yet the cursor still showed it (never by this service, which moves both in one
        # transaction): move the cursor on and charge nothing.
        log.warning(
            "period already closed", extra={"tenant_id": tenant_id, "period_start": start.isoformat()}
        )
        return None

    entries = []
    if settlement.charged:
        line = chain_line(
            wallet,
            -settlement.charged,
            entry_type=EntryType.PLAN_FEE,
            reference_type="plan_period",
            reference_id=closed.id,
            description=f"Plan {plan.name}: {start:%Y-%m-%d} to {end:%Y-%m-%d}",
            actor=ACTOR,
            counter_account=CounterAccount.REVENUE_PLANS,
        )
        entries = await usage.append_ledger(wallet, [line])
    newly_flagged = False
    if settlement.owed:
        wallet.owed += settlement.owed
        newly_flagged = not wallet.flagged
        wallet.flagged = True
    if entries or settlement.owed:
        await usage.save_wallet(wallet)

    await record_event(
        session,
        EventType.PERIOD_CLOSED,
        tenant_id,
        {
            "period_id": closed.id,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "plan_id": plan.id,
            "quota_used_seconds": quota_used,
            "included_minutes": plan.included_minutes,
            "next_period_start": following[0].isoformat(),
            "next_period_end": following[1].isoformat(),
        },
    )
    if fee:
        await record_event(
            session,
            EventType.PLAN_FEE_CHARGED,
            tenant_id,
            {
                "period_id": closed.id,
                "plan_id": plan.id,
                "period_start": start.isoformat(),
                "period_end": end.isoformat(),
                "fee": money(fee, wallet.currency),
                "charged": money(settlement.charged, wallet.currency),
                "owed": money(settlement.owed, wallet.currency),
                "transaction_id": str(entries[0].id) if entries else None,
                "balance_after": money(wallet.balance, wallet.currency),
            },
        )
    if settlement.owed:
        await record_event(
            session,
            EventType.PLAN_FEE_OWED,
            tenant_id,
            {
                "period_id": closed.id,
                "plan_id": plan.id,
                "owed": money(settlement.owed, wallet.currency),
                "total_owed": money(wallet.owed, wallet.currency),
            },
        )
    if newly_flagged:
        await record_event(
            session,
            EventType.WALLET_FLAGGED,
            tenant_id,
            {"reason": "plan_fee_owed", "owed": money(wallet.owed, wallet.currency)},
        )
    if entries:
        # The fee lowered the available balance: a crossing of the threshold is announced here, in this
        # transaction (the wallet row is still ours).
        await note_locked_wallet(session, wallet, Cause(CauseType.PLAN_FEE, closed.id))
    return closed
