"""Usage charges, call holds, and the locked wallet (domain/charging.py's values) through the ORM session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.db.repositories.ledger import entry_from_mapping
from walletsvc.domain.charging import LedgerLine, LockedWallet, UsageCharge
from walletsvc.domain.errors import NotFound
from walletsvc.domain.ledger import LedgerEntry
from walletsvc.domain.money import Money
from walletsvc.domain.rating import UsageKind

u = t.usage_charges.c
h = t.holds.c


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

    async def append_ledger(self, wallet: LockedWallet, lines: list[LedgerLine]) -> list[LedgerEntry]:
        """Write the ledger rows `chain_line` chained for this wallet."""
        if not lines:
            return []
        rows = [_ledger_row(wallet, line) for line in lines]
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


def _ledger_row(wallet: LockedWallet, line: LedgerLine) -> dict[str, Any]:
    if line.reference_id is None:
        raise ValueError("a ledger row written through the session names its reference")
    return {
        "tenant_id": wallet.tenant_id,
        "seq": line.seq,
        "type": line.entry_type.value,
        "amount": line.amount,
        "currency": wallet.currency,
        "balance_before": line.balance_before,
        "balance_after": line.balance_after,
        "counter_account": line.counter_account.value,
        "reference_type": line.reference_type,
        "reference_id": line.reference_id,
        "description": line.description,
        "actor": line.actor,
        "allow_negative": False,
    }
