"""Wallets and the one statement that changes a balance: wallet update and ledger row in one round trip."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.db.repositories.ledger import entry_from_mapping
from walletsvc.domain.auto_topup import AutoTopupSettings
from walletsvc.domain.errors import CurrencyMismatch, InsufficientFunds, NotFound
from walletsvc.domain.ledger import EntryRequest, LedgerEntry, Wallet, check_debit


def wallet_from_mapping(m: Any) -> Wallet:
    return Wallet(
        tenant_id=m["tenant_id"],
        currency=m["currency"],
        balance=m["balance"],
        reserved=m["reserved"],
        low_balance_threshold=m["low_balance_threshold"],
        flagged=m["flagged"],
        updated_at=m["updated_at"],
        owed=m["owed"],
        max_concurrent_calls=m["max_concurrent_calls"],
        daily_spend_cap=m["daily_spend_cap"],
    )


# The wallet row is locked only for the length of this one statement: the conditional UPDATE takes the
# lock, the INSERT writes the ledger row from what the UPDATE returned, and the transaction commits
# right after. Under READ COMMITTED a waiting UPDATE re-checks its WHERE against the newest row, so
# concurrent debits can never take the balance below zero or lose an update. It chains the ledger row in
# SQL rather than with domain/charging.py's `chain_line` (which every path holding a locked wallet uses)
# because it never reads the wallet first: chaining in Python would need a SELECT ... FOR UPDATE before
# it, a second round trip with the lock held, on every top-up and adjustment.
_APPLY_ENTRY = text(
    """
    WITH p AS (
        SELECT CAST(:tenant_id AS varchar) AS tenant_id, CAST(:currency AS varchar) AS currency,
               CAST(:amount AS bigint) AS amount, CAST(:allow_negative AS boolean) AS allow_negative
    ), w AS (
        UPDATE wallets
           SET balance = wallets.balance + p.amount,
               ledger_seq = wallets.ledger_seq + 1,
               updated_at = now()
          FROM p
         WHERE wallets.tenant_id = p.tenant_id
           AND wallets.currency = p.currency
           AND (p.amount > 0 OR p.allow_negative OR wallets.balance - wallets.reserved + p.amount >= 0)
     RETURNING wallets.tenant_id, wallets.currency, wallets.balance, wallets.reserved,
               wallets.low_balance_threshold, wallets.flagged, wallets.updated_at, wallets.ledger_seq,
               wallets.owed, wallets.max_concurrent_calls, wallets.daily_spend_cap,
               p.amount, p.allow_negative
    ), e AS (
        INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,
                                    counter_account, reference_type, reference_id, description, actor,
                                    allow_negative)
        SELECT tenant_id, ledger_seq, CAST(:type AS text), amount, currency, balance - amount, balance,
               CAST(:counter_account AS text), CAST(:reference_type AS text),
               CAST(:reference_id AS text), CAST(:description AS text), CAST(:actor AS text),
               allow_negative
          FROM w
     RETURNING *
    )
    SELECT e.*, w.reserved AS w_reserved, w.low_balance_threshold AS w_low_balance_threshold,
           w.flagged AS w_flagged, w.updated_at AS w_updated_at, w.owed AS w_owed,
           w.max_concurrent_calls AS w_max_concurrent_calls, w.daily_spend_cap AS w_daily_spend_cap
      FROM e JOIN w USING (tenant_id)
    """
)


class WalletRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, *, for_update: bool = False) -> Wallet:
        query = select(t.wallets).where(t.wallets.c.tenant_id == tenant_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            raise NotFound("wallet", tenant_id)
        return wallet_from_mapping(row._mapping)

    async def auto_topup(self, tenant_id: str) -> AutoTopupSettings:
        c = t.wallets.c
        row = (
            await self.session.execute(
                select(c.auto_topup_enabled, c.auto_topup_threshold, c.auto_topup_amount).where(
                    c.tenant_id == tenant_id
                )
            )
        ).one()
        return AutoTopupSettings(enabled=row[0], threshold=row[1], amount=row[2])

    async def apply(self, entry: EntryRequest) -> tuple[Wallet, LedgerEntry]:
        """Change the balance and write the ledger row together, or raise and change nothing."""
        row = (
            await self.session.execute(
                _APPLY_ENTRY,
                {
                    "tenant_id": entry.tenant_id,
                    "currency": entry.amount.currency,
                    "amount": entry.amount.amount,
                    "allow_negative": entry.allow_negative,
                    "type": entry.type.value,
                    "counter_account": entry.counter_account.value,
                    "reference_type": entry.reference_type,
                    "reference_id": entry.reference_id,
                    "description": entry.description,
                    "actor": entry.actor,
                },
            )
        ).one_or_none()
        if row is None:
            await self._explain_refusal(entry)
        m = row._mapping  # type: ignore[union-attr]
        ledger_entry = entry_from_mapping(m)
        wallet = Wallet(
            tenant_id=m["tenant_id"],
            currency=m["currency"],
            balance=m["balance_after"],
            reserved=m["w_reserved"],
            low_balance_threshold=m["w_low_balance_threshold"],
            flagged=m["w_flagged"],
            updated_at=m["w_updated_at"],
            owed=m["w_owed"],
            max_concurrent_calls=m["w_max_concurrent_calls"],
            daily_spend_cap=m["w_daily_spend_cap"],
        )
        return wallet, ledger_entry

    async def _explain_refusal(self, entry: EntryRequest) -> None:
        """The conditional UPDATE matched nothing: say why (a second round trip, on the refusal path only)."""
        wallet = await self.get(entry.tenant_id)
        if wallet.currency != entry.amount.currency:
            raise CurrencyMismatch(expected=wallet.currency, got=entry.amount.currency)
        check_debit(wallet, entry.amount.amount, allow_negative=entry.allow_negative)
        # The balance moved between the two statements; report what the UPDATE saw.
        raise InsufficientFunds(
            available=wallet.available, requested=-entry.amount.amount, currency=wallet.currency
        )

    async def reserve(self, tenant_id: str, amount: int) -> Wallet:
        """Hold `amount` of the available balance (as a call hold does), in one conditional statement:
        concurrent charges then cannot spend it. InsufficientFunds when it is not available."""
        w = t.wallets.c
        row = (
            await self.session.execute(
                t.wallets.update()
                .where(w.tenant_id == tenant_id, w.balance - w.reserved >= amount)
                .values(reserved=w.reserved + amount, updated_at=func.now())
                .returning(*t.wallets.c)
            )
        ).one_or_none()
        if row is None:
            wallet = await self.get(tenant_id)
            raise InsufficientFunds(
                available=max(wallet.available, 0), requested=amount, currency=wallet.currency
            )
        return wallet_from_mapping(row._mapping)

    async def release(self, tenant_id: str, amount: int) -> None:
        """Give back what `reserve` held."""
        if amount:
            await self.session.execute(
                t.wallets.update()
                .where(t.wallets.c.tenant_id == tenant_id)
                .values(reserved=t.wallets.c.reserved - amount, updated_at=func.now())
            )

    async def set_limits(self, tenant_id: str, **values: int | None) -> None:
        """low_balance_threshold, max_concurrent_calls, daily_spend_cap: the ones given."""
        if values:
            await self.session.execute(
                t.wallets.update()
                .where(t.wallets.c.tenant_id == tenant_id)
                .values(**values, updated_at=func.now())
            )

    async def set_flagged(self, tenant_id: str, flagged: bool) -> None:
        await self.session.execute(
            t.wallets.update()
            .where(and_(t.wallets.c.tenant_id == tenant_id, t.wallets.c.flagged.is_not(flagged)))
            .values(flagged=flagged)
        )
