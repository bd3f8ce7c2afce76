"""Charging usage: quota first, then the wallet, one ledger row per charge, exactly once per
(tenant, kind, reference id).

Wallets take hundreds of charges a second, one hot wallet or thousands at once. What is queued in this
process is therefore written in rounds, by a few writer tasks (CHARGE_WRITERS): a round takes what waits
for up to CHARGE_BATCH_WALLETS wallets (at most CHARGE_BATCH_SIZE records), locks those wallets in one
statement in tenant order, decides every record with the pure `decide_charges` (domain/charging.py),
writes the charges, ledger rows, holds, quota and wallets of all of them in one set-wise statement, runs
the hooks a wallet needs (a statement each, only when there is something to say), and commits. The locks
are held for those statements only, never across other I/O. A wallet is in one round at a time in this
process: what arrives for it meanwhile waits for the next round. Across processes the tenant order of
the lock keeps overlapping rounds from deadlocking.

Each record is answered on its own: an unknown wallet (404), a wallet with no rates, or a record that
cannot be rated refuses only its own records; a wallet whose rows the database refuses is written again
on its own, so the refusal is its records' alone.

A reference charged before (a telephony retry) is found by the insert itself (ON CONFLICT): the round is
rolled back and written again, looking first. A round whose connection dies is written once more on a
fresh connection, looking first for what is charged already: a charge is unique on (tenant, kind,
reference_id), so even a round whose COMMIT was lost in flight (and may have committed) is safe to write
again; it then answers the first charges. A writer keeps its pooled connection from one round to the
next while it has rounds to write, and for `linger_seconds` (50 ms) after its last one, waiting for more:
under load the queue runs dry between rounds for a moment only, and a writer that ended there handed its
connection back and the next request started another, a pool checkout and reset each time (at one client
that was a third of the server's CPU per charge). A connection that died is invalidated, never handed
back to the pool.

A busy wallet (one that had at least `_KNOWN_MIN_RECORDS` records in a round) that the writer charged
lately is known: the writer keeps what its last round left (the account after the charges, and the row
versions, `xmin`, of the wallet, its subscription, plan and currency defaults). Each next round of it,
however small, is decided on that and written in one statement without the lock (ChargeStore.write of
known writes: one round trip where the locked round takes four, which shortens every round of a hot
wallet and with it the wait of each charge in it), and the statement writes the wallet only where every
one of those rows is still that version: what changed it meanwhile (a top-up, a hold, another process's
charge, a new plan price) leaves it untouched, and it is charged again at once under the lock, and under
the lock for a second after (`contended_seconds`), so that two processes charging one wallet do not each
spend a statement on the other's change. A round that settles holds, writes quota, owes usage, crosses
the low-balance threshold or is due an auto top-up is written under the lock: what its hooks say is said
in its transaction.
Wallets with a record or two each (spread over many wallets) share the locked round, whose lock and
commit are paid once for all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Container, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from walletsvc.db.engine import Database
from walletsvc.db.faults import database_unavailable
from walletsvc.db.repositories.charge_store import ChargeStore, LockedAccount, RoundWrites, Written
from walletsvc.domain.charging import (
    ChargeKey,
    ChargeOutcome,
    Decisions,
    UsageCharge,
    UsageRecord,
    decide_charges,
)
from walletsvc.domain.errors import ConnectionLost, DatabaseUnavailable, NotFound, WalletError
from walletsvc.domain.events import EventType, money
from walletsvc.domain.rating import Rates, UsageKind
from walletsvc.request_effects import untracked
from walletsvc.services.auto_topup_trigger import auto_topup_due, cause_text, consider_auto_topup_raw
from walletsvc.services.events import record_events_raw
from walletsvc.services.low_balance import crossing_events, insufficient_funds_events
from walletsvc.services.pricing import PricingDefaults, configured_rates

__all__ = ["ChargeLimits", "ChargeOutcome", "ChargeWriter", "UsageRecord"]

log = logging.getLogger(__name__)

Answer = ChargeOutcome | Exception  # a record's answer: its charge, or why not
WalletBatch = tuple[str, list[UsageRecord]]  # one wallet's records in a round
_Waiter = tuple[UsageRecord, asyncio.Future[ChargeOutcome]]
_NOTHING_BEFORE: frozenset[ChargeKey] = frozenset()
_NO_HOLDS: dict[str, int] = {}
_KNOWN_MIN_RECORDS = 4  # records of one wallet in a round for the writer to keep what it left
_KNOWN_WALLETS = 20_000  # wallets whose last round the writer keeps (the least recently charged go)


class ChargeLimits(PricingDefaults, Protocol):
    """What the charge writer reads from the settings: the pricing defaults (DEFAULT_RATES, for wallets
    with no plan and no stored defaults), CHARGE_BATCH_SIZE (records in one transaction),
    CHARGE_BATCH_WALLETS (wallets in one transaction) and CHARGE_WRITERS (transactions at once)."""

    @property
    def charge_batch_size(self) -> int: ...

    @property
    def charge_batch_wallets(self) -> int: ...

    @property
    def charge_writers(self) -> int: ...


class ChargeWriter:
    """Writes what is queued in this process in rounds of many wallets, one round per wallet at a time."""

    contended_seconds = 1.0  # a known wallet found changed by something else is charged locked this long
    linger_seconds = 0.05  # a writer with nothing left to take waits this long for more (`_linger`)

    def __init__(self, db: Database, limits: ChargeLimits) -> None:
        self.db = db
        self.limits = limits
        self._pending: dict[str, list[_Waiter]] = {}  # oldest wallet first
        self._busy: set[str] = set()  # wallets in a round now
        self._writers = 0  # writer tasks running
        self._tasks: set[asyncio.Task[None]] = set()
        self._fallback: dict[str, tuple[object, Rates]] = {}
        self._known: OrderedDict[str, LockedAccount] = OrderedDict()  # what each wallet's last round left
        self._contended: dict[str, float] = {}  # tenant -> until when (monotonic) it is charged locked
        self._sleepers: list[asyncio.Future[bool]] = []  # writers waiting for more (`_linger`)
        self._closing = False  # idle() is waiting for the writers to end
        # Wallet rounds written without the lock, and those found changed meanwhile (charged locked).
        self.known_rounds = 0
        self.known_misses = 0

    async def charge(self, record: UsageRecord) -> ChargeOutcome:
        [future] = self._enqueue([record])
        return await future

    async def charge_many(self, records: Sequence[UsageRecord]) -> list[ChargeOutcome | WalletError]:
        """Each record answered on its own: a refusal of one does not stop the others. A database that
        failed any of them fails the whole call (DatabaseUnavailable): the caller retries all of it, and
        what was charged meanwhile is answered as the first charge."""
        results = await asyncio.gather(*self._enqueue(records), return_exceptions=True)
        answers: list[ChargeOutcome | WalletError] = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, WalletError):
                raise result
            if isinstance(result, DatabaseUnavailable):
                raise result
            answers.append(result)
        return answers

    async def idle(self) -> None:
        """Wait until the writer tasks have ended, their connections back in the pool: a writer waiting
        for more to write (`_linger`) stops waiting."""
        self._closing = True
        try:
            while self._tasks:
                sleepers, self._sleepers = self._sleepers, []
                for woken in sleepers:
                    if not woken.done():
                        woken.set_result(False)
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._closing = False

    def _enqueue(self, records: Sequence[UsageRecord]) -> list[asyncio.Future[ChargeOutcome]]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[ChargeOutcome]] = []
        for record in records:
            future: asyncio.Future[ChargeOutcome] = loop.create_future()
            self._pending.setdefault(record.tenant_id, []).append((record, future))
            futures.append(future)
        self._start_writers(len({r.tenant_id for r in records if r.tenant_id not in self._busy}))
        return futures

    def _start_writers(self, wanted: int) -> None:
        while wanted > 0 and self._sleepers:  # a writer waiting for more takes it, the latest first
            woken = self._sleepers.pop()
            if not woken.done():  # (done: its task was cancelled)
                woken.set_result(True)
                wanted -= 1
        for _ in range(min(wanted, self.limits.charge_writers - self._writers)):
            self._writers += 1
            task = asyncio.create_task(self._write_rounds())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[str, list[_Waiter]]]:
        """The next round: the oldest waiting wallets not in a round, within the limits. One round takes
        all it may (a transaction's cost is mostly its own, not its records'); what it leaves gets a writer
        of its own, up to CHARGE_WRITERS, and what arrives meanwhile goes to the next free one."""
        free = [tenant_id for tenant_id in self._pending if tenant_id not in self._busy]
        room = self.limits.charge_batch_size
        taken: list[tuple[str, list[_Waiter]]] = []
        for tenant_id in free:
            queue = self._pending[tenant_id]
            part = queue[:room]
            if len(part) == len(queue):
                del self._pending[tenant_id]
            else:
                del queue[: len(part)]
            self._busy.add(tenant_id)
            taken.append((tenant_id, part))
            room -= len(part)
            if room <= 0 or len(taken) >= self.limits.charge_batch_wallets:
                break
        self._start_writers(len(free) - len(taken))  # the rest, side by side
        return taken

    async def _write_rounds(self) -> None:
        # A task of its own, started from whichever request came first: what it does is not that
        # request's doing (request_effects).
        with untracked():
            lease = _Lease(self.db)
            try:
                waited = False  # the last wait for more ran out: a writer that then finds none ends
                while True:
                    taken = self._take()
                    if not taken:
                        if waited:
                            break  # no await between the empty take and `_writers -= 1`
                        waited = not await self._linger()
                        continue
                    waited = False
                    try:
                        await self._write_settling(lease, taken)
                    finally:
                        self._busy.difference_update(tenant_id for tenant_id, _ in taken)
            finally:
                self._writers -= 1
                await lease.release()

    async def _linger(self) -> bool:
        """Wait up to `linger_seconds` for more to write, keeping the writer's connection: True when
        `_start_writers` handed this writer new work, False when the wait ran out or idle() ends it."""
        if self._closing or self.linger_seconds <= 0:
            return False
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[bool] = loop.create_future()
        self._sleepers.append(woken)
        timer = loop.call_later(self.linger_seconds, self._give_up, woken)
        try:
            return await woken
        finally:
            timer.cancel()
            if woken in self._sleepers:  # cancelled
                self._sleepers.remove(woken)

    def _give_up(self, woken: asyncio.Future[bool]) -> None:
        """The wait ran out: the writer leaves the sleepers at once, so that what arrives before it
        resumes goes to another (it still looks once more before it ends: `_write_rounds`)."""
        if woken in self._sleepers:
            self._sleepers.remove(woken)
            if not woken.done():  # (done: its task was cancelled)
                woken.set_result(False)

    async def _write_settling(self, lease: _Lease, taken: list[tuple[str, list[_Waiter]]]) -> None:
        batches = [(tenant_id, [record for record, _ in waiters]) for tenant_id, waiters in taken]
        try:
            known = await self._write_known(lease, batches)
            if known:
                rest = [batch for batch in batches if batch[0] not in known]
                locked = iter(await self._write_once_more_if_lost(lease, rest) if rest else [])
                answers = [known[t] if t in known else next(locked) for t, _ in batches]
            else:
                answers = await self._write_once_more_if_lost(lease, batches)
        except BaseException as exc:  # the writer must answer every waiter, whatever happened
            if isinstance(exc, Exception) and not isinstance(exc, WalletError):
                log.exception("charge batch failed", extra={"wallets": len(batches)})
            for _, waiters in taken:
                for _, future in waiters:
                    if not future.done():
                        if isinstance(exc, Exception):
                            future.set_exception(exc)
                        else:
                            future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for (_, waiters), wallet_answers in zip(taken, answers, strict=True):
            for (_, future), answer in zip(waiters, wallet_answers, strict=True):
                if not future.done():
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)

    async def _write_known(self, lease: _Lease, batches: list[WalletBatch]) -> dict[str, list[Answer]]:
        """Write, in one statement without the lock, the busy known wallets of the round whose round
        needs nothing but its charges, ledger rows and wallet written; answer those written (by
        tenant). The others, and any the statement did not write, are for the locked round."""
        now = datetime.now(UTC)
        clock = time.monotonic()
        if len(self._contended) > _KNOWN_WALLETS:
            self._contended = {t: until for t, until in self._contended.items() if until > clock}
        plans: list[tuple[LockedAccount, Decisions]] = []
        for tenant_id, records in batches:
            # Every round of a known wallet, small ones too: in a closed loop a hot wallet's rounds
            # alternate, one taking what waited while the last was written, the next the one or two
            # records that came in since; under the lock, those small rounds (half the rounds of one
            # wallet at 32 clients) held the wallet for four round trips each.
            account = self._known.get(tenant_id)
            if account is None or self._contended.get(tenant_id, 0.0) > clock:
                continue
            self._contended.pop(tenant_id, None)
            if account.wallet.reserved > 0 and any(r.kind is UsageKind.CALL for r in records):
                continue  # a call may settle a hold: its hold is read under the lock
            try:
                decided = self._decide(account, records, _NO_HOLDS, _NOTHING_BEFORE, now)
            except WalletError:
                continue
            if _plain(decided, now):
                plans.append((account, decided))
        if not plans:
            return {}
        # In tenant order, as the locked round locks: two processes' statements never deadlock.
        plans.sort(key=lambda plan: plan[0].wallet.tenant_id)
        writes = RoundWrites(known=True)
        for account, decided in plans:
            writes.add(account, decided)
        try:
            written = await ChargeStore(await lease.generic_connection()).write(writes)
        except BaseException as exc:
            # Nothing of the statement is written: its wallets go to the locked round, which looks
            # for what is charged already where the connection was lost (it may have committed).
            for account, _ in plans:
                self._forget(account.wallet.tenant_id, clock)
            lost = database_unavailable(exc) is not None  # a fault of the database, not of the code
            if not isinstance(exc, Exception) or lost:
                await lease.invalidate()
            if not isinstance(exc, Exception):
                raise
            if lost:
                log.warning("charge round of known wallets lost its connection; writing it under the lock")
            elif not isinstance(exc, asyncpg.UniqueViolationError):  # a retried reference is expected
                log.warning("charge round of known wallets failed; writing it under the lock", exc_info=exc)
            return {}
        answers: dict[str, list[Answer]] = {}
        for account, decided in plans:
            tenant_id = account.wallet.tenant_id
            version = written.wallets.get(tenant_id)
            if version is None:  # changed meanwhile: under the lock, now and for a while
                self.known_misses += 1
                self._forget(tenant_id, clock)
                continue
            self.known_rounds += 1
            self._remember(account, decided, version)
            answers[tenant_id] = _answers(decided, _new_charges(account, decided, written.charges), {})
        return answers

    def _remember(self, account: LockedAccount, decided: Decisions, version: str | None) -> None:
        """Keep what a committed round of a busy wallet left for its next round (None: forget it). A
        wallet known already stays known through a round of a record or two between busy ones (a hot
        wallet's queue is drained in rounds of all sizes); one never busy is not kept."""
        tenant_id = account.wallet.tenant_id
        busy = len(decided.decisions) >= _KNOWN_MIN_RECORDS or tenant_id in self._known
        if version is None or not busy:
            self._known.pop(tenant_id, None)
            return
        self._known[tenant_id] = account.after(decided, version)
        self._known.move_to_end(tenant_id)
        while len(self._known) > _KNOWN_WALLETS:
            self._known.popitem(last=False)

    def _forget(self, tenant_id: str, clock: float) -> None:
        """What is kept of the wallet cannot be decided on (it changed, or its statement failed):
        forget it, and charge it under the lock for `contended_seconds`."""
        self._known.pop(tenant_id, None)
        self._contended[tenant_id] = clock + self.contended_seconds

    async def _write_once_more_if_lost(self, lease: _Lease, batches: list[WalletBatch]) -> list[list[Answer]]:
        try:
            try:
                return await self._write(lease, batches)
            except _ChargedMeanwhile:
                # A retried reference: this time look for what was charged before.
                return await self._write(lease, batches, check_existing=True)
        except Exception as exc:
            lost = database_unavailable(exc)
            if not isinstance(lost, ConnectionLost):
                if lost is None and len(batches) > 1 and isinstance(exc, asyncpg.PostgresError):
                    # The database refused some wallet's rows: write each wallet on its own, so that the
                    # refusal answers only that wallet's records.
                    log.warning("charge round refused; writing its wallets one by one", exc_info=exc)
                    return [await self._write_alone(lease, batch) for batch in batches]
                # Not the database's doing, or it cannot be reached: writing again at once would not help.
                if lost is None or lost is exc:
                    raise
                raise lost from exc
            log.warning("charge batch lost its connection; writing it again", extra={"wallets": len(batches)})
        try:
            # Looking first: the lost round may have committed (its COMMIT was in flight).
            return await self._write(lease, batches, check_existing=True)
        except Exception as exc:
            lost = database_unavailable(exc)
            if isinstance(lost, ConnectionLost):
                raise ConnectionLost(reached_server=lost.reached_server, retried=True) from exc
            if lost is None or lost is exc:
                raise
            raise lost from exc

    async def _write_alone(self, lease: _Lease, batch: WalletBatch) -> list[Answer]:
        try:
            [answers] = await self._write_once_more_if_lost(lease, [batch])
        except Exception as exc:
            if database_unavailable(exc) is not None:
                raise  # the database, not this wallet: the whole round fails as one
            return [exc] * len(batch[1])
        return answers

    async def _write(
        self, lease: _Lease, batches: list[WalletBatch], *, check_existing: bool = False
    ) -> list[list[Answer]]:
        """Write one round in one transaction, on the writer's connection. Optimistic by default: a
        reference charged before is found by the insert itself (ON CONFLICT), which then starts over
        looking first."""
        conn = await lease.connection()
        try:
            return await self._write_on(conn, batches, check_existing=check_existing)
        except BaseException as exc:
            # SQLAlchemy never saw these statements, so it cannot tell that the connection died:
            # invalidate it here, or the pool would hand the dead connection to the next request. A
            # cancelled round too: its statement may still be running on that connection.
            if not isinstance(exc, Exception) or database_unavailable(exc) is not None:
                await lease.invalidate()
            raise

    async def _write_on(
        self, conn: asyncpg.Connection, batches: list[WalletBatch], *, check_existing: bool
    ) -> list[list[Answer]]:
        now = datetime.now(UTC)
        store = ChargeStore(conn)
        async with store.transaction():  # the charge writer's unit of work: commits or rolls back here
            accounts = await store.lock([tenant_id for tenant_id, _ in batches])
            existing: dict[tuple[str, ChargeKey], UsageCharge] = {}
            if check_existing:
                keys = {
                    (tenant_id, *record.key): None
                    for tenant_id, records in batches
                    if tenant_id in accounts
                    for record in records
                }
                existing = await store.existing(list(keys))
            calls = [
                (tenant_id, record.reference_id)
                for tenant_id, records in batches
                if tenant_id in accounts and accounts[tenant_id].wallet.reserved > 0
                for record in records
                if record.kind is UsageKind.CALL and (tenant_id, record.key) not in existing
            ]
            holds = await store.active_holds(calls) if calls else {}

            charged_before: dict[str, set[ChargeKey]] = {}
            for tenant_id, charged in existing:
                charged_before.setdefault(tenant_id, set()).add(charged)
            plans: list[tuple[LockedAccount, Decisions] | WalletError] = []
            writes = RoundWrites()
            for tenant_id, records in batches:
                account = accounts.get(tenant_id)
                if account is None:
                    plans.append(NotFound("wallet", tenant_id))
                    continue
                try:
                    decided = self._decide(
                        account,
                        records,
                        holds.get(tenant_id, _NO_HOLDS),
                        charged_before.get(tenant_id, _NOTHING_BEFORE),
                        now,
                    )
                except WalletError as exc:  # no rates for it
                    plans.append(exc)
                    continue
                writes.add(account, decided)
                plans.append((account, decided))

            written = await store.write(writes) if not writes.empty else Written({}, {})
            if len(written.charges) != writes.expected_charges:
                raise _ChargedMeanwhile  # rolls the transaction back; the caller starts over
            new: dict[tuple[str, ChargeKey], UsageCharge] = {}
            for plan in plans:
                if not isinstance(plan, WalletError):
                    new |= _new_charges(*plan, written.charges)
            events: list[tuple[EventType, str, dict[str, Any]]] = []
            kept: list[tuple[LockedAccount, Decisions, str | None]] = []
            for plan in plans:
                if not isinstance(plan, WalletError):
                    account, decided = plan
                    events += await self._hooks(conn, decided, new, now)
                    # Known to the next round unless this one wrote what the wallet's version cannot
                    # tell: the quota (the subscription's version moved), or the auto top-up its hooks
                    # started (a second write of the wallet row in this transaction, the same xmin).
                    wallet = decided.wallet
                    version: str | None = written.wallets.get(wallet.tenant_id, account.versions.wallet)
                    if decided.quota_changed or auto_topup_due(wallet, now):
                        version = None
                    kept.append((account, decided, version))
            await record_events_raw(conn, events)  # the whole round's events: one statement, if any
        for account, decided, version in kept:  # committed
            self._remember(account, decided, version)

        answers: list[list[Answer]] = []
        for (_, records), plan in zip(batches, plans, strict=True):
            if isinstance(plan, WalletError):
                answers.append([plan] * len(records))
            else:
                answers.append(_answers(plan[1], new, existing))
        return answers

    async def _hooks(
        self,
        conn: asyncpg.Connection,
        decided: Decisions,
        new: Mapping[tuple[str, ChargeKey], UsageCharge],
        now: datetime,
    ) -> list[tuple[EventType, str, dict[str, Any]]]:
        """What one wallet's charges call for, in the round's transaction: the events to record (the
        caller records the round's in one statement) and the auto top-up trigger (a statement only when
        it is due)."""
        wallet = decided.wallet
        tenant_id = wallet.tenant_id
        charges = {d.record.key: new[(tenant_id, d.record.key)] for d in decided.decisions if d.is_new}
        events: list[tuple[EventType, str, dict[str, Any]]] = []
        if decided.newly_flagged:  # usage the wallet could not pay is owed: said once, in this transaction
            payload = {"reason": "usage_owed", "owed": money(wallet.owed, wallet.currency)}
            events.append((EventType.WALLET_FLAGGED, tenant_id, payload))
        events += insufficient_funds_events([charges[d.record.key] for d in decided.short])
        events += crossing_events(wallet, decided.crossings, charges)
        # Below the auto top-up threshold: start one (unless one is in flight), in this transaction.
        last = next(reversed(charges.values()), None)
        await consider_auto_topup_raw(
            conn, wallet, cause=cause_text("charge", str(last.id) if last is not None else None), now=now
        )
        return events

    def _decide(
        self,
        account: LockedAccount,
        records: Sequence[UsageRecord],
        holds: Mapping[str, int],
        charged_before: Container[ChargeKey],
        now: datetime,
    ) -> Decisions:
        """decide_charges on this account at the rates that apply to it (WalletError: none do)."""
        return decide_charges(
            account.wallet,
            records,
            rates=self._rates(account),
            quota=account.quota,
            holds=holds,
            charged_before=charged_before,
            now=now,
        )

    def _rates(self, account: LockedAccount) -> Rates:
        if account.plan_id is not None and account.plan_rates is not None:
            return account.plan_rates
        if account.default_rates is not None:
            return account.default_rates
        currency = account.wallet.currency
        configured = self.limits.default_rates.get(currency)
        cached = self._fallback.get(currency)
        if cached is not None and cached[0] is configured:
            return cached[1]
        rates = configured_rates(self.limits, currency)
        self._fallback[currency] = (configured, rates)
        return rates


def _plain(decided: Decisions, now: datetime) -> bool:
    """Whether a wallet's round needs nothing written but its charges, ledger rows and wallet:
    something new charged, paid in full, no hold settled, no quota written, no low-balance crossing,
    no auto top-up due."""
    return (
        any(d.is_new for d in decided.decisions)
        and not decided.newly_flagged
        and not decided.crossings
        and not decided.holds_released
        and not decided.quota_changed
        and not decided.short
        and not auto_topup_due(decided.wallet, now)
    )


def _new_charges(
    account: LockedAccount,
    decided: Decisions,
    written: Mapping[tuple[str, ChargeKey], tuple[int, datetime]],
) -> dict[tuple[str, ChargeKey], UsageCharge]:
    """The new charges of one wallet's round, as written (the database gave their ids and times)."""
    tenant_id = account.wallet.tenant_id
    new: dict[tuple[str, ChargeKey], UsageCharge] = {}
    for d in decided.decisions:
        if d.is_new:
            key = (tenant_id, d.record.key)
            charge_id, created_at = written[key]
            new[key] = d.charge(id=charge_id, plan_id=account.plan_id, created_at=created_at)
    return new


def _answers(
    decided: Decisions,
    new: Mapping[tuple[str, ChargeKey], UsageCharge],
    existing: Mapping[tuple[str, ChargeKey], UsageCharge],
) -> list[Answer]:
    """Each record's answer: its error, or its charge (new, or the one charged before) and balance."""
    tenant_id = decided.wallet.tenant_id
    answers: list[Answer] = []
    for d in decided.decisions:
        if d.error is not None:
            answers.append(d.error)
            continue
        found = (tenant_id, d.record.key)
        answers.append(
            ChargeOutcome(
                charge=new[found] if found in new else existing[found],
                replayed=d.replayed,
                balance_after=d.balance_after,
                available_after=d.available_after,
            )
        )
    return answers


class _Lease:
    """A writer task's pooled connection, kept from one round to the next while it has rounds to write
    (a checkout and a reset per round cost more than a round's own Python), handed back to the pool when
    the task has nothing left to take, and invalidated (never handed back) when a round failed on it."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._held: AsyncConnection | None = None
        self._conn: asyncpg.Connection | None = None
        self._generic = False  # the connection plans generically (ChargeStore.plan_generically)

    async def connection(self) -> asyncpg.Connection:
        if self._conn is not None and self._conn.is_closed():
            # Ended while the writer waited for more (pg_terminate_backend, a restart): a fresh one,
            # before a round is spent on it. (Free: asyncpg knows without a round trip.)
            await self.invalidate()
        if self._conn is None:
            held = await self._db.engine.connect()
            try:
                raw = await held.get_raw_connection()
            except BaseException:
                await held.close()
                raise
            conn = raw.driver_connection
            assert conn is not None  # an open pooled connection always has its asyncpg connection
            self._held, self._conn = held, conn
        return self._conn

    async def generic_connection(self) -> asyncpg.Connection:
        """The connection, planning generically until it is released: for the known wallets'
        statement, which runs outside a transaction (a locked round sets it for its own)."""
        conn = await self.connection()
        if not self._generic:
            await ChargeStore(conn).plan_generically()
            self._generic = True
        return conn

    async def invalidate(self) -> None:
        held, self._held, self._conn, self._generic = self._held, None, None, False
        if held is not None:
            try:
                await held.invalidate()
            finally:
                await held.close()

    async def release(self) -> None:
        held, conn, generic = self._held, self._conn, self._generic
        self._held, self._conn, self._generic = None, None, False
        if held is None:
            return
        try:
            if generic and conn is not None:
                await ChargeStore(conn).plan_by_default()  # back to the pool as it came
        except BaseException as exc:
            await held.invalidate()  # not as it came: a fresh connection takes its place
            if not isinstance(exc, Exception):
                raise
        finally:
            await held.close()


class _ChargedMeanwhile(Exception):
    """A reference in the round was charged before our insert (a retry): start over looking first."""
