"""Usage charges, call holds, and the locked wallet state the charge writer works on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.db.repositories.ledger import entry_from_mapping
from walletsvc.domain.errors import NotFound
from walletsvc.domain.ledger import LedgerEntry
from walletsvc.domain.money import Money
from walletsvc.domain.rating import UsageKind

u = t.usage_charges.c
h = t.holds.c


@dataclass(frozen=True, slots=True)
class UsageCharge:
    id: int
    tenant_id: str
    kind: UsageKind
    reference_id: str
    quantity: int
    duration_seconds: int | None
    billable_seconds: int
    quota_seconds: int
    paid_seconds: int
    amount: Money  # what the usage cost
    charged: int  # what the wallet has paid of it
    owed: int  # what the wallet could not pay yet
    refunded: int
    quota_refunded_seconds: int
    plan_id: str | None
    hold_amount: int
    created_by: str
    created_at: datetime


def charge_from_mapping(m: Any) -> UsageCharge:
    return UsageCharge(
        id=m["id"],
        tenant_id=m["tenant_id"],
        kind=UsageKind(m["kind"]),
        reference_id=m["reference_id"],
        quantity=m["quantity"],
        duration_seconds=m["duration_seconds"],
        billable_seconds=m["billable_seconds"],
        quota_seconds=m["quota_seconds"],
        paid_seconds=m["paid_seconds"],
        amount=Money(m["amount"], m["currency"]),
        charged=m["charged"],
        owed=m["owed"],
        refunded=m["refunded"],
        quota_refunded_seconds=m["quota_refunded_seconds"],
        plan_id=m["plan_id"],
        hold_amount=m["hold_amount"],
        created_by=m["created_by"],
        created_at=m["created_at"],
    )


@dataclass(slots=True)
class LockedWallet:
    """A wallet row held FOR UPDATE by the writer: everything a charge or an authorization decides on."""

    tenant_id: str
    currency: str
    balance: int
    reserved: int
    ledger_seq: int
    flagged: bool
    owed: int
    spent_day: date | None
    spent_today: int
    max_concurrent_calls: int | None
    daily_spend_cap: int | None
    low_balance_threshold: int
    # The low-balance alert state (domain/low_balance.py); written by services/low_balance.py, not by
    # save_wallet.
    low_balance_since: datetime | None = None
    low_balance_alerted_at: datetime | None = None
    # Auto top-up (services/auto_topup.py): read with the lock, never written by save_wallet.
    auto_topup_enabled: bool = False
    auto_topup_threshold: int | None = None
    auto_topup_paused_until: datetime | None = None

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_wallet(self, tenant_id: str) -> LockedWallet:
        w = t.wallets.c
        row = (
            await self.session.execute(
                select(
                    w.tenant_id,
                    w.currency,
                    w.balance,
                    w.reserved,
                    w.ledger_seq,
                    w.flagged,
                    w.owed,
                    w.spent_day,
                    w.spent_today,
                    w.max_concurrent_calls,
                    w.daily_spend_cap,
                    w.low_balance_threshold,
                    w.low_balance_since,
                    w.low_balance_alerted_at,
                    w.auto_topup_enabled,
                    w.auto_topup_threshold,
                    w.auto_topup_paused_until,
                )
                .where(w.tenant_id == tenant_id)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise NotFound("wallet", tenant_id)
        return LockedWallet(**row._mapping)

    async def save_wallet(self, wallet: LockedWallet) -> datetime:
        updated_at: datetime = (
            await self.session.execute(
                update(t.wallets)
                .where(t.wallets.c.tenant_id == wallet.tenant_id)
                .values(
                    balance=wallet.balance,
                    reserved=wallet.reserved,
                    ledger_seq=wallet.ledger_seq,
                    flagged=wallet.flagged,
                    owed=wallet.owed,
                    spent_day=wallet.spent_day,
                    spent_today=wallet.spent_today,
                    updated_at=func.now(),
                )
                .returning(t.wallets.c.updated_at)
            )
        ).scalar_one()
        return updated_at

    async def append_ledger(self, rows: list[dict[str, Any]]) -> list[LedgerEntry]:
        if not rows:
            return []
        result = await self.session.execute(insert(t.ledger_entries).returning(*t.ledger_entries.c), rows)
        return sorted((entry_from_mapping(r._mapping) for r in result.all()), key=lambda e: e.seq)

    async def existing(
        self, tenant_id: str, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], UsageCharge]:
        if not keys:
            return {}
        rows = (
            await self.session.execute(
                select(t.usage_charges).where(
                    u.tenant_id == tenant_id, tuple_(u.kind, u.reference_id).in_(keys)
                )
            )
        ).all()
        return {
            (r._mapping["kind"], r._mapping["reference_id"]): charge_from_mapping(r._mapping) for r in rows
        }

    async def get_charge(self, tenant_id: str, charge_id: int, *, for_update: bool = False) -> UsageCharge:
        query = select(t.usage_charges).where(u.tenant_id == tenant_id, u.id == charge_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            raise NotFound("charge", str(charge_id))
        return charge_from_mapping(row._mapping)

    async def tenant_of_charge(self, charge_id: int) -> str | None:
        return (await self.session.execute(select(u.tenant_id).where(u.id == charge_id))).scalar_one_or_none()

    async def owed_charges(self, tenant_id: str) -> list[UsageCharge]:
        rows = (
            await self.session.execute(
                select(t.usage_charges)
                .where(u.tenant_id == tenant_id, u.owed > 0)
                .order_by(u.id)
                .with_for_update()
            )
        ).all()
        return [charge_from_mapping(r._mapping) for r in rows]

    async def update_charge(self, tenant_id: str, charge_id: int, **values: Any) -> UsageCharge:
        row = (
            await self.session.execute(
                update(t.usage_charges)
                .where(u.tenant_id == tenant_id, u.id == charge_id)
                .values(**values)
                .returning(*t.usage_charges.c)
            )
        ).one()
        return charge_from_mapping(row._mapping)

    # --- holds -----------------------------------------------------------------------------------

    async def hold(self, tenant_id: str, call_id: str) -> dict[str, Any] | None:
        row = (
            await self.session.execute(select(t.holds).where(h.tenant_id == tenant_id, h.call_id == call_id))
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    async def add_hold(
        self,
        *,
        tenant_id: str,
        call_id: str,
        amount: Money,
        max_seconds: int,
        ttl_seconds: int,
        created_by: str,
    ) -> dict[str, Any]:
        row = (
            await self.session.execute(
                insert(t.holds)
                .values(
                    tenant_id=tenant_id,
                    call_id=call_id,
                    amount=amount.amount,
                    currency=amount.currency,
                    max_seconds=max_seconds,
                    status="active",
                    expires_at=func.now() + text(f"interval '{int(ttl_seconds)} seconds'"),
                    created_by=created_by,
                )
                .returning(*t.holds.c)
            )
        ).one()
        return dict(row._mapping)

    async def active_hold_count(self, tenant_id: str) -> int:
        count: int = (
            await self.session.execute(
                select(func.count())
                .select_from(t.holds)
                .where(h.tenant_id == tenant_id, h.status == "active")
            )
        ).scalar_one()
        return count

    async def expire_holds(self, tenant_id: str) -> int:
        """Close this tenant's holds past their expiry; answer how much they had reserved."""
        rows = (
            await self.session.execute(
                update(t.holds)
                .where(h.tenant_id == tenant_id, h.status == "active", h.expires_at <= func.now())
                .values(status="expired", closed_at=func.now())
                .returning(h.amount)
            )
        ).all()
        return sum(r[0] for r in rows)

    async def tenants_with_expired_holds(self, limit: int = 1000) -> list[str]:
        rows = (
            await self.session.execute(
                select(h.tenant_id)
                .where(h.status == "active", h.expires_at <= func.now())
                .group_by(h.tenant_id)
                .limit(limit)
            )
        ).all()
        return [r[0] for r in rows]
