"""What a tenant owes: usage its wallet could not pay when it happened, and plan fees a period close could
not take. Every credit (a top-up, an admin credit) pays it off, oldest charge first, then the plan fees;
when nothing is owed any more the flag is lifted."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.periods import PeriodRepository
from walletsvc.db.repositories.usage import UsageRepository
from walletsvc.domain.charging import LedgerLine, chain_line
from walletsvc.domain.events import EventType, money
from walletsvc.domain.ledger import CounterAccount, EntryType
from walletsvc.services.events import record_event


async def settle_owed(session: AsyncSession, tenant_id: str) -> int:
    """Pay what is owed from what the wallet has available now; answer how much was paid."""
    repo = UsageRepository(session)
    wallet = await repo.lock_wallet(tenant_id)
    if wallet.owed == 0:
        return 0
    lines: list[LedgerLine] = []
    paid_total = 0
    for charge in await repo.owed_charges(tenant_id):
        pay = min(charge.owed, wallet.available)
        if pay <= 0:
            break
        lines.append(
            chain_line(
                wallet,
                -pay,
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
        lines.append(
            chain_line(
                wallet,
                -pay,
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
    await repo.append_ledger(wallet, lines)
    await repo.save_wallet(wallet)
    return paid_total
