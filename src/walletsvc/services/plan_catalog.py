"""The plan catalogue and the default prices per currency, as admins edit them.

A plan's currency never changes (subscriptions and their charges are in it); the rest may. A change
applies to every subscription of the plan from the next charge on; the monthly price from the next period.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.plans import BillingDefaultsRepository, PlanRepository
from walletsvc.domain.plans import Plan
from walletsvc.domain.rating import Rates, UsageKind

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlanChanges:
    """What a PATCH of a plan changes: None leaves a field as it is."""

    name: str | None = None
    monthly_price: int | None = None
    included_minutes: int | None = None
    features: tuple[str, ...] | None = None
    active: bool | None = None
    per_minute_rate: Decimal | None = None
    connection_fee: Decimal | None = None
    billing_increment_seconds: int | None = None
    minimum_billable_seconds: int | None = None
    unit_prices: dict[UsageKind, Decimal] = field(default_factory=dict)


async def add_plan(session: AsyncSession, plan: Plan) -> Plan:
    return await PlanRepository(session).add(plan)


async def change_plan(session: AsyncSession, plan_id: str, changes: PlanChanges) -> Plan:
    plans = PlanRepository(session)
    plan = await plans.get(plan_id)  # NotFound first
    rates = dataclasses.replace(
        plan.rates,
        per_minute_rate=_given(changes.per_minute_rate, plan.rates.per_minute_rate),
        connection_fee=_given(changes.connection_fee, plan.rates.connection_fee),
        billing_increment_seconds=_given(
            changes.billing_increment_seconds, plan.rates.billing_increment_seconds
        ),
        minimum_billable_seconds=_given(
            changes.minimum_billable_seconds, plan.rates.minimum_billable_seconds
        ),
        unit_prices={**plan.rates.unit_prices, **changes.unit_prices},
    )
    updated = dataclasses.replace(
        plan,
        name=changes.name or plan.name,
        monthly_price=_given(changes.monthly_price, plan.monthly_price),
        included_minutes=_given(changes.included_minutes, plan.included_minutes),
        features=_given(changes.features, plan.features),
        active=_given(changes.active, plan.active),
        rates=rates,
    )
    return await plans.replace(updated)


async def set_billing_defaults(
    session: AsyncSession, rates: Rates, *, minimum_balance: int, updated_by: str
) -> None:
    """The rates and minimum balance of a currency's tenants without a plan."""
    await BillingDefaultsRepository(session).put(
        rates, minimum_balance=minimum_balance, updated_by=updated_by
    )


def _given(value: T | None, current: T) -> T:
    return current if value is None else value
