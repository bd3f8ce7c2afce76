"""Charging usage: quota first, then the wallet, one ledger row per charge, exactly once per
(tenant, kind, reference id).

A hot wallet takes hundreds of charges a second. Charges for one wallet are therefore queued in this
process and written by one writer at a time: it locks the wallet row once, rates and settles everything
queued behind it, writes the charges, the ledger rows, the quota and the wallet in a handful of
statements, and commits. The lock is held for those statements only, never across other I/O.

A batch whose connection dies is written once more on a fresh connection, looking first for what is
charged already: a charge is unique on (tenant, kind, reference_id), so even a batch whose COMMIT was
lost in flight (and may have committed) is safe to write again; it then answers the first charges. A
connection that died is invalidated, never handed back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.db.faults import database_unavailable
from walletsvc.db.repositories.charge_store import ChargeStore, LedgerLine, LockedAccount
from walletsvc.db.repositories.usage import LockedWallet, UsageCharge
from walletsvc.domain.errors import (
    ConnectionLost,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    WalletError,
)
from walletsvc.domain.events import EventType, money
from walletsvc.domain.plans import current_period, settle_charge
from walletsvc.domain.rating import Rates, Rating, UsageKind, rate_call, rate_units
from walletsvc.request_effects import untracked
from walletsvc.services.auto_topup_trigger import cause_text, consider_auto_topup_raw
from walletsvc.services.events import record_event_raw
from walletsvc.services.low_balance import WalletAlerts, record_insufficient_funds_raw
from walletsvc.services.pricing import configured_rates

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
        """Each record answered on its own: a refusal of one does not stop the others. A database that
        failed any of them fails the whole call (DatabaseUnavailable): the caller retries all of it, and
        what was charged meanwhile is answered as the first charge."""
        results = await asyncio.gather(*(self.charge(r) for r in records), return_exceptions=True)
        answers: list[ChargeOutcome | WalletError] = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, WalletError):
                raise result
            if isinstance(result, DatabaseUnavailable):
                raise result
            answers.append(result)
        return answers

    async def _drain(self, tenant_id: str) -> None:
        # A task of its own, started from whichever request came first: what it does is not that
        # request's doing (request_effects).
        with untracked():
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
            outcomes = await self._write_once_more_if_lost(tenant_id, records)
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

    async def _write_once_more_if_lost(
        self, tenant_id: str, records: list[UsageRecord]
    ) -> list[ChargeOutcome | WalletError]:
        try:
            try:
                return await self._write(tenant_id, records)
            except _ChargedMeanwhile:
                # A retried reference: this time look for what was charged before.
                return await self._write(tenant_id, records, check_existing=True)
        except Exception as exc:
            lost = database_unavailable(exc)
            if not isinstance(lost, ConnectionLost):
                # Not the database's doing, or it cannot be reached: writing again at once would not help.
                if lost is None or lost is exc:
                    raise
                raise lost from exc
            log.warning("charge batch lost its connection; writing it again", extra={"size": len(records)})
        try:
            # Looking first: the lost batch may have committed (its COMMIT was in flight).
            return await self._write(tenant_id, records, check_existing=True)
        except Exception as exc:
            lost = database_unavailable(exc)
            if isinstance(lost, ConnectionLost):
                raise ConnectionLost(reached_server=lost.reached_server, retried=True) from exc
            if lost is None or lost is exc:
                raise
            raise lost from exc

    async def _write(
        self, tenant_id: str, records: list[UsageRecord], *, check_existing: bool = False
    ) -> list[ChargeOutcome | WalletError]:
        """Write one batch of one wallet in one transaction. Optimistic by default: a reference charged
        before is found by the insert itself (ON CONFLICT), which then starts over looking first."""
        async with self.db.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            conn = raw.driver_connection
            assert conn is not None  # an open pooled connection always has its asyncpg connection
            try:
                return await self._write_on(conn, tenant_id, records, check_existing=check_existing)
            except BaseException as exc:
                # SQLAlchemy never saw these statements, so it cannot tell that the connection died:
                # invalidate it here, or the pool would hand the dead connection to the next request. A
                # cancelled batch too: its statement may still be running on that connection.
                if not isinstance(exc, Exception) or database_unavailable(exc) is not None:
                    await connection.invalidate()
                raise

    async def _write_on(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        records: list[UsageRecord],
        *,
        check_existing: bool,
    ) -> list[ChargeOutcome | WalletError]:
        async with conn.transaction():  # the charge writer's unit of work: commits or rolls back here
            store = ChargeStore(conn)
            account = await store.lock(tenant_id)
            if account is None:
                raise NotFound("wallet", tenant_id)
            wallet = account.wallet
            rates = self._rates(account)
            quota = self._quota(account)
            quota_used = quota[0] if quota else 0
            quota_left = max(account.included_minutes * 60 - quota_used, 0) if account.plan_id else 0
            quota_changed = quota is not None and quota_used != account.quota_used_seconds

            keys = list(dict.fromkeys(r.key for r in records))
            existing = await store.existing(tenant_id, keys) if check_existing else {}
            call_ids = [r.reference_id for r in records if r.kind is UsageKind.CALL and r.key not in existing]
            holds = await store.settle_holds(tenant_id, call_ids) if call_ids and wallet.reserved > 0 else {}
            start_balance = wallet.balance
            now = datetime.now(UTC)
            today = now.date()
            alerts = WalletAlerts(wallet, now)  # decided in memory, after each charge, on the locked state
            if wallet.spent_day != today:
                wallet.spent_day, wallet.spent_today = today, 0

            planned: list[tuple[UsageRecord, dict[str, Any] | None, WalletError | None]] = []
            newly_flagged = False
            seen: set[tuple[str, str]] = set()
            for record in records:
                if record.key in existing or record.key in seen:
                    planned.append((record, None, None))
                    continue
                seen.add(record.key)
                try:
                    rating = (
                        rate_call(record.duration_seconds or 0, rates, quota_remaining_seconds=quota_left)
                        if record.kind is UsageKind.CALL
                        else rate_units(record.kind, record.quantity or 1, rates)
                    )
                except WalletError as exc:
                    planned.append((record, None, exc))
                    continue
                hold = holds.get(record.reference_id, 0) if record.kind is UsageKind.CALL else 0
                wallet.reserved -= hold
                settlement = settle_charge(rating.amount.amount, available_after_release=wallet.available)
                if rating.quota_seconds:
                    quota_left -= rating.quota_seconds
                    quota_used += rating.quota_seconds
                    quota_changed = True
                wallet.balance -= settlement.charged
                wallet.owed += settlement.owed
                wallet.spent_today += rating.amount.amount
                if settlement.owed:
                    newly_flagged = newly_flagged or not wallet.flagged
                    wallet.flagged = True
                alerts.observe(wallet, record.key)
                planned.append(
                    (record, _charge_row(record, rating, settlement.charged, settlement.owed, hold), None)
                )

            rows = [row for _, row, _ in planned if row is not None]
            inserted = (
                await store.insert_charges(tenant_id, wallet.currency, account.plan_id, rows) if rows else []
            )
            if len(inserted) != len(rows):
                raise _ChargedMeanwhile  # rolls the transaction back; the caller starts over
            new = {(c.kind.value, c.reference_id): c for c in inserted}
            lines = _ledger_lines(
                wallet,
                [new[(row["kind"], row["reference_id"])] for row in rows if row["charged"] > 0],
                start_balance,
            )
            alerts.store_on(wallet)  # written by the wallet UPDATE in finish: no statement of its own
            await store.finish(
                wallet,
                lines,
                quota=(quota_used, quota[1], quota[2]) if quota is not None and quota_changed else None,
                spent_day=today,
            )
            if newly_flagged:  # usage the wallet could not pay is owed: said once, in this transaction
                await record_event_raw(
                    conn,
                    EventType.WALLET_FLAGGED,
                    tenant_id,
                    {"reason": "usage_owed", "owed": money(wallet.owed, wallet.currency)},
                )
            # What could not be paid in full, and a threshold crossed: a statement each, only when there is one.
            await record_insufficient_funds_raw(conn, inserted)
            await alerts.record_raw(conn, wallet, new)
            # Below the auto top-up threshold: start one (unless one is in flight), in this transaction.
            await consider_auto_topup_raw(
                conn,
                tenant_id,
                cause=cause_text("charge", str(inserted[-1].id) if inserted else None),
                available=wallet.available,
                threshold=wallet.auto_topup_threshold,
                active=wallet.auto_topup_enabled,
                paused_until=wallet.auto_topup_paused_until,
                now=now,
            )

        by_key = {**existing, **new}
        outcomes: list[ChargeOutcome | WalletError] = []
        for record, row, error in planned:
            if error is not None:
                outcomes.append(error)
                continue
            outcomes.append(
                ChargeOutcome(
                    charge=by_key[record.key],
                    replayed=row is None,
                    balance_after=wallet.balance,
                    available_after=wallet.available,
                )
            )
        return outcomes

    def _rates(self, account: LockedAccount) -> Rates:
        if account.plan_id is not None and account.plan_rates is not None:
            return account.plan_rates
        if account.default_rates is not None:
            return account.default_rates
        return configured_rates(self.settings, account.wallet.currency)

    @staticmethod
    def _quota(account: LockedAccount) -> tuple[int, datetime, datetime] | None:
        """The subscription's quota used and period, rolled forward (quota back to 0) if it has ended."""
        if account.plan_id is None or account.period_start is None or account.period_end is None:
            return None
        start, end, moved = current_period(account.period_start, account.period_end, datetime.now(UTC))
        return (0 if moved else account.quota_used_seconds), start, end


class _ChargedMeanwhile(Exception):
    """A reference in the batch was charged by another process between our lock and our insert."""


def _charge_row(record: UsageRecord, rating: Rating, charged: int, owed: int, hold: int) -> dict[str, Any]:
    return {
        "kind": record.kind.value,
        "reference_id": record.reference_id,
        "quantity": rating.quantity,
        "duration_seconds": record.duration_seconds,
        "billable_seconds": rating.billable_seconds,
        "quota_seconds": rating.quota_seconds,
        "paid_seconds": rating.paid_seconds,
        "amount": rating.amount.amount,
        "charged": charged,
        "owed": owed,
        "hold_amount": hold,
        "created_by": record.actor,
    }


def _ledger_lines(wallet: LockedWallet, charges: list[UsageCharge], start_balance: int) -> list[LedgerLine]:
    """One `usage_charge` row per paid charge, chained in order from the balance the batch started at."""
    lines: list[LedgerLine] = []
    balance = start_balance
    for charge in charges:
        wallet.ledger_seq += 1
        lines.append(
            LedgerLine(
                seq=wallet.ledger_seq,
                amount=-charge.charged,
                balance_before=balance,
                balance_after=balance - charge.charged,
                reference_id=str(charge.id),
                description=describe(charge),
                actor=charge.created_by,
            )
        )
        balance -= charge.charged
    return lines


def describe(charge: UsageCharge) -> str:
    if charge.kind is UsageKind.CALL:
        return f"Call {charge.reference_id}: {charge.duration_seconds} s, {charge.paid_seconds} s paid"
    unit = {UsageKind.FAX: "page(s)", UsageKind.FILE_TRANSFER: "file(s)"}.get(charge.kind, "message(s)")
    return f"{charge.kind.value} {charge.reference_id}: {charge.quantity} {unit}"
