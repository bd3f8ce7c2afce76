"""Refunds of usage charges, whole or in part: what was owed is forgiven first, the rest goes back to
the wallet as a new ledger row, and the quota the charge used comes back to the current period."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.db.repositories.plans import SubscriptionRepository
from walletsvc.db.repositories.usage import UsageRepository
from walletsvc.domain.charging import UsageCharge, chain_line
from walletsvc.domain.errors import Conflict, InvalidRequest, NotFound
from walletsvc.domain.events import EventType, money
from walletsvc.domain.ledger import EntryType
from walletsvc.domain.money import Money
from walletsvc.services.debts import settle_owed
from walletsvc.services.events import record_event
from walletsvc.services.low_balance import Cause, CauseType, note_balance_change


@dataclass(frozen=True, slots=True)
class ChargeRefund:
    id: str
    charge: UsageCharge
    amount: Money
    to_wallet: int
    forgiven: int
    quota_seconds: int
    reason: str
    created_by: str
    created_at: datetime
    balance_after: int


async def refund_charge(
    session: AsyncSession, charge_id: int, *, amount: int | None, reason: str, actor: str
) -> ChargeRefund:
    repo = UsageRepository(session)
    tenant_id = await repo.tenant_of_charge(charge_id)
    if tenant_id is None:
        raise NotFound("charge", str(charge_id))
    wallet = await repo.lock_wallet(tenant_id)  # lock order everywhere: wallet, then its rows
    charge = await repo.get_charge(tenant_id, charge_id, for_update=True)
    refundable = charge.amount.amount - charge.refunded
    quota_left = charge.quota_seconds - charge.quota_refunded_seconds
    whole = amount is None or amount == refundable
    refund = refundable if amount is None else amount
    if refund > refundable:
        raise InvalidRequest(
            f"at most {Money(refundable, charge.amount.currency).format()} of this charge can still be refunded"
        )
    if charge.amount.amount > 0 and not whole:
        quota_back = min(charge.quota_seconds * refund // charge.amount.amount, quota_left)
    else:
        quota_back = quota_left if whole else 0
    if refund == 0 and quota_back == 0:
        raise Conflict("this charge has been refunded in full already")

    forgiven = min(refund, charge.owed)
    to_wallet = refund - forgiven
    refund_id = f"cr_{secrets.token_hex(10)}"
    if to_wallet:
        line = chain_line(
            wallet,
            to_wallet,
            entry_type=EntryType.USAGE_REFUND,
            reference_type="charge_refund",
            reference_id=refund_id,
            description=f"Refund of {charge.kind.value} {charge.reference_id}: {reason}",
            actor=actor,
        )
        await repo.append_ledger(wallet, [line])
    wallet.owed -= forgiven
    if wallet.owed == 0 and wallet.flagged:
        wallet.flagged = False
        await record_event(
            session,
            EventType.WALLET_UNFLAGGED,
            tenant_id,
            {"reason": "owed_forgiven", "charge_id": charge_id, "forgiven": money(forgiven, wallet.currency)},
        )
    await repo.save_wallet(wallet)
    updated = await repo.update_charge(
        tenant_id,
        charge_id,
        owed=charge.owed - forgiven,
        refunded=charge.refunded + refund,
        quota_refunded_seconds=charge.quota_refunded_seconds + quota_back,
    )
    if quota_back:
        subscriptions = SubscriptionRepository(session)
        subscription = await subscriptions.get(tenant_id, for_update=True)
        # Quota belongs to a period: only a charge of the current period gives its minutes back.
        if subscription is not None and charge.created_at >= subscription.period_start:
            await subscriptions.set_quota_used(
                tenant_id, max(subscription.quota_used_seconds - quota_back, 0)
            )
    if to_wallet and wallet.owed:
        # Money back in the wallet pays what the tenant still owes on other charges, like any credit.
        await settle_owed(session, tenant_id)
    await note_balance_change(session, tenant_id, Cause(CauseType.CHARGE_REFUND, refund_id))
    row = (
        await session.execute(
            insert(t.charge_refunds)
            .values(
                tenant_id=tenant_id,
                id=refund_id,
                charge_id=charge_id,
                amount=refund,
                to_wallet=to_wallet,
                forgiven=forgiven,
                quota_seconds=quota_back,
                currency=charge.amount.currency,
                reason=reason,
                created_by=actor,
            )
            .returning(t.charge_refunds.c.created_at)
        )
    ).one()
    return ChargeRefund(
        id=refund_id,
        charge=updated,
        amount=Money(refund, charge.amount.currency),
        to_wallet=to_wallet,
        forgiven=forgiven,
        quota_seconds=quota_back,
        reason=reason,
        created_by=actor,
        created_at=row[0],
        balance_after=wallet.balance,
    )
