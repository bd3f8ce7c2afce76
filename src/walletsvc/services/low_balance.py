"""Low-balance alerts and `charge.insufficient_funds`, recorded in the transaction that moved the money.

The one place every change to a wallet's available balance (or its threshold) reports to; the rule itself
is domain/low_balance.py. Three ways in, all deciding on the wallet row locked by the caller's transaction,
so concurrent changes (many API processes, the worker) are decided one after the other and a crossing is
announced once:

- `note_balance_change(session, tenant_id, cause)`: after a service changed the balance through the ORM
  session (top-up, refund, adjustment, plan fee, ...). One extra statement (the wallet row is locked by
  the caller's change already), plus the writes when the state changes.
- `note_locked_wallet(session, wallet, cause)`: a service holding a `LockedWallet` it has just saved (call
  authorization, hold expiry). No extra statement unless the state changes.
- `crossing_events`: the charge writer's hot path, on its raw asyncpg connection. The rule is applied in
  memory by `decide_charges` (domain/charging.py) from the state the writer's lock returned, after each
  charge of the round; the state rides along in the writer's wallet UPDATE, and the round's events (these,
  `insufficient_funds_events`, ...) are recorded in one statement, only when there is one to record.

These three are the hooks every balance-lowering path already calls, with the locked wallet in hand: auto
top-up's trigger (issue 10: available below its own threshold, in the same transaction) belongs beside the
low-balance rule here, not in each path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.db.repositories.usage import UsageRepository
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.charging import ChargeKey, Crossing, LockedWallet, UsageCharge
from walletsvc.domain.errors import CurrencyMismatch, InvalidRequest
from walletsvc.domain.events import EventType, money
from walletsvc.domain.low_balance import AlertState, Cause, CauseType, Signal, evaluate
from walletsvc.services.auto_topup_trigger import cause_text, consider_auto_topup
from walletsvc.services.events import record_event

__all__ = [
    "Cause",
    "CauseType",
    "crossing_events",
    "insufficient_funds_events",
    "insufficient_funds_payload",
    "note_balance_change",
    "note_locked_wallet",
    "set_own_threshold",
    "set_threshold",
]

_EVENT_TYPES = {
    Signal.LOW: EventType.WALLET_LOW_BALANCE,
    Signal.RESOLVED: EventType.WALLET_LOW_BALANCE_RESOLVED,
}

w = t.wallets.c


def alert_payload(
    *,
    currency: str,
    balance: int,
    reserved: int,
    threshold: int,
    low_since: datetime | None,
    cause: Cause,
) -> dict[str, Any]:
    return {
        "available": money(balance - reserved, currency),
        "balance": money(balance, currency),
        "reserved": money(reserved, currency),
        "threshold": money(threshold, currency),
        "low_since": low_since.astimezone(UTC).isoformat() if low_since is not None else None,
        "cause": cause.as_payload(),
    }


async def note_balance_change(
    session: AsyncSession, tenant_id: str, cause: Cause, *, now: datetime | None = None
) -> Signal | None:
    """Evaluate the wallet as the caller's transaction has left it; record the event it calls for.
    Call it after the last write of the change (debts paid from a credit included)."""
    wallet = await UsageRepository(session).lock_wallet(tenant_id)
    return await note_locked_wallet(session, wallet, cause, now=now)


async def note_locked_wallet(
    session: AsyncSession, wallet: LockedWallet, cause: Cause, *, now: datetime | None = None
) -> Signal | None:
    """As note_balance_change, for a wallet the caller holds locked and has saved (`wallet` is kept up to
    date with the new state)."""
    await consider_auto_topup(  # auto top-up: a statement only when below its threshold
        session,
        wallet.tenant_id,
        cause=cause_text(cause.type.value, cause.id),
        available=wallet.available,
        threshold=wallet.auto_topup_threshold,
        active=wallet.auto_topup_enabled,
        paused_until=wallet.auto_topup_paused_until,
    )
    if wallet.low_balance_threshold <= 0 and wallet.low_balance_since is None:
        return None  # alerts off and no spell to end: the common case costs nothing
    signal = await _decide(
        session,
        wallet.tenant_id,
        AlertState(wallet.low_balance_since, wallet.low_balance_alerted_at),
        currency=wallet.currency,
        balance=wallet.balance,
        reserved=wallet.reserved,
        threshold=wallet.low_balance_threshold,
        cause=cause,
        now=now,
        wallet=wallet,
    )
    return signal


async def _decide(
    session: AsyncSession,
    tenant_id: str,
    state: AlertState,
    *,
    currency: str,
    balance: int,
    reserved: int,
    threshold: int,
    cause: Cause,
    now: datetime | None,
    wallet: LockedWallet | None = None,
) -> Signal | None:
    decision = evaluate(
        state, available=balance - reserved, threshold=threshold, now=now or datetime.now(UTC)
    )
    if decision.state != state:
        await session.execute(
            update(t.wallets)
            .where(w.tenant_id == tenant_id)
            .values(
                low_balance_since=decision.state.low_since, low_balance_alerted_at=decision.state.alerted_at
            )
        )
        if wallet is not None:
            wallet.low_balance_since = decision.state.low_since
            wallet.low_balance_alerted_at = decision.state.alerted_at
    if decision.signal is not None:
        spell_start = state.low_since if decision.signal is Signal.RESOLVED else decision.state.low_since
        await record_event(
            session,
            _EVENT_TYPES[decision.signal],
            tenant_id,
            alert_payload(
                currency=currency,
                balance=balance,
                reserved=reserved,
                threshold=threshold,
                low_since=spell_start,
                cause=cause,
            ),
        )
    return decision.signal


def crossing_events(
    wallet: LockedWallet, crossings: Sequence[Crossing], charges: Mapping[ChargeKey, UsageCharge]
) -> list[tuple[EventType, str, dict[str, Any]]]:
    """The charge writer's low-balance events (type, tenant, payload): decided by domain/charging.py after
    each charge of a round on the locked state, recorded inside its transaction (record_events_raw)."""
    events = []
    for crossing in crossings:
        charge = charges.get(crossing.key)
        cause = Cause(CauseType.CHARGE, str(charge.id) if charge is not None else None)
        payload = alert_payload(
            currency=wallet.currency,
            balance=crossing.balance,
            reserved=crossing.reserved,
            threshold=wallet.low_balance_threshold,
            low_since=crossing.low_since,
            cause=cause,
        )
        events.append((_EVENT_TYPES[crossing.signal], wallet.tenant_id, payload))
    return events


def insufficient_funds_payload(charge: UsageCharge) -> dict[str, Any]:
    c = charge.amount.currency
    return {
        "charge_id": str(charge.id),
        "kind": charge.kind.value,
        "reference_id": charge.reference_id,
        "amount": money(charge.amount.amount, c),
        "charged": money(charge.charged, c),
        "owed": money(charge.owed, c),
    }


def insufficient_funds_events(charges: Sequence[UsageCharge]) -> list[tuple[EventType, str, dict[str, Any]]]:
    """One `charge.insufficient_funds` (type, tenant, payload) per new charge not paid in full."""
    return [
        (EventType.CHARGE_INSUFFICIENT_FUNDS, charge.tenant_id, insufficient_funds_payload(charge))
        for charge in charges
        if charge.owed > 0
    ]


async def set_threshold(session: AsyncSession, tenant_id: str, threshold: int) -> None:
    """A tenant's new threshold (0: no alerts), evaluated at once: raising it over the available balance
    announces the wallet low, lowering it under the available balance ends the spell."""
    if threshold < 0:
        raise InvalidRequest("low_balance_threshold is a number of minor units, 0 or more (0 for none)")
    await WalletRepository(session).set_limits(tenant_id, low_balance_threshold=threshold)
    await note_balance_change(session, tenant_id, Cause(CauseType.THRESHOLD))


async def set_own_threshold(
    session: AsyncSession, tenant_id: str, threshold: int, *, currency: str | None = None
) -> None:
    """The owner's PUT /v1/wallet/low-balance-threshold: as set_threshold, the currency checked if named."""
    wallet = await WalletRepository(session).get(tenant_id, for_update=True)
    if currency is not None and currency != wallet.currency:
        raise CurrencyMismatch(expected=wallet.currency, got=currency)
    await set_threshold(session, tenant_id, threshold)
