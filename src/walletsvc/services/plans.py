"""Plans (admins) and subscriptions (tenants, or admins overriding).

Changing plan keeps the current period and the quota already used in it: the new plan's included
minutes and rates apply for the rest of the period (so switching back and forth never refills the quota),
and its monthly price is charged from the next period on.

Plan fees are postpaid (services/periods.py): nothing is charged when a tenant subscribes; each period's
fee is charged when that period closes, at the fee of the plan the period started on. So a tenant whose
plan changed mid-period pays the old plan's fee for that period and the new plan's from the next one (the
last change within a period wins). Every change records `subscription.changed`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.periods import PeriodRepository
from walletsvc.db.repositories.plans import PlanRepository, SubscriptionRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.db.repositories.usage import UsageRepository
from walletsvc.domain.errors import CurrencyMismatch, InvalidRequest
from walletsvc.domain.events import EventType
from walletsvc.domain.plans import Plan, Subscription, add_month, current_period
from walletsvc.domain.rating import Rates
from walletsvc.services.events import record_event


def new_plan(
    *,
    name: str,
    currency: str,
    monthly_price: int,
    included_minutes: int,
    rates: Rates,
    features: tuple[str, ...],
    active: bool,
    plan_id: str | None = None,
) -> Plan:
    if rates.currency != currency:
        raise InvalidRequest("a plan's rates are in the plan's currency")
    return Plan(
        id=plan_id or f"plan_{secrets.token_hex(6)}",
        name=name,
        currency=currency,
        monthly_price=monthly_price,
        included_minutes=included_minutes,
        rates=rates,
        features=features,
        active=active,
    )


async def subscribe(
    session: AsyncSession, tenant_id: str, plan_id: str, *, actor: str, allow_inactive: bool = False
) -> tuple[Subscription, Plan]:
    tenant = await TenantRepository(session).get(tenant_id)
    plan = await PlanRepository(session).get(plan_id)
    if plan.currency != tenant.currency:
        raise CurrencyMismatch(expected=tenant.currency, got=plan.currency)
    if not plan.active and not allow_inactive:
        raise InvalidRequest("this plan is no longer offered")
    # The charge writer changes the quota while it holds the wallet row: take that lock first, so a
    # plan change and a charge never write the quota from two different reads.
    await UsageRepository(session).lock_wallet(tenant_id)
    subscriptions = SubscriptionRepository(session)
    current = await subscriptions.get(tenant_id, for_update=True)
    now = datetime.now(UTC)
    if current is None:
        start, end, used = now, add_month(now), 0
    else:
        start, end, moved = current_period(current.period_start, current.period_end, now)
        used = 0 if moved else current.quota_used_seconds
    subscription = await subscriptions.put(
        tenant_id,
        plan_id=plan.id,
        period_start=start,
        period_end=end,
        quota_used_seconds=used,
        changed_by=actor,
    )
    periods = PeriodRepository(session)
    if current is None:
        # The first period's fee is this plan's, charged when the period closes.
        await periods.open_subscription(tenant_id, start=start, end=end, plan_id=plan.id, changed_by=actor)
        fee_from = start
    elif current.plan_id != plan.id:
        # The period under way keeps the fee of the plan it started on: the new fee from the next one.
        await periods.schedule_plan(tenant_id, effective_from=end, plan_id=plan.id, changed_by=actor)
        fee_from = end
    else:
        return subscription, plan  # the same plan again: nothing changed
    await record_event(
        session,
        EventType.SUBSCRIPTION_CHANGED,
        tenant_id,
        {
            "from_plan_id": current.plan_id if current is not None else None,
            "to_plan_id": plan.id,
            "changed_by": actor,
            "effective_at": now.isoformat(),  # the new rates and included minutes apply from now
            "fee_effective_from": fee_from.isoformat(),  # the first period that pays the new plan's fee
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
        },
    )
    return subscription, plan
