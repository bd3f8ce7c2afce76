"""Tenants and their wallets, opened together."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.errors import AlreadyExists, NotFound
from walletsvc.domain.ledger import Wallet
from walletsvc.domain.tenants import ProviderName, Tenant


def tenant_from_row(row: object) -> Tenant:
    m = row._mapping  # type: ignore[attr-defined]
    return Tenant(
        id=m["id"],
        name=m["name"],
        country=m["country"],
        currency=m["currency"],
        data_residency_region=m["data_residency_region"],
        payments_provider=ProviderName(m["payments_provider"]) if m["payments_provider"] else None,
        created_at=m["created_at"],
    )


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        tenant_id: str,
        name: str,
        country: str,
        currency: str,
        data_residency_region: str | None,
        payments_provider: ProviderName | None,
        low_balance_threshold: int,
    ) -> Tenant:
        """Open a tenant and its wallet (balance 0, the tenant's currency) in one statement pair."""
        try:
            async with self.session.begin_nested():
                row = (
                    await self.session.execute(
                        insert(t.tenants)
                        .values(
                            id=tenant_id,
                            name=name,
                            country=country,
                            currency=currency,
                            data_residency_region=data_residency_region,
                            payments_provider=payments_provider.value if payments_provider else None,
                        )
                        .returning(*t.tenants.c)
                    )
                ).one()
                await self.session.execute(
                    insert(t.wallets).values(
                        tenant_id=tenant_id, currency=currency, low_balance_threshold=low_balance_threshold
                    )
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"tenant {tenant_id!r} already exists") from exc
        return tenant_from_row(row)

    async def set_provider(self, tenant_id: str, provider: ProviderName | None) -> None:
        await self.session.execute(
            t.tenants.update()
            .where(t.tenants.c.id == tenant_id)
            .values(payments_provider=provider.value if provider else None)
        )

    async def get(self, tenant_id: str) -> Tenant:
        row = (await self.session.execute(select(t.tenants).where(t.tenants.c.id == tenant_id))).one_or_none()
        if row is None:
            raise NotFound("tenant", tenant_id)
        return tenant_from_row(row)


class TenantDirectory:
    """Tenants read together with their wallets, for the admin views."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(
        self, *, flagged: bool | None, low_balance: bool | None, after_id: str | None, limit: int
    ) -> tuple[list[tuple[Tenant, Wallet]], str | None]:
        w = t.wallets.c
        query = select(t.tenants, *[col.label(f"w_{col.name}") for col in t.wallets.c]).join(
            t.wallets, w.tenant_id == t.tenants.c.id
        )
        if flagged is not None:
            query = query.where(w.flagged.is_(flagged))
        if low_balance is not None:
            below = (w.balance - w.reserved) < w.low_balance_threshold
            query = query.where(below if low_balance else ~below)
        if after_id is not None:
            query = query.where(t.tenants.c.id > after_id)
        rows = (await self.session.execute(query.order_by(t.tenants.c.id).limit(limit + 1))).all()
        items = [(tenant_from_row(r), _wallet_of(r._mapping)) for r in rows[:limit]]
        return items, (items[-1][0].id if len(rows) > limit else None)

    async def get(self, tenant_id: str) -> tuple[Tenant, Wallet]:
        query = (
            select(t.tenants, *[col.label(f"w_{col.name}") for col in t.wallets.c])
            .join(t.wallets, t.wallets.c.tenant_id == t.tenants.c.id)
            .where(t.tenants.c.id == tenant_id)
        )
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            raise NotFound("tenant", tenant_id)
        return tenant_from_row(row), _wallet_of(row._mapping)


def _wallet_of(m: Any) -> Wallet:
    return Wallet(
        tenant_id=m["w_tenant_id"],
        currency=m["w_currency"],
        balance=m["w_balance"],
        reserved=m["w_reserved"],
        low_balance_threshold=m["w_low_balance_threshold"],
        flagged=m["w_flagged"],
        updated_at=m["w_updated_at"],
        owed=m["w_owed"],
        max_concurrent_calls=m["w_max_concurrent_calls"],
        daily_spend_cap=m["w_daily_spend_cap"],
    )
