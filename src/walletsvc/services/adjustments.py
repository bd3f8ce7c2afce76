"""Admin adjustments: a manual credit or debit with a reason, signed by the admin who made it."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.errors import CurrencyMismatch, InvalidRequest
from walletsvc.domain.events import EventType, money
from walletsvc.domain.ledger import CounterAccount, EntryRequest, EntryType, LedgerEntry, Wallet
from walletsvc.domain.money import Money
from walletsvc.services.debts import settle_owed
from walletsvc.services.events import record_event
from walletsvc.services.low_balance import Cause, CauseType, note_balance_change


async def adjust_balance(
    session: AsyncSession,
    tenant_id: str,
    amount: int,
    *,
    reason: str,
    actor: str,
    currency: str | None = None,
    allow_negative: bool = False,
) -> tuple[Wallet, LedgerEntry]:
    if not reason.strip():
        raise InvalidRequest("an adjustment needs a reason")
    wallets = WalletRepository(session)
    wallet = await wallets.get(tenant_id)
    if currency is not None and currency != wallet.currency:
        raise CurrencyMismatch(expected=wallet.currency, got=currency)
    wallet, entry = await wallets.apply(
        EntryRequest(
            tenant_id=tenant_id,
            type=EntryType.ADJUSTMENT,
            amount=Money(amount, wallet.currency),
            counter_account=CounterAccount.ADJUSTMENTS,
            reference_type="adjustment",
            reference_id=f"adj_{uuid.uuid4().hex}",
            description=reason.strip(),
            actor=actor,
            allow_negative=allow_negative,
        )
    )
    await record_event(
        session,
        EventType.ADJUSTMENT_CREATED,
        tenant_id,
        {
            "adjustment_id": entry.reference_id,
            "transaction_id": str(entry.id),  # as the API names it
            "amount": money(amount, wallet.currency),
            "reason": reason.strip(),
            "actor": actor,
        },
    )
    if amount > 0 and await settle_owed(session, tenant_id):
        wallet = await wallets.get(tenant_id)  # the credit paid off usage that was owed
    await note_balance_change(session, tenant_id, Cause(CauseType.ADJUSTMENT, entry.reference_id))
    return wallet, entry
