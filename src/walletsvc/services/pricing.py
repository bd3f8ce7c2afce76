"""What a tenant pays: its plan's rates and quota, or its currency's defaults; and the minimum balance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.plans import BillingDefaultsRepository, PlanRepository, SubscriptionRepository
from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.plans import Plan, Subscription, current_period
from walletsvc.domain.rating import Rates, UsageKind

_UNIT_KEYS = {
    UsageKind.SMS: "sms_price",
    UsageKind.EMAIL: "email_price",
    UsageKind.FAX: "fax_page_price",
    UsageKind.FILE_TRANSFER: "file_transfer_price",
}


class PricingDefaults(Protocol):
    """What pricing reads from the settings: DEFAULT_RATES and MINIMUM_BALANCES, per currency (Settings
    has both; so may any small value in a test)."""

    @property
    def default_rates(self) -> Mapping[str, Mapping[str, str | int]]: ...

    @property
    def minimum_balances(self) -> Mapping[str, int]: ...


@dataclass(frozen=True, slots=True)
class Pricing:
    rates: Rates
    plan: Plan | None
    subscription: Subscription | None
    minimum_balance: int

    @property
    def quota_remaining_seconds(self) -> int:
        if self.plan is None or self.subscription is None:
            return 0
        return self.subscription.quota_remaining_seconds(self.plan)


def rates_from_settings(currency: str, values: Mapping[str, str | int]) -> Rates:
    try:
        return Rates(
            currency=currency,
            per_minute_rate=Decimal(str(values.get("per_minute_rate", "0"))),
            billing_increment_seconds=int(values.get("billing_increment_seconds", 60)),
            minimum_billable_seconds=int(values.get("minimum_billable_seconds", 0)),
            connection_fee=Decimal(str(values.get("connection_fee", "0"))),
            unit_prices={kind: Decimal(str(values.get(key, "0"))) for kind, key in _UNIT_KEYS.items()},
        )
    except (InvalidOperation, ValueError) as exc:
        raise InvalidRequest(f"DEFAULT_RATES for {currency} are not valid: {exc}") from exc


def configured_rates(defaults: PricingDefaults, currency: str) -> Rates:
    """DEFAULT_RATES for the currency: what a plan-less tenant pays until an admin stores other rates."""
    configured = defaults.default_rates.get(currency)
    if configured is None:
        raise InvalidRequest(
            f"no rates are set for {currency}: give the tenant a plan, or set them with "
            f"PUT /v1/admin/billing-defaults/{currency}"
        )
    return rates_from_settings(currency, configured)


async def default_pricing(
    session: AsyncSession, defaults: PricingDefaults, currency: str
) -> tuple[Rates, int]:
    stored = await BillingDefaultsRepository(session).get(currency)
    if stored is not None:
        return stored
    return configured_rates(defaults, currency), defaults.minimum_balances.get(currency, 0)


async def minimum_balance(session: AsyncSession, defaults: PricingDefaults, currency: str) -> int:
    """The minimum a call needs to start, for a tenant with a plan: it needs no default rates."""
    stored = await BillingDefaultsRepository(session).get(currency)
    return stored[1] if stored is not None else defaults.minimum_balances.get(currency, 0)


async def pricing_for(
    session: AsyncSession, defaults: PricingDefaults, tenant_id: str, currency: str
) -> Pricing:
    """The tenant's prices and quota now. A period that has ended is shown rolled forward with its quota
    back to zero (the charge writer stores the rollover when it next charges)."""
    subscription = await SubscriptionRepository(session).get(tenant_id)
    if subscription is None:
        default_rates, minimum = await default_pricing(session, defaults, currency)
        return Pricing(default_rates, None, None, minimum)
    minimum = await minimum_balance(session, defaults, currency)
    plan = await PlanRepository(session).get(subscription.plan_id)
    start, end, moved = current_period(subscription.period_start, subscription.period_end, datetime.now(UTC))
    if moved:
        # The plan's monthly price for the new period is charged by the period-end job, not here.
        subscription = Subscription(tenant_id, plan.id, start, end, 0)
    return Pricing(plan.rates, plan, subscription, minimum)
