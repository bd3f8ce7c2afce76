"""Refunds of top-ups. A refund is an intent first: recorded, with the money it will take held on the
wallet (so that charges landing meanwhile cannot spend it), and committed before the provider hears of
it, under an idempotency key derived from its id. The wallet is debited once, whichever of the
provider's API answer, its refund webhook or `walletsvc reconcile` lands first."""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.refunds import RefundRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.errors import (
    Conflict,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidPayment,
    InvalidRequest,
    NotFound,
    ProviderNotConfigured,
    ProviderUnavailable,
)
from walletsvc.domain.events import EventType, money
from walletsvc.domain.ledger import CounterAccount, EntryRequest, EntryType
from walletsvc.domain.money import Money
from walletsvc.domain.topups import Topup, TopupRefund, TopupStatus
from walletsvc.providers.base import PaymentGateway, RefundResult, RefundState
from walletsvc.services.documents import issue_credit_note
from walletsvc.services.events import record_event
from walletsvc.services.gateways import Gateways
from walletsvc.services.intents import IntentBoundary, intent_id
from walletsvc.services.low_balance import Cause, CauseType, note_balance_change
from walletsvc.services.topups import COUNTER_ACCOUNTS

log = logging.getLogger(__name__)

# Refunds whose money is promised but not yet debited: they count against what may still be refunded.
_OPEN = ("pending", "flagged")


async def _promised_total(refunds: RefundRepository, topup: Topup) -> int:
    """Money promised to refunds that are not yet debited (the provider has not confirmed them)."""
    return sum(
        r.amount.amount
        for r in await refunds.for_topup(topup.tenant_id, topup.id)
        if r.status in _OPEN and not r.debited
    )


def bonus_share(bonus: int, credited: int, refunded: int) -> int:
    """How much of a top-up's bonus goes with `refunded` of its `credited` amount: in proportion, rounded
    down, so that refunding it all takes back exactly the whole bonus."""
    return 0 if credited <= 0 else bonus * refunded // credited


def bonus_hold(bonus: int, credited: int, refunding: int) -> int:
    """The most of the bonus that refunding `refunding` can take back, whatever order the top-up's
    refunds are debited in: bonus_share(x + r) - bonus_share(x) never exceeds ceil(bonus * r / credited)."""
    return 0 if credited <= 0 else min(bonus, -(-bonus * refunding // credited))


async def refund_topup(
    session: AsyncSession,
    gateways: Gateways,
    topup_id: str,
    *,
    amount: int | None,
    reason: str,
    force: bool,
    actor: str,
    intent: IntentBoundary,
) -> TopupRefund:
    """Refund a top-up to where it came from: record and commit the intent, then ask the provider.
    Run again with the same intent seed (a retried request), it resumes the same refund."""
    topups = TopupRepository(session)
    tenant_id = await topups.locate_any(topup_id)
    if tenant_id is None:
        raise NotFound("top-up", topup_id)
    gateway = gateways.get((await topups.get(tenant_id, topup_id)).provider)  # refuses before any intent
    refund = await _record_intent(
        session, tenant_id, topup_id, amount=amount, reason=reason, force=force, actor=actor, intent=intent
    )
    if refund.status != "pending" or refund.debited:
        return refund  # a resumed request whose refund the provider already settled
    topup = await topups.get(tenant_id, topup_id)
    try:
        result = await _send(gateway, topup, refund)
    except ProviderUnavailable as exc:
        await topups.add_event(tenant_id, topup_id, "refund_pending", source="api", detail=exc.detail)
        exc.keep_changes = True  # a retry or `walletsvc reconcile` sends it again with the same key
        raise
    except (InvalidPayment, ProviderNotConfigured, NotFound) as exc:
        locked = await topups.get(tenant_id, topup_id, for_update=True)
        await _refund_failed(session, locked, refund, source="api", reason=exc.detail)
        exc.keep_changes = True
        raise
    locked = await topups.get(tenant_id, topup_id, for_update=True)
    return await apply_refund_result(session, locked, refund, result, source="api")


async def _record_intent(
    session: AsyncSession,
    tenant_id: str,
    topup_id: str,
    *,
    amount: int | None,
    reason: str,
    force: bool,
    actor: str,
    intent: IntentBoundary,
) -> TopupRefund:
    topups = TopupRepository(session)
    refunds = RefundRepository(session)
    refund_id = intent_id("rf", intent.seed, topup_id)
    topup = await topups.get(tenant_id, topup_id, for_update=True)
    if intent.seed is not None:
        existing = await refunds.find(tenant_id, refund_id=refund_id, provider_refund_id=None)
        if existing is not None:
            same = (
                existing.topup_id == topup_id
                and existing.reason == reason
                and existing.forced == force
                and (amount is None or amount == existing.amount.amount)
            )
            if not same:
                raise IdempotencyKeyReused("this Idempotency-Key was used with a different refund")
            return existing
    if topup.status is not TopupStatus.SUCCEEDED or topup.credited is None or not topup.provider_payment_id:
        raise Conflict("only a top-up that succeeded can be refunded")
    refundable = topup.refundable - await _promised_total(refunds, topup)
    wanted = refundable if amount is None else amount
    if wanted <= 0:
        raise Conflict("nothing of this top-up is left to refund")
    if wanted > refundable:
        raise InvalidRequest(
            f"at most {Money(refundable, topup.amount.currency).format()} of this top-up can still be refunded"
        )
    needed = wanted + (
        0 if topup.bonus is None else bonus_hold(topup.bonus.amount, topup.credited.amount, wanted)
    )
    held = 0
    if not force:
        # The tenant may have spent part of this top-up: refunding it would hand back money used for
        # calls. Holding it now, in one conditional statement, also keeps charges landing while the
        # provider is asked from spending it.
        await WalletRepository(session).reserve(tenant_id, needed)
        held = needed
    refund = await refunds.add(
        refund_id=refund_id,
        tenant_id=tenant_id,
        topup_id=topup_id,
        amount=Money(wanted, topup.amount.currency),
        reason=reason,
        forced=force,
        created_by=actor,
        held=held,
    )
    await topups.add_event(
        tenant_id,
        topup_id,
        "refund_requested",
        source="api",
        detail=f"{refund.id}: {refund.amount.format()}" + (f", {held} held" if held else ", forced"),
    )
    if held:  # the hold lowers the available balance, in the transaction the intent commits
        await note_balance_change(session, tenant_id, Cause(CauseType.TOPUP_REFUND, refund.id))
    await intent.commit()
    return refund


async def _send(gateway: PaymentGateway, topup: Topup, refund: TopupRefund) -> RefundResult:
    """Ask the provider for the refund under its id, which is its idempotency key: a repeat is a replay."""
    return await gateway.refund(
        payment_id=topup.provider_payment_id or "",
        amount=refund.amount,
        refund_id=refund.id,
        topup_id=topup.id,
        tenant_id=topup.tenant_id,
        reason=refund.reason,
    )


async def resume_refund(
    session: AsyncSession, gateways: Gateways, refund: TopupRefund, *, source: str
) -> TopupRefund:
    """Ask the provider again about a pending refund, under the same idempotency key (a replay for the
    provider, never a second refund), and apply its answer. Used by `walletsvc reconcile`."""
    topups = TopupRepository(session)
    topup = await topups.get(refund.tenant_id, refund.topup_id)
    if topup.provider_payment_id is None:
        return refund
    try:
        result = await _send(gateways.get(topup.provider), topup, refund)
    except (InvalidPayment, NotFound) as exc:
        locked = await topups.get(refund.tenant_id, refund.topup_id, for_update=True)
        return await _refund_failed(session, locked, refund, source=source, reason=exc.detail)
    locked = await topups.get(refund.tenant_id, refund.topup_id, for_update=True)
    return await apply_refund_result(session, locked, refund, result, source=source)


async def apply_refund_result(
    session: AsyncSession, topup: Topup, refund: TopupRefund, result: RefundResult, *, source: str
) -> TopupRefund:
    """What the provider said of a refund, applied (the caller holds the top-up's row lock): accepted
    (done or on its way) debits the wallet once; failed releases the hold, and credits back whatever
    was already debited; an amount other than the one asked for moves nothing and is flagged."""
    refunds = RefundRepository(session)
    current = await refunds.get(topup.tenant_id, refund.id)
    if result.state is RefundState.FAILED:
        return await _refund_failed(session, topup, current, source=source)
    if current.status == "flagged":
        return current
    if result.amount != current.amount and not current.debited:
        return await _flag(session, topup, current, result, source=source)
    current = await refunds.update(
        topup.tenant_id,
        current.id,
        provider_refund_id=result.refund_id,
        status="succeeded" if result.state is RefundState.SUCCEEDED else current.status,
    )
    return await debit_refund(session, topup, current, source=source)


async def _flag(
    session: AsyncSession, topup: Topup, refund: TopupRefund, result: RefundResult, *, source: str
) -> TopupRefund:
    """The provider reports a refund of another amount than walletsvc asked for: nothing is debited, the
    hold stays (the money may have left), and the refund waits for someone to look at it."""
    reason = f"the provider reported {result.amount.format()} for a refund of {refund.amount.format()}"
    log.warning("refund flagged for review", extra={"topup_id": topup.id, "refund_id": refund.id})
    await TopupRepository(session).add_event(
        topup.tenant_id, topup.id, "refund_flagged", source=source, detail=f"{refund.id}: {reason}"
    )
    return await RefundRepository(session).update(
        topup.tenant_id,
        refund.id,
        status="flagged",
        failure_reason=reason,
        provider_refund_id=result.refund_id,
    )


async def _debit_paid_out(wallets: WalletRepository, session: AsyncSession, entry: EntryRequest) -> None:
    """Write a debit for money the provider has already paid out. A refund that was not forced had its
    money held, so it fits; should it not (an admin's negative adjustment spent the hold), it is still
    written, below zero, and `ledger verify` reports it for review: the money has left either way."""
    try:
        async with session.begin_nested():
            await wallets.apply(entry)
    except InsufficientFunds:
        log.error(
            "a refund the provider paid out took the wallet below zero", extra={"ref": entry.reference_id}
        )
        await wallets.apply(replace(entry, allow_negative=True))


async def debit_refund(
    session: AsyncSession, topup: Topup, refund: TopupRefund, *, source: str
) -> TopupRefund:
    """Debit the wallet for a refund the provider accepted, exactly once (the caller holds the top-up's
    row lock; the `debited` flag and a unique ledger index make a second debit impossible). Its hold is
    released in the same transaction."""
    refunds = RefundRepository(session)
    current = await refunds.get(topup.tenant_id, refund.id)
    if current.debited:
        return current
    wallets = WalletRepository(session)
    await wallets.release(topup.tenant_id, current.held)
    await _debit_paid_out(
        wallets,
        session,
        EntryRequest(
            tenant_id=topup.tenant_id,
            type=EntryType.TOPUP_REFUND,
            amount=-current.amount,
            counter_account=COUNTER_ACCOUNTS[topup.provider],
            reference_type="topup_refund",
            reference_id=current.id,
            description=f"Refund of top-up {topup.id}: {current.reason}",
            actor=current.created_by,
            allow_negative=current.forced,
        ),
    )
    await _take_back_bonus(session, topup, current, refunded_delta=current.amount.amount)
    await TopupRepository(session).add_refunded(topup.tenant_id, topup.id, current.amount.amount)
    await TopupRepository(session).add_event(
        topup.tenant_id,
        topup.id,
        "refunded",
        source=source,
        detail=f"{current.id}: {current.amount.format()}",
    )
    await record_event(
        session,
        EventType.TOPUP_REFUNDED,
        topup.tenant_id,
        {
            "topup_id": topup.id,
            "refund_id": current.id,
            "provider": topup.provider.value,
            "amount": money(current.amount.amount, current.amount.currency),
            "reason": current.reason,
        },
    )
    await issue_credit_note(session, topup, current)  # in this transaction: once per debited refund
    await note_balance_change(session, topup.tenant_id, Cause(CauseType.TOPUP_REFUND, current.id))
    return await refunds.update(topup.tenant_id, current.id, debited=True, held=0)


async def _take_back_bonus(
    session: AsyncSession, topup: Topup, refund: TopupRefund, *, refunded_delta: int
) -> None:
    """A refund takes back the bonus share of what it refunds (a reversed refund gives it back): a bonus
    is paid for money kept in the wallet, not for money sent back to the card."""
    fresh = await TopupRepository(session).get(topup.tenant_id, topup.id)
    if fresh.bonus is None or fresh.credited is None:
        return
    before = bonus_share(fresh.bonus.amount, fresh.credited.amount, fresh.refunded.amount)
    after = bonus_share(fresh.bonus.amount, fresh.credited.amount, fresh.refunded.amount + refunded_delta)
    if after == before:
        return
    reversal = refunded_delta < 0
    entry = EntryRequest(
        tenant_id=topup.tenant_id,
        type=EntryType.BONUS,
        amount=Money(before - after, fresh.bonus.currency),
        counter_account=CounterAccount.PROMOTIONS,
        reference_type="topup_refund_reversal" if reversal else "topup_refund",
        reference_id=refund.id,
        description=(
            f"Bonus of top-up {topup.id} given back: refund {refund.id} failed"
            if reversal
            else f"Bonus of top-up {topup.id} taken back with refund {refund.id}"
        ),
        actor=refund.created_by,
        allow_negative=refund.forced and not reversal,  # follows its refund (held with it unless forced)
    )
    if reversal:
        await WalletRepository(session).apply(entry)
    else:
        await _debit_paid_out(WalletRepository(session), session, entry)


async def _refund_failed(
    session: AsyncSession, topup: Topup, refund: TopupRefund, *, source: str, reason: str | None = None
) -> TopupRefund:
    refunds = RefundRepository(session)
    current = await refunds.get(topup.tenant_id, refund.id)
    if current.status == "failed":
        return current
    wallets = WalletRepository(session)
    await wallets.release(topup.tenant_id, current.held)
    if current.debited:
        # The provider reversed a refund it had accepted: the money is back with us, so back in the wallet.
        await wallets.apply(
            EntryRequest(
                tenant_id=topup.tenant_id,
                type=EntryType.TOPUP_REFUND,
                amount=current.amount,
                counter_account=COUNTER_ACCOUNTS[topup.provider],
                reference_type="topup_refund_reversal",
                reference_id=current.id,
                description=f"Refund {current.id} failed at the provider: reversed",
                actor=f"provider:{topup.provider.value}",
            )
        )
        await _take_back_bonus(session, topup, current, refunded_delta=-current.amount.amount)
        await TopupRepository(session).add_refunded(topup.tenant_id, topup.id, -current.amount.amount)
    await note_balance_change(session, topup.tenant_id, Cause(CauseType.TOPUP_REFUND, current.id))
    detail = current.id if not reason else f"{current.id}: {reason}"
    await TopupRepository(session).add_event(
        topup.tenant_id, topup.id, "refund_failed", source=source, detail=detail
    )
    return await refunds.update(
        topup.tenant_id,
        current.id,
        status="failed",
        held=0,
        failure_reason=reason or "the provider failed the refund",
    )


async def settle_provider_refund(
    session: AsyncSession,
    topup: Topup,
    *,
    provider_refund_id: str,
    our_refund_id: str | None,
    amount: Money,
    state: RefundState,
    source: str,
) -> TopupRefund | None:
    """A refund the provider tells us of (webhook or poll); the caller holds the top-up's row lock. Ours
    is found by our id in its metadata or by the provider's id; one made elsewhere (the provider's
    dashboard) is recorded and debited too, so that the wallet always equals what the provider
    confirmed minus what it refunded. One that would refund more than the top-up still holds moves
    nothing and is flagged on the top-up for review."""
    refunds = RefundRepository(session)
    refund = await refunds.find(
        topup.tenant_id, refund_id=our_refund_id, provider_refund_id=provider_refund_id
    )
    if refund is not None and refund.topup_id != topup.id:
        refund = None  # metadata naming another top-up's refund: not this one
    if refund is None:
        if state is RefundState.FAILED:
            return None
        if topup.status in (TopupStatus.PENDING, TopupStatus.FAILED):
            # A refund means the payment was captured: its credit is on its way (a webhook being retried,
            # reconcile). Dropping the refund now would leave the wallet holding refunded money, so
            # refuse it, and the provider delivers it again later.
            raise Conflict("the top-up this refund is for has not been credited yet; deliver it again later")
        if topup.status is not TopupStatus.SUCCEEDED:
            log.warning("refund reported for a top-up that was never credited", extra={"topup_id": topup.id})
            await TopupRepository(session).add_event(
                topup.tenant_id,
                topup.id,
                "refund_ignored",
                source=source,
                detail=f"{provider_refund_id}: not credited",
            )
            return None
        outstanding = topup.refundable - await _promised_total(refunds, topup)
        if amount.amount <= 0 or amount.amount > outstanding or amount.currency != topup.amount.currency:
            log.warning(
                "provider reported a refund larger than the top-up holds", extra={"topup_id": topup.id}
            )
            await TopupRepository(session).add_event(
                topup.tenant_id,
                topup.id,
                "refund_flagged",
                source=source,
                detail=f"{provider_refund_id}: {amount.amount} {amount.currency} reported, "
                f"{outstanding} {topup.amount.currency} refundable; nothing debited",
            )
            return None
        refund = await refunds.add(
            refund_id=intent_id("rf", None),
            tenant_id=topup.tenant_id,
            topup_id=topup.id,
            amount=amount,
            reason="refunded at the provider, outside walletsvc",
            forced=True,
            created_by=f"provider:{topup.provider.value}",
            provider_refund_id=provider_refund_id,
        )
    result = RefundResult(refund_id=provider_refund_id, state=state, amount=amount)
    return await apply_refund_result(session, topup, refund, result, source=source)
