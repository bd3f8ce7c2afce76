"""Plans, subscriptions and the default rates per currency."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.errors import AlreadyExists, NotFound
from walletsvc.domain.plans import Plan, Subscription
from walletsvc.domain.rating import Rates, UsageKind

_PRICE_COLUMNS = {
    UsageKind.SMS: "sms_price",
    UsageKind.EMAIL: "email_price",
    UsageKind.FAX: "fax_page_price",
    UsageKind.FILE_TRANSFER: "file_transfer_price",
}


def rates_from_mapping(m: Any, currency: str) -> Rates:
    return Rates(
        currency=currency,
        per_minute_rate=Decimal(m["per_minute_rate"]),
        billing_increment_seconds=m["billing_increment_seconds"],
        minimum_billable_seconds=m["minimum_billable_seconds"],
        connection_fee=Decimal(m["connection_fee"]),
        unit_prices={kind: Decimal(m[column]) for kind, column in _PRICE_COLUMNS.items()},
    )


def rate_values(rates: Rates) -> dict[str, Any]:
    return {
        "per_minute_rate": rates.per_minute_rate,
        "billing_increment_seconds": rates.billing_increment_seconds,
        "minimum_billable_seconds": rates.minimum_billable_seconds,
        "connection_fee": rates.connection_fee,
        **{column: rates.unit_prices.get(kind, Decimal(0)) for kind, column in _PRICE_COLUMNS.items()},
    }


def plan_from_mapping(m: Any) -> Plan:
    return Plan(
        id=m["id"],
        name=m["name"],
        currency=m["currency"],
        monthly_price=m["monthly_price"],
        included_minutes=m["included_minutes"],
        rates=rates_from_mapping(m, m["currency"]),
        features=tuple(m["features"]),
        active=m["active"],
    )


def subscription_from_mapping(m: Any) -> Subscription:
    return Subscription(
        tenant_id=m["tenant_id"],
        plan_id=m["plan_id"],
        period_start=m["period_start"],
        period_end=m["period_end"],
        quota_used_seconds=m["quota_used_seconds"],
    )


class PlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, plan: Plan) -> Plan:
        try:
            async with self.session.begin_nested():
                row = (
                    await self.session.execute(
                        insert(t.plans)
                        .values(
                            id=plan.id,
                            name=plan.name,
                            currency=plan.currency,
                            monthly_price=plan.monthly_price,
                            included_minutes=plan.included_minutes,
                            features=list(plan.features),
                            active=plan.active,
                            **rate_values(plan.rates),
                        )
                        .returning(*t.plans.c)
                    )
                ).one()
        except IntegrityError as exc:
            raise AlreadyExists(f"plan {plan.id!r} already exists") from exc
        return plan_from_mapping(row._mapping)

    async def replace(self, plan: Plan) -> Plan:
        row = (
            await self.session.execute(
                update(t.plans)
                .where(t.plans.c.id == plan.id)
                .values(
                    name=plan.name,
                    monthly_price=plan.monthly_price,
                    included_minutes=plan.included_minutes,
                    features=list(plan.features),
                    active=plan.active,
                    updated_at=func.now(),
                    **rate_values(plan.rates),
                )
                .returning(*t.plans.c)
            )
        ).one()
        return plan_from_mapping(row._mapping)

    async def get(self, plan_id: str) -> Plan:
        row = (await self.session.execute(select(t.plans).where(t.plans.c.id == plan_id))).one_or_none()
        if row is None:
            raise NotFound("plan", plan_id)
        return plan_from_mapping(row._mapping)

    async def list_plans(self, *, active_only: bool, currency: str | None = None) -> list[Plan]:
        query = select(t.plans).order_by(t.plans.c.currency, t.plans.c.monthly_price, t.plans.c.id)
        if active_only:
            query = query.where(t.plans.c.active)
        if currency is not None:
            query = query.where(t.plans.c.currency == currency)
        return [plan_from_mapping(r._mapping) for r in (await self.session.execute(query)).all()]


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, *, for_update: bool = False) -> Subscription | None:
        query = select(t.subscriptions).where(t.subscriptions.c.tenant_id == tenant_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else subscription_from_mapping(row._mapping)

    async def put(
        self,
        tenant_id: str,
        *,
        plan_id: str,
        period_start: datetime,
        period_end: datetime,
        quota_used_seconds: int,
        changed_by: str,
    ) -> Subscription:
        values = {
            "plan_id": plan_id,
            "period_start": period_start,
            "period_end": period_end,
            "quota_used_seconds": quota_used_seconds,
            "changed_by": changed_by,
        }
        row = (
            await self.session.execute(
                pg_insert(t.subscriptions)
                .values(tenant_id=tenant_id, **values)
                .on_conflict_do_update(
                    index_elements=["tenant_id"], set_={**values, "updated_at": func.now()}
                )
                .returning(*t.subscriptions.c)
            )
        ).one()
        return subscription_from_mapping(row._mapping)

    async def set_quota_used(self, tenant_id: str, quota_used_seconds: int) -> None:
        await self.session.execute(
            update(t.subscriptions)
            .where(t.subscriptions.c.tenant_id == tenant_id)
            .values(quota_used_seconds=quota_used_seconds, updated_at=func.now())
        )


class BillingDefaultsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, currency: str) -> tuple[Rates, int] | None:
        row = (
            await self.session.execute(
                select(t.billing_defaults).where(t.billing_defaults.c.currency == currency)
            )
        ).one_or_none()
        if row is None:
            return None
        return rates_from_mapping(row._mapping, currency), row._mapping["minimum_balance"]

    async def put(self, rates: Rates, *, minimum_balance: int, updated_by: str) -> None:
        values = {**rate_values(rates), "minimum_balance": minimum_balance, "updated_by": updated_by}
        await self.session.execute(
            pg_insert(t.billing_defaults)
            .values(currency=rates.currency, **values)
            .on_conflict_do_update(index_elements=["currency"], set_={**values, "updated_at": func.now()})
        )
