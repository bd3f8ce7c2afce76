"""Top-ups, their history, and the Stripe customer of each tenant."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.errors import NotFound
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind, Topup, TopupEvent, TopupStatus

c = t.topups.c


def topup_from_mapping(m: Any) -> Topup:
    currency = m["currency"]

    def money(value: int | None) -> Money | None:
        return None if value is None else Money(value, currency)

    return Topup(
        id=m["id"],
        tenant_id=m["tenant_id"],
        provider=ProviderName(m["provider"]),
        status=TopupStatus(m["status"]),
        amount=Money(m["amount"], currency),
        checkout_kind=CheckoutKind(m["checkout_kind"]),
        save_payment_method=m["save_payment_method"],
        provider_checkout_id=m["provider_checkout_id"],
        provider_payment_id=m["provider_payment_id"],
        credited=money(m["credited_amount"]),
        bonus=money(m["bonus_amount"]),
        refunded=Money(m["refunded_amount"], currency),
        status_reason=m["status_reason"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        succeeded_at=m["succeeded_at"],
    )


class TopupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        topup_id: str,
        tenant_id: str,
        provider: ProviderName,
        amount: Money,
        checkout_kind: CheckoutKind,
        save_payment_method: bool,
        created_by: str,
    ) -> Topup:
        row = (
            await self.session.execute(
                insert(t.topups)
                .values(
                    id=topup_id,
                    tenant_id=tenant_id,
                    provider=provider.value,
                    status=TopupStatus.PENDING.value,
                    amount=amount.amount,
                    currency=amount.currency,
                    checkout_kind=checkout_kind.value,
                    save_payment_method=save_payment_method,
                    created_by=created_by,
                )
                .returning(*t.topups.c)
            )
        ).one()
        return topup_from_mapping(row._mapping)

    async def get(self, tenant_id: str, topup_id: str, *, for_update: bool = False) -> Topup:
        query = select(t.topups).where(c.tenant_id == tenant_id, c.id == topup_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            raise NotFound("top-up", topup_id)
        return topup_from_mapping(row._mapping)

    async def find(self, tenant_id: str, topup_id: str) -> Topup | None:
        row = (
            await self.session.execute(select(t.topups).where(c.tenant_id == tenant_id, c.id == topup_id))
        ).one_or_none()
        return None if row is None else topup_from_mapping(row._mapping)

    async def locate(
        self,
        provider: ProviderName,
        *,
        topup_id: str | None = None,
        checkout_id: str | None = None,
        payment_id: str | None = None,
    ) -> tuple[str, str] | None:
        """(tenant_id, topup_id) of the top-up a provider callback speaks of, by whichever reference it
        carries: our id from its metadata first, then its own order/session or payment id."""
        conditions = []
        if topup_id:
            conditions.append(c.id == topup_id)
        if checkout_id:
            conditions.append(c.provider_checkout_id == checkout_id)
        if payment_id:
            conditions.append(c.provider_payment_id == payment_id)
        for condition in conditions:
            row = (
                await self.session.execute(
                    select(c.tenant_id, c.id).where(c.provider == provider.value, condition).limit(1)
                )
            ).one_or_none()
            if row is not None:
                return row[0], row[1]
        return None

    async def locate_any(self, topup_id: str) -> str | None:
        """The tenant of a top-up named by its id alone (admin routes)."""
        return (await self.session.execute(select(c.tenant_id).where(c.id == topup_id))).scalar_one_or_none()

    async def set_checkout(
        self, tenant_id: str, topup_id: str, *, checkout_id: str, payment_id: str | None
    ) -> None:
        await self.session.execute(
            update(t.topups)
            .where(c.tenant_id == tenant_id, c.id == topup_id)
            .values(
                provider_checkout_id=checkout_id,
                provider_payment_id=func.coalesce(payment_id, c.provider_payment_id),
                updated_at=func.now(),
            )
        )

    async def mark_succeeded(
        self,
        tenant_id: str,
        topup_id: str,
        *,
        credited: Money,
        bonus: Money | None,
        bonus_rule_id: str | None,
        payment_id: str | None,
    ) -> Topup:
        row = (
            await self.session.execute(
                update(t.topups)
                .where(c.tenant_id == tenant_id, c.id == topup_id)
                .values(
                    status=TopupStatus.SUCCEEDED.value,
                    credited_amount=credited.amount,
                    bonus_amount=bonus.amount if bonus else None,
                    bonus_rule_id=bonus_rule_id,
                    provider_payment_id=func.coalesce(payment_id, c.provider_payment_id),
                    status_reason=None,
                    succeeded_at=func.now(),
                    updated_at=func.now(),
                )
                .returning(*t.topups.c)
            )
        ).one()
        return topup_from_mapping(row._mapping)

    async def mark(
        self,
        tenant_id: str,
        topup_id: str,
        status: TopupStatus,
        *,
        reason: str | None,
        payment_id: str | None = None,
    ) -> Topup:
        row = (
            await self.session.execute(
                update(t.topups)
                .where(c.tenant_id == tenant_id, c.id == topup_id)
                .values(
                    status=status.value,
                    status_reason=reason,
                    provider_payment_id=func.coalesce(payment_id, c.provider_payment_id),
                    updated_at=func.now(),
                )
                .returning(*t.topups.c)
            )
        ).one()
        return topup_from_mapping(row._mapping)

    async def add_refunded(self, tenant_id: str, topup_id: str, amount: int) -> None:
        await self.session.execute(
            update(t.topups)
            .where(c.tenant_id == tenant_id, c.id == topup_id)
            .values(refunded_amount=c.refunded_amount + amount, updated_at=func.now())
        )

    async def page(
        self, tenant_id: str, *, status: TopupStatus | None, before: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[Topup], tuple[datetime, str] | None]:
        query = select(t.topups).where(c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(c.status == status.value)
        if before is not None:
            query = query.where((c.created_at, c.id) < before)  # type: ignore[operator]
        rows = (
            await self.session.execute(query.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1))
        ).all()
        items = [topup_from_mapping(r._mapping) for r in rows[:limit]]
        last = (items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return items, last

    async def pending_older_than(self, age: timedelta, *, limit: int = 500) -> list[Topup]:
        rows = (
            await self.session.execute(
                select(t.topups)
                .where(c.status == TopupStatus.PENDING.value, c.created_at < func.now() - age)
                .order_by(c.created_at)
                .limit(limit)
            )
        ).all()
        return [topup_from_mapping(r._mapping) for r in rows]

    async def recently_failed(
        self, provider: ProviderName, within: timedelta, *, limit: int = 500
    ) -> list[Topup]:
        """Failed top-ups of the last `within`: a Razorpay order stays payable after a failed attempt."""
        rows = (
            await self.session.execute(
                select(t.topups)
                .where(
                    c.provider == provider.value,
                    c.status == TopupStatus.FAILED.value,
                    c.created_at > func.now() - within,
                    c.provider_checkout_id.is_not(None),
                )
                .order_by(c.created_at)
                .limit(limit)
            )
        ).all()
        return [topup_from_mapping(r._mapping) for r in rows]

    async def add_event(
        self, tenant_id: str, topup_id: str, kind: str, *, source: str, detail: str = ""
    ) -> None:
        await self.session.execute(
            insert(t.topup_events).values(
                tenant_id=tenant_id, topup_id=topup_id, kind=kind, source=source, detail=detail
            )
        )

    async def events(self, tenant_id: str, topup_id: str) -> list[TopupEvent]:
        e = t.topup_events.c
        rows = (
            await self.session.execute(
                select(e.kind, e.source, e.detail, e.created_at)
                .where(e.tenant_id == tenant_id, e.topup_id == topup_id)
                .order_by(e.id)
            )
        ).all()
        return [TopupEvent(kind=r[0], source=r[1], detail=r[2], created_at=r[3]) for r in rows]


class StripeCustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str) -> str | None:
        s = t.stripe_customers.c
        return (
            await self.session.execute(select(s.customer_id).where(s.tenant_id == tenant_id))
        ).scalar_one_or_none()

    async def remember(self, tenant_id: str, customer_id: str) -> str:
        """Keep the first customer stored for the tenant (a concurrent first top-up may race us)."""
        await self.session.execute(
            pg_insert(t.stripe_customers)
            .values(tenant_id=tenant_id, customer_id=customer_id)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        stored = await self.get(tenant_id)
        return stored or customer_id
