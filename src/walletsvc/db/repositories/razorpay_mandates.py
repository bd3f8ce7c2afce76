"""Razorpay recurring mandates: rows of `payment_methods` with provider `razorpay`, and the tenant's
Razorpay customer they belong to."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.db.repositories.payment_methods import method_from_mapping
from walletsvc.domain.auto_topup import SavedPaymentMethod
from walletsvc.domain.mandates import MandateStatus
from walletsvc.domain.tenants import ProviderName

p = t.payment_methods.c
rc = t.razorpay_customers.c
RAZORPAY = ProviderName.RAZORPAY.value


class RazorpayMandateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- the customer ------------------------------------------------------------------------------

    async def customer(self, tenant_id: str) -> str | None:
        return (
            await self.session.execute(select(rc.customer_id).where(rc.tenant_id == tenant_id))
        ).scalar_one_or_none()

    async def remember_customer(self, tenant_id: str, customer_id: str) -> str:
        statement = pg_insert(t.razorpay_customers).values(tenant_id=tenant_id, customer_id=customer_id)
        await self.session.execute(statement.on_conflict_do_nothing(index_elements=["tenant_id"]))
        return await self.customer(tenant_id) or customer_id

    async def default_id(self, tenant_id: str) -> str | None:
        """The mandate the owner chose as the default (`PUT /v1/payment-methods/{id}/default`), if any."""
        return (
            await self.session.execute(select(rc.default_payment_method).where(rc.tenant_id == tenant_id))
        ).scalar_one_or_none()

    async def set_default(self, tenant_id: str, mandate_id: str | None) -> None:
        await self.session.execute(
            update(t.razorpay_customers)
            .where(rc.tenant_id == tenant_id)
            .values(default_payment_method=mandate_id)
        )

    async def clear_default(self, tenant_id: str, mandate_id: str) -> None:
        """A deleted mandate is no default: auto top-up goes back to the newest active one."""
        await self.session.execute(
            update(t.razorpay_customers)
            .where(rc.tenant_id == tenant_id, rc.default_payment_method == mandate_id)
            .values(default_payment_method=None)
        )

    # --- mandates ----------------------------------------------------------------------------------

    async def add_pending(
        self,
        tenant_id: str,
        mandate_id: str,
        *,
        kind: str,
        max_amount: int,
        expires_at: datetime,
        auth_topup_id: str,
        source: str,
    ) -> SavedPaymentMethod:
        """The registration's intent (a retry of the same request finds it again)."""
        statement = pg_insert(t.payment_methods).values(
            tenant_id=tenant_id,
            id=mandate_id,
            provider=RAZORPAY,
            kind=kind,
            max_amount=max_amount,
            expires_at=expires_at,
            auth_topup_id=auth_topup_id,
            status=MandateStatus.PENDING.value,
            source=source,
        )
        await self.session.execute(statement.on_conflict_do_nothing(index_elements=["tenant_id", "id"]))
        found = await self.get(tenant_id, mandate_id)
        assert found is not None
        return found

    async def get(
        self, tenant_id: str, mandate_id: str, *, for_update: bool = False
    ) -> SavedPaymentMethod | None:
        query = select(t.payment_methods).where(
            p.tenant_id == tenant_id, p.id == mandate_id, p.provider == RAZORPAY
        )
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else method_from_mapping(row._mapping)

    async def auth_order_of(self, tenant_id: str, mandate_id: str) -> str | None:
        """The Razorpay order of the mandate's authorization payment (None until it is made)."""
        return await self._column_of(tenant_id, mandate_id, p.auth_order_id)

    async def auth_topup_of(self, tenant_id: str, mandate_id: str) -> str | None:
        """The top-up that carries the mandate's authorization payment."""
        return await self._column_of(tenant_id, mandate_id, p.auth_topup_id)

    async def _column_of(self, tenant_id: str, mandate_id: str, column: Any) -> str | None:
        found: str | None = (
            await self.session.execute(select(column).where(p.tenant_id == tenant_id, p.id == mandate_id))
        ).scalar_one_or_none()
        return found

    async def locate(
        self, *, token_id: str | None = None, auth_order_id: str | None = None
    ) -> SavedPaymentMethod | None:
        """The mandate a Razorpay event speaks of, by its token or its authorization order (any tenant)."""
        conditions = []
        if token_id is not None:
            conditions.append(p.token_id == token_id)
        if auth_order_id is not None:
            conditions.append(p.auth_order_id == auth_order_id)
        for condition in conditions:
            row = (
                await self.session.execute(
                    select(t.payment_methods)
                    .where(p.provider == RAZORPAY, condition)
                    .limit(1)
                    .with_for_update()
                )
            ).one_or_none()
            if row is not None:
                return method_from_mapping(row._mapping)
        return None

    async def usable(self, tenant_id: str) -> list[SavedPaymentMethod]:
        """Active mandates with a token, newest first."""
        rows = (
            await self.session.execute(
                select(t.payment_methods)
                .where(
                    p.tenant_id == tenant_id,
                    p.provider == RAZORPAY,
                    p.status == MandateStatus.ACTIVE.value,
                    p.token_id.is_not(None),
                )
                .order_by(p.created_at.desc(), p.id.desc())
            )
        ).all()
        return [method_from_mapping(r._mapping) for r in rows]

    async def pending_older_than(self, age: timedelta, *, limit: int = 200) -> list[SavedPaymentMethod]:
        """Registrations still pending after `age` (any tenant): reconcile asks Razorpay how they ended,
        in case the authorization payment's webhook and `token.confirmed` were both lost."""
        rows = (
            await self.session.execute(
                select(t.payment_methods)
                .where(
                    p.provider == RAZORPAY,
                    p.status == MandateStatus.PENDING.value,
                    p.updated_at < func.now() - age,
                )
                .order_by(p.created_at)
                .limit(limit)
            )
        ).all()
        return [method_from_mapping(r._mapping) for r in rows]

    async def update(self, tenant_id: str, mandate_id: str, **values: Any) -> SavedPaymentMethod:
        if isinstance(values.get("status"), MandateStatus):
            values["status"] = values["status"].value
        row = (
            await self.session.execute(
                update(t.payment_methods)
                .where(p.tenant_id == tenant_id, p.id == mandate_id, p.provider == RAZORPAY)
                .values(**values, updated_at=func.now())
                .returning(*t.payment_methods.c)
            )
        ).one()
        return method_from_mapping(row._mapping)
