"""What a tenant owes: usage its wallet could not pay when it happened, and plan fees a period close could
not take. Every credit (a top-up, an admin credit) pays it off, oldest charge first, then the plan fees;
when nothing is owed any more the flag is lifted."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.periods import PeriodRepository
from walletsvc.db.repositories.usage import LockedWallet, UsageRepository
from walletsvc.domain.events import EventType, money
from walletsvc.domain.ledger import CounterAccount, EntryType
from walletsvc.services.events import record_event


def usage_row(
    wallet: LockedWallet,
    *,
    amount: int,
    entry_type: EntryType,
    reference_type: str,
    reference_id: str,
    description: str,
    actor: str,
    counter_account: CounterAccount = CounterAccount.REVENUE_USAGE,
) -> dict[str, Any]:
    """A ledger row for a wallet held by the writer: chained from its current balance, then applied."""
    wallet.ledger_seq += 1
    before = wallet.balance
    wallet.balance += amount
    return {
        "tenant_id": wallet.tenant_id,
        "seq": wallet.ledger_seq,
        "type": entry_type.value,
        "amount": amount,
        "currency": wallet.currency,
        "balance_before": before,
        "balance_after": wallet.balance,
        "counter_account": counter_account.value,
        "reference_type": reference_type,
        "reference_id": reference_id,
        "description": description,
        "actor": actor,
        "allow_negative": False,
    }


async def settle_owed(session: AsyncSession, tenant_id: str) -> int:
    """Pay what is owed from what the wallet has available now; answer how much was paid."""
    repo = UsageRepository(session)
    wallet = await repo.lock_wallet(tenant_id)
    if wallet.owed == 0:
        return 0
    rows: list[dict[str, Any]] = []
    paid_total = 0
    for charge in await repo.owed_charges(tenant_id):
        pay = min(charge.owed, wallet.available)
        if pay <= 0:
            break
        rows.append(
            usage_row(
                wallet,
                amount=-pay,
                entry_type=EntryType.USAGE_CHARGE,
                reference_type="usage_charge",
                reference_id=str(charge.id),
                description=f"Owed for {charge.kind.value} {charge.reference_id}, paid",
                actor="system:debts",
            )
        )
        await repo.update_charge(tenant_id, charge.id, charged=charge.charged + pay, owed=charge.owed - pay)
        wallet.owed -= pay
        paid_total += pay
    # Plan fees a period close could not take (services/periods.py) are owed the same way: paid after
    # the usage, oldest period first.
    periods = PeriodRepository(session)
    for period in await periods.owed(tenant_id) if wallet.owed > 0 else []:
        pay = min(period.owed, wallet.available)
        if pay <= 0:
            break
        rows.append(
            usage_row(
                wallet,
                amount=-pay,
                entry_type=EntryType.PLAN_FEE,
                reference_type="plan_period",
                reference_id=period.id,
                description=f"Owed plan fee for the period from {period.period_start:%Y-%m-%d}, paid",
                actor="system:debts",
                counter_account=CounterAccount.REVENUE_PLANS,
            )
        )
        await periods.set_paid(tenant_id, period.id, charged=period.charged + pay, owed=period.owed - pay)
        wallet.owed -= pay
        paid_total += pay
    if wallet.owed == 0 and wallet.flagged:
        wallet.flagged = False
        await record_event(
            session,
            EventType.WALLET_UNFLAGGED,
            tenant_id,
            {"reason": "owed_paid", "paid": money(paid_total, wallet.currency)},
        )
    await repo.append_ledger(rows)
    await repo.save_wallet(wallet)
    return paid_total
