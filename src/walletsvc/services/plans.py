"""Plans (admins) and subscriptions (tenants, or admins overriding).

Changing plan keeps the current period and the quota already used in it: the new plan's included
minutes apply for the rest of the period (so switching back and forth never refills the quota), and
its monthly price is charged from the next period on.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.plans import PlanRepository, SubscriptionRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.db.repositories.usage import UsageRepository
from walletsvc.domain.errors import CurrencyMismatch, InvalidRequest
from walletsvc.domain.plans import Plan, Subscription, add_month, current_period
from walletsvc.domain.rating import Rates


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
    return subscription, plan
