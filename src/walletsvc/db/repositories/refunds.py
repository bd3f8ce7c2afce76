"""Refunds of top-ups to the card or account they came from."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.errors import NotFound
from walletsvc.domain.money import Money
from walletsvc.domain.topups import TopupRefund

r = t.topup_refunds.c


def refund_from_mapping(m: Any) -> TopupRefund:
    return TopupRefund(
        id=m["id"],
        tenant_id=m["tenant_id"],
        topup_id=m["topup_id"],
        amount=Money(m["amount"], m["currency"]),
        status=m["status"],
        provider_refund_id=m["provider_refund_id"],
        reason=m["reason"],
        forced=m["forced"],
        debited=m["debited"],
        held=m["held"],
        failure_reason=m["failure_reason"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class RefundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        refund_id: str,
        tenant_id: str,
        topup_id: str,
        amount: Money,
        reason: str,
        forced: bool,
        created_by: str,
        provider_refund_id: str | None = None,
        held: int = 0,
        status: str = "pending",
    ) -> TopupRefund:
        row = (
            await self.session.execute(
                insert(t.topup_refunds)
                .values(
                    id=refund_id,
                    tenant_id=tenant_id,
                    topup_id=topup_id,
                    amount=amount.amount,
                    currency=amount.currency,
                    status=status,
                    reason=reason,
                    held=held,
                    forced=forced,
                    created_by=created_by,
                    provider_refund_id=provider_refund_id,
                )
                .returning(*t.topup_refunds.c)
            )
        ).one()
        return refund_from_mapping(row._mapping)

    async def get(self, tenant_id: str, refund_id: str) -> TopupRefund:
        row = (
            await self.session.execute(
                select(t.topup_refunds).where(r.tenant_id == tenant_id, r.id == refund_id)
            )
        ).one_or_none()
        if row is None:
            raise NotFound("refund", refund_id)
        return refund_from_mapping(row._mapping)

    async def find(
        self, tenant_id: str, *, refund_id: str | None, provider_refund_id: str | None
    ) -> TopupRefund | None:
        for condition in (
            r.id == refund_id if refund_id else None,
            r.provider_refund_id == provider_refund_id if provider_refund_id else None,
        ):
            if condition is None:
                continue
            row = (
                await self.session.execute(select(t.topup_refunds).where(r.tenant_id == tenant_id, condition))
            ).one_or_none()
            if row is not None:
                return refund_from_mapping(row._mapping)
        return None

    async def for_topup(self, tenant_id: str, topup_id: str) -> list[TopupRefund]:
        rows = (
            await self.session.execute(
                select(t.topup_refunds)
                .where(r.tenant_id == tenant_id, r.topup_id == topup_id)
                .order_by(r.created_at, r.id)
            )
        ).all()
        return [refund_from_mapping(row._mapping) for row in rows]

    async def update(self, tenant_id: str, refund_id: str, **values: Any) -> TopupRefund:
        row = (
            await self.session.execute(
                update(t.topup_refunds)
                .where(r.tenant_id == tenant_id, r.id == refund_id)
                .values(**values, updated_at=func.now())
                .returning(*t.topup_refunds.c)
            )
        ).one()
        return refund_from_mapping(row._mapping)

    async def pending_older_than(self, age: timedelta, *, limit: int = 500) -> list[TopupRefund]:
        rows = (
            await self.session.execute(
                select(t.topup_refunds)
                .where(r.status == "pending", r.created_at < func.now() - age)
                .order_by(r.created_at)
                .limit(limit)
            )
        ).all()
        return [refund_from_mapping(row._mapping) for row in rows]
