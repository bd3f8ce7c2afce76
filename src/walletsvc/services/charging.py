"""Charging usage: quota first, then the wallet, one ledger row per charge, exactly once per
(tenant, kind, reference id).

A hot wallet takes hundreds of charges a second. Charges for one wallet are therefore queued in this
process and written by one writer at a time: it locks the wallet row once, rates and settles everything
queued behind it, writes the charges, the ledger rows, the quota and the wallet in a handful of
statements, and commits. The lock is held for those statements only, never across other I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from walletsvc.config import Settings
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.plans import SubscriptionRepository
from walletsvc.db.repositories.usage import LockedWallet, UsageCharge, UsageRepository
from walletsvc.domain.errors import InvalidRequest, WalletError
from walletsvc.domain.ledger import CounterAccount, EntryType
from walletsvc.domain.plans import settle_charge
from walletsvc.domain.rating import Rating, UsageKind, rate_call, rate_units
from walletsvc.services.pricing import pricing_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    tenant_id: str
    kind: UsageKind
    reference_id: str
    duration_seconds: int | None
    quantity: int | None
    actor: str

    def __post_init__(self) -> None:
        if self.kind is UsageKind.CALL:
            if self.duration_seconds is None:
                raise InvalidRequest("a call needs duration_seconds")
            if self.quantity not in (None, 1):
                raise InvalidRequest("a call has no quantity; send duration_seconds")
        elif self.duration_seconds is not None:
            raise InvalidRequest(f"{self.kind.value} is charged by quantity, not duration_seconds")

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.reference_id)


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    charge: UsageCharge
    replayed: bool  # the reference was charged before: this is that first charge
    balance_after: int
    available_after: int


class ChargeWriter:
    """One writer per wallet at a time in this process; what queues behind it is written in one go."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._queues: dict[str, list[tuple[UsageRecord, asyncio.Future[ChargeOutcome]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def charge(self, record: UsageRecord) -> ChargeOutcome:
        future: asyncio.Future[ChargeOutcome] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(record.tenant_id)
        if queue is None:
            self._queues[record.tenant_id] = [(record, future)]
            task = asyncio.create_task(self._drain(record.tenant_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            queue.append((record, future))
        return await future

    async def charge_many(self, records: Sequence[UsageRecord]) -> list[ChargeOutcome | WalletError]:
        """Each record answered on its own: a refusal of one does not stop the others."""
        results = await asyncio.gather(*(self.charge(r) for r in records), return_exceptions=True)
        answers: list[ChargeOutcome | WalletError] = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, WalletError):
                raise result
            answers.append(result)
        return answers

    async def _drain(self, tenant_id: str) -> None:
        try:
            while queue := self._queues.get(tenant_id):
                batch = queue[: self.settings.charge_batch_size]
                del queue[: len(batch)]
                await self._write_settling(tenant_id, batch)
        finally:
            self._queues.pop(tenant_id, None)

    async def _write_settling(
        self, tenant_id: str, batch: list[tuple[UsageRecord, asyncio.Future[ChargeOutcome]]]
    ) -> None:
        records = [record for record, _ in batch]
        try:
            try:
                outcomes = await self._write(tenant_id, records)
            except IntegrityError:
                # Another process charged one of these references between our read and our insert;
                # the wallet lock makes that rare. Once more: this time the read sees it.
                outcomes = await self._write(tenant_id, records)
        except WalletError as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except Exception as exc:  # the writer must answer every waiter, whatever happened
            log.exception("charge batch failed", extra={"tenant_id": tenant_id, "size": len(batch)})
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                if isinstance(outcome, WalletError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _write(self, tenant_id: str, records: list[UsageRecord]) -> list[ChargeOutcome | WalletError]:
        async with unit_of_work(self.db) as session:
            repo = UsageRepository(session)
            wallet = await repo.lock_wallet(tenant_id)
            pricing = await pricing_for(session, self.settings, tenant_id, wallet.currency, lock=True)
            existing = await repo.existing(tenant_id, list({r.key for r in records}))
            call_ids = [r.reference_id for r in records if r.kind is UsageKind.CALL and r.key not in existing]
            holds = await repo.take_holds(tenant_id, call_ids)
            quota_left = pricing.quota_remaining_seconds
            quota_used_before = pricing.subscription.quota_used_seconds if pricing.subscription else 0
            start_balance = wallet.balance
            today = datetime.now(UTC).date()
            if wallet.spent_day != today:
                wallet.spent_day, wallet.spent_today = today, 0

            planned: list[tuple[UsageRecord, Rating | None, dict[str, Any] | None, WalletError | None]] = []
            seen: set[tuple[str, str]] = set()
            for record in records:
                if record.key in existing or record.key in seen:
                    planned.append((record, None, None, None))
                    continue
                seen.add(record.key)
                try:
                    rating = (
                        rate_call(
                            record.duration_seconds or 0, pricing.rates, quota_remaining_seconds=quota_left
                        )
                        if record.kind is UsageKind.CALL
                        else rate_units(record.kind, record.quantity or 1, pricing.rates)
                    )
                except WalletError as exc:
                    planned.append((record, None, None, exc))
                    continue
                hold = holds.get(record.reference_id, 0) if record.kind is UsageKind.CALL else 0
                wallet.reserved -= hold
                settlement = settle_charge(rating.amount.amount, available_after_release=wallet.available)
                quota_left -= rating.quota_seconds
                wallet.balance -= settlement.charged
                wallet.owed += settlement.owed
                wallet.spent_today += rating.amount.amount
                if settlement.owed:
                    wallet.flagged = True
                planned.append(
                    (
                        record,
                        rating,
                        {
                            "tenant_id": tenant_id,
                            "kind": record.kind.value,
                            "reference_id": record.reference_id,
                            "quantity": rating.quantity,
                            "duration_seconds": record.duration_seconds,
                            "billable_seconds": rating.billable_seconds,
                            "quota_seconds": rating.quota_seconds,
                            "paid_seconds": rating.paid_seconds,
                            "amount": rating.amount.amount,
                            "currency": wallet.currency,
                            "charged": settlement.charged,
                            "owed": settlement.owed,
                            "plan_id": pricing.plan.id if pricing.plan else None,
                            "hold_amount": hold,
                            "created_by": record.actor,
                        },
                        None,
                    )
                )

            inserted = await repo.insert_charges([row for _, _, row, _ in planned if row is not None])
            by_key = {**existing, **{(c.kind.value, c.reference_id): c for c in inserted}}
            await repo.append_ledger(
                ledger_rows(wallet, [c for c in inserted if c.charged > 0], start_balance)
            )
            if pricing.subscription is not None and quota_left != pricing.quota_remaining_seconds:
                used = quota_used_before + (pricing.quota_remaining_seconds - quota_left)
                await SubscriptionRepository(session).set_quota_used(tenant_id, used)
            await repo.save_wallet(wallet)

        outcomes: list[ChargeOutcome | WalletError] = []
        for record, _rating, row, error in planned:
            if error is not None:
                outcomes.append(error)
                continue
            charge = by_key[record.key]
            outcomes.append(
                ChargeOutcome(
                    charge=charge,
                    replayed=row is None,
                    balance_after=wallet.balance,
                    available_after=wallet.available,
                )
            )
        return outcomes


def ledger_rows(wallet: LockedWallet, charges: list[UsageCharge], start_balance: int) -> list[dict[str, Any]]:
    """One `usage_charge` row per charge, chained in order from the balance the batch started at."""
    rows: list[dict[str, Any]] = []
    balance = start_balance
    for charge in charges:
        wallet.ledger_seq += 1
        rows.append(
            {
                "tenant_id": wallet.tenant_id,
                "seq": wallet.ledger_seq,
                "type": EntryType.USAGE_CHARGE.value,
                "amount": -charge.charged,
                "currency": wallet.currency,
                "balance_before": balance,
                "balance_after": balance - charge.charged,
                "counter_account": CounterAccount.REVENUE_USAGE.value,
                "reference_type": "usage_charge",
                "reference_id": str(charge.id),
                "description": describe(charge),
                "actor": charge.created_by,
                "allow_negative": False,
            }
        )
        balance -= charge.charged
    return rows


def describe(charge: UsageCharge) -> str:
    if charge.kind is UsageKind.CALL:
        return f"Call {charge.reference_id}: {charge.duration_seconds} s, {charge.paid_seconds} s paid"
    unit = {UsageKind.FAX: "page(s)", UsageKind.FILE_TRANSFER: "file(s)"}.get(charge.kind, "message(s)")
    return f"{charge.kind.value} {charge.reference_id}: {charge.quantity} {unit}"
