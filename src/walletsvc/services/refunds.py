"""Refunds of top-ups: sent to the provider with its idempotency key, debited from the wallet once,
whether the provider's API answer or its refund webhook lands first."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.refunds import RefundRepository, TopupRefund
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.errors import (
    Conflict,
    InsufficientFunds,
    InvalidPayment,
    InvalidRequest,
    NotFound,
    ProviderNotConfigured,
    ProviderUnavailable,
)
from walletsvc.domain.ledger import CounterAccount, EntryRequest, EntryType
from walletsvc.domain.money import Money
from walletsvc.domain.topups import Topup, TopupStatus
from walletsvc.providers.base import RefundResult, RefundState
from walletsvc.services.gateways import Gateways
from walletsvc.services.topups import COUNTER_ACCOUNTS

log = logging.getLogger(__name__)


def new_refund_id() -> str:
    return f"rf_{secrets.token_hex(12)}"


async def _pending_total(refunds: RefundRepository, topup: Topup) -> int:
    """Money promised to refunds that are not yet debited (the provider has not confirmed them)."""
    return sum(
        r.amount.amount
        for r in await refunds.for_topup(topup.tenant_id, topup.id)
        if r.status == "pending" and not r.debited
    )


async def refund_topup(
    session: AsyncSession,
    gateways: Gateways,
    topup_id: str,
    *,
    amount: int | None,
    reason: str,
    force: bool,
    actor: str,
) -> TopupRefund:
    topups = TopupRepository(session)
    located = await topups.locate_any(topup_id)
    if located is None:
        raise NotFound("top-up", topup_id)
    tenant_id = located
    topup = await topups.get(tenant_id, topup_id, for_update=True)
    if topup.status is not TopupStatus.SUCCEEDED or topup.credited is None or not topup.provider_payment_id:
        raise Conflict("only a top-up that succeeded can be refunded")
    gateway = gateways.get(topup.provider)
    refunds = RefundRepository(session)
    refundable = topup.refundable - await _pending_total(refunds, topup)
    wanted = refundable if amount is None else amount
    if wanted <= 0:
        raise Conflict("nothing of this top-up is left to refund")
    if wanted > refundable:
        raise InvalidRequest(
            f"at most {Money(refundable, topup.amount.currency).format()} of this top-up can still be refunded"
        )
    wallet = await WalletRepository(session).get(tenant_id)
    bonus_back = (
        0
        if topup.bonus is None
        else bonus_share(topup.bonus.amount, topup.credited.amount, topup.refunded.amount + wanted)
        - bonus_share(topup.bonus.amount, topup.credited.amount, topup.refunded.amount)
    )
    if wanted + bonus_back > wallet.available and not force:
        # The tenant has spent part of this top-up: refunding it all would hand back money used for calls.
        raise InsufficientFunds(
            available=max(wallet.available, 0), requested=wanted + bonus_back, currency=wallet.currency
        )
    money = Money(wanted, topup.amount.currency)
    refund = await refunds.add(
        refund_id=new_refund_id(),
        tenant_id=tenant_id,
        topup_id=topup_id,
        amount=money,
        reason=reason,
        forced=force,
        created_by=actor,
    )
    await topups.add_event(
        tenant_id, topup_id, "refund_requested", source="api", detail=f"{refund.id}: {money.format()}"
    )
    try:
        # The top-up row is locked, the wallet row is not: the provider call holds no balance lock.
        result = await gateway.refund(
            payment_id=topup.provider_payment_id,
            amount=money,
            refund_id=refund.id,
            topup_id=topup_id,
            tenant_id=tenant_id,
            reason=reason,
        )
    except ProviderUnavailable as exc:
        await topups.add_event(tenant_id, topup_id, "refund_pending", source="api", detail=exc.detail)
        exc.keep_changes = True  # `walletsvc reconcile` sends it again with the same idempotency key
        raise
    except (InvalidPayment, ProviderNotConfigured, NotFound) as exc:
        await refunds.update(tenant_id, refund.id, status="failed", failure_reason=exc.detail)
        await topups.add_event(tenant_id, topup_id, "refund_failed", source="api", detail=exc.detail)
        exc.keep_changes = True
        raise
    return await apply_refund_result(session, topup, refund, result, source="api")


async def apply_refund_result(
    session: AsyncSession, topup: Topup, refund: TopupRefund, result: RefundResult, *, source: str
) -> TopupRefund:
    """What the provider said of a refund, applied: accepted (done or on its way) debits the wallet
    once; failed releases it, and credits back whatever was already debited."""
    refunds = RefundRepository(session)
    if result.state is RefundState.FAILED:
        return await _refund_failed(session, topup, refund, source=source)
    refund = await refunds.update(
        topup.tenant_id,
        refund.id,
        provider_refund_id=result.refund_id,
        status="succeeded" if result.state is RefundState.SUCCEEDED else refund.status,
    )
    return await debit_refund(session, topup, refund, source=source)


async def debit_refund(
    session: AsyncSession, topup: Topup, refund: TopupRefund, *, source: str
) -> TopupRefund:
    """Debit the wallet for a refund the provider accepted, exactly once (the caller holds the top-up's
    row lock; the `debited` flag and a unique ledger index make a second debit impossible)."""
    refunds = RefundRepository(session)
    current = await refunds.get(topup.tenant_id, refund.id)
    if current.debited:
        return current
    await WalletRepository(session).apply(
        EntryRequest(
            tenant_id=topup.tenant_id,
            type=EntryType.TOPUP_REFUND,
            amount=-current.amount,
            counter_account=COUNTER_ACCOUNTS[topup.provider],
            reference_type="topup_refund",
            reference_id=current.id,
            description=f"Refund of top-up {topup.id}: {current.reason}",
            actor=current.created_by,
            # The provider has paid it out: the debit is a fact, even if usage spent the money meanwhile.
            allow_negative=True,
        )
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
    return await refunds.update(topup.tenant_id, current.id, debited=True)


def bonus_share(bonus: int, credited: int, refunded: int) -> int:
    """How much of a top-up's bonus goes with `refunded` of its `credited` amount: in proportion, rounded
    down, so that refunding it all takes back exactly the whole bonus."""
    return 0 if credited <= 0 else bonus * refunded // credited


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
    await WalletRepository(session).apply(
        EntryRequest(
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
            allow_negative=not reversal,  # follows its refund, which the provider has already paid out
        )
    )


async def _refund_failed(
    session: AsyncSession, topup: Topup, refund: TopupRefund, *, source: str
) -> TopupRefund:
    refunds = RefundRepository(session)
    current = await refunds.get(topup.tenant_id, refund.id)
    if current.status == "failed":
        return current
    if current.debited:
        # The provider reversed a refund it had accepted: the money is back with us, so back in the wallet.
        await WalletRepository(session).apply(
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
    await TopupRepository(session).add_event(
        topup.tenant_id, topup.id, "refund_failed", source=source, detail=current.id
    )
    return await refunds.update(
        topup.tenant_id, current.id, status="failed", failure_reason="the provider failed the refund"
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
    """A refund the provider tells us of (webhook or poll). Ours is found by our id in its metadata or by
    the provider's id; one made elsewhere (the provider's dashboard) is recorded and debited too, so
    that the wallet always equals what the provider confirmed minus what it refunded."""
    refunds = RefundRepository(session)
    refund = await refunds.find(
        topup.tenant_id, refund_id=our_refund_id, provider_refund_id=provider_refund_id
    )
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
        outstanding = topup.refundable - await _pending_total(refunds, topup)
        if amount.amount > outstanding:
            log.warning("provider refunded more than walletsvc credited", extra={"topup_id": topup.id})
        debit = min(amount.amount, outstanding)
        if debit <= 0:
            return None
        refund = await refunds.add(
            refund_id=new_refund_id(),
            tenant_id=topup.tenant_id,
            topup_id=topup.id,
            amount=Money(debit, amount.currency),
            reason="refunded at the provider, outside walletsvc",
            forced=True,
            created_by=f"provider:{topup.provider.value}",
            provider_refund_id=provider_refund_id,
        )
    result = RefundResult(refund_id=provider_refund_id, state=state, amount=amount)
    return await apply_refund_result(session, topup, refund, result, source=source)
