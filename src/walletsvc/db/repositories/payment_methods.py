"""Saved payment methods (brand, last 4, expiry only) and which one is the tenant's default."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.auto_topup import SavedPaymentMethod

p = t.payment_methods.c
s = t.stripe_customers.c


def method_from_mapping(m: Any) -> SavedPaymentMethod:
    return SavedPaymentMethod(
        tenant_id=m["tenant_id"],
        id=m["id"],
        provider=m["provider"],
        kind=m["kind"],
        brand=m["brand"],
        last4=m["last4"],
        exp_month=m["exp_month"],
        exp_year=m["exp_year"],
        max_amount=m["max_amount"],
        status=m["status"],
        created_at=m["created_at"],
        customer_id=m["customer_id"],
        token_id=m["token_id"],
        vpa=m["vpa"],
        expires_at=m["expires_at"],
        status_reason=m["status_reason"],
    )


class PaymentMethodRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def remember(
        self,
        tenant_id: str,
        method_id: str,
        *,
        provider: str,
        source: str,
        kind: str = "card",
        customer_id: str | None = None,
        brand: str | None = None,
        last4: str | None = None,
        exp_month: int | None = None,
        exp_year: int | None = None,
        max_amount: int | None = None,
    ) -> tuple[SavedPaymentMethod, bool]:
        """Insert or complete a method (details a later event carries fill what is unknown, a re-attached
        one is active again). Answers it and whether it is new or was detached before."""
        before = await self.get(tenant_id, method_id)
        statement = pg_insert(t.payment_methods).values(
            tenant_id=tenant_id,
            id=method_id,
            provider=provider,
            kind=kind,
            customer_id=customer_id,
            brand=brand,
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
            max_amount=max_amount,
            source=source,
        )
        excluded = statement.excluded
        row = (
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "id"],
                    set_={
                        "customer_id": func.coalesce(excluded.customer_id, p.customer_id),
                        "brand": func.coalesce(excluded.brand, p.brand),
                        "last4": func.coalesce(excluded.last4, p.last4),
                        "exp_month": func.coalesce(excluded.exp_month, p.exp_month),
                        "exp_year": func.coalesce(excluded.exp_year, p.exp_year),
                        "max_amount": func.coalesce(excluded.max_amount, p.max_amount),
                        "status": "active",
                        "detached_at": None,
                        "updated_at": func.now(),
                    },
                ).returning(*t.payment_methods.c)
            )
        ).one()
        return method_from_mapping(row._mapping), before is None or not before.active

    async def get(self, tenant_id: str, method_id: str) -> SavedPaymentMethod | None:
        row = (
            await self.session.execute(
                select(t.payment_methods).where(p.tenant_id == tenant_id, p.id == method_id)
            )
        ).one_or_none()
        return None if row is None else method_from_mapping(row._mapping)

    async def listed(self, tenant_id: str) -> list[SavedPaymentMethod]:
        """Every method not deleted by the owner: active ones, and mandates pending, paused or refused
        (so the owner sees why auto top-up sends a payment link instead)."""
        rows = (
            await self.session.execute(
                select(t.payment_methods)
                .where(p.tenant_id == tenant_id, p.status != "detached")
                .order_by(p.created_at, p.id)
            )
        ).all()
        return [method_from_mapping(r._mapping) for r in rows]

    async def active(self, tenant_id: str) -> list[SavedPaymentMethod]:
        rows = (
            await self.session.execute(
                select(t.payment_methods)
                .where(p.tenant_id == tenant_id, p.status == "active")
                .order_by(p.created_at, p.id)
            )
        ).all()
        return [method_from_mapping(r._mapping) for r in rows]

    async def mark_detached(self, tenant_id: str, method_id: str) -> bool:
        result = await self.session.execute(
            update(t.payment_methods)
            .where(p.tenant_id == tenant_id, p.id == method_id, p.status != "detached")
            .values(status="detached", detached_at=func.now(), updated_at=func.now())
            .returning(p.id)
        )
        return result.first() is not None

    async def default_id(self, tenant_id: str) -> str | None:
        return (
            await self.session.execute(select(s.default_payment_method).where(s.tenant_id == tenant_id))
        ).scalar_one_or_none()

    async def set_default(self, tenant_id: str, method_id: str | None) -> None:
        await self.session.execute(
            update(t.stripe_customers)
            .where(s.tenant_id == tenant_id)
            .values(default_payment_method=method_id)
        )

    async def tenant_of_customer(self, customer_id: str) -> str | None:
        return (
            await self.session.execute(select(s.tenant_id).where(s.customer_id == customer_id).limit(1))
        ).scalar_one_or_none()

    async def tenant_of_method(self, provider: str, method_id: str) -> str | None:
        return (
            await self.session.execute(
                select(p.tenant_id).where(p.provider == provider, p.id == method_id).limit(1)
            )
        ).scalar_one_or_none()
