"""Top-ups: start a checkout, and credit a confirmed payment exactly once, whichever path confirms it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.bonus_rules import BonusRuleRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.db.repositories.topups import StripeCustomerRepository, TopupRepository
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.auto_topup import AutoTopupPolicy
from walletsvc.domain.errors import (
    Conflict,
    CurrencyMismatch,
    IdempotencyKeyReused,
    InvalidPayment,
    InvalidRequest,
    NotFound,
    ProviderNotConfigured,
    ProviderUnavailable,
)
from walletsvc.domain.events import EventType, money
from walletsvc.domain.ledger import CounterAccount, EntryRequest, EntryType
from walletsvc.domain.money import Money
from walletsvc.domain.routing import choose_provider
from walletsvc.domain.signatures import verify_razorpay_payment
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import (
    CheckoutKind,
    Topup,
    TopupStatus,
    best_bonus,
    check_topup_amount,
    confirmation_mismatch,
)
from walletsvc.providers.base import Checkout, CheckoutRequest, PaymentState, PaymentStatus
from walletsvc.providers.razorpay_gateway import payment_status_of
from walletsvc.services import auto_topup_outcomes
from walletsvc.services.debts import settle_owed
from walletsvc.services.documents import issue_topup_invoice
from walletsvc.services.events import record_event
from walletsvc.services.gateways import Gateways
from walletsvc.services.intents import IntentBoundary, intent_id
from walletsvc.services.low_balance import Cause, CauseType, note_balance_change

log = logging.getLogger(__name__)

COUNTER_ACCOUNTS = {
    ProviderName.STRIPE: CounterAccount.PROVIDER_STRIPE,
    ProviderName.RAZORPAY: CounterAccount.PROVIDER_RAZORPAY,
}


class TopupLimits(Protocol):
    """What starting a top-up reads from the settings: TOPUP_MINIMUMS and TOPUP_MAXIMUMS, per currency
    (Settings has both; so may any small value in a test)."""

    @property
    def topup_minimums(self) -> Mapping[str, int]: ...

    @property
    def topup_maximums(self) -> Mapping[str, int]: ...


@dataclass(frozen=True, slots=True)
class StartedTopup:
    topup: Topup
    checkout: Checkout


async def start_topup(
    session: AsyncSession,
    gateways: Gateways,
    limits: TopupLimits,
    *,
    tenant_id: str,
    amount: int,
    actor: str,
    intent: IntentBoundary,
    currency: str | None = None,
    save_payment_method: bool = False,
    checkout_kind: CheckoutKind | None = None,
    provider_override: ProviderName | None = None,
) -> StartedTopup:
    """Open a checkout with the provider the routing rules choose. The top-up is written and committed
    before the provider is called, so that it is never lost: if the call fails it stays on record with
    why. Run again with the same intent seed (a retried request), it resumes the same top-up."""
    tenant = await TenantRepository(session).get(tenant_id)
    if currency is not None and currency != tenant.currency:
        raise CurrencyMismatch(expected=tenant.currency, got=currency)
    money = Money(amount, tenant.currency)
    check_topup_amount(money, minimums=limits.topup_minimums, maximums=limits.topup_maximums)
    route = choose_provider(
        currency=tenant.currency,
        country=tenant.country,
        data_residency_region=tenant.data_residency_region,
        tenant_setting=tenant.payments_provider,
        override=provider_override,
    )
    kind = _checkout_kind(route.provider, checkout_kind)
    gateway = gateways.checkout_gateway(route.provider, kind)  # refuses before anything is written

    topups = TopupRepository(session)
    topup_id = intent_id("top", intent.seed)
    topup = await topups.find(tenant_id, topup_id) if intent.seed is not None else None
    if topup is not None:
        if (topup.amount, topup.provider, topup.checkout_kind, topup.save_payment_method) != (
            money,
            route.provider,
            kind,
            save_payment_method,
        ):
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different top-up")
        if topup.status is not TopupStatus.PENDING:
            raise Conflict(f"this top-up is already {topup.status.value}: see GET /v1/topups/{topup.id}")
        await topups.add_event(tenant_id, topup.id, "resumed", source="api", detail="the request was retried")
    else:
        topup = await topups.add(
            topup_id=topup_id,
            tenant_id=tenant_id,
            provider=route.provider,
            amount=money,
            checkout_kind=kind,
            save_payment_method=save_payment_method,
            created_by=actor,
        )
        await topups.add_event(
            tenant_id, topup.id, "created", source="api", detail=f"routed by rule: {route.rule}"
        )
    await intent.commit()
    request = CheckoutRequest(
        topup_id=topup.id,
        tenant_id=tenant_id,
        tenant_name=tenant.name,
        amount=money,
        kind=kind,
        save_payment_method=save_payment_method,
    )
    try:
        # The customer is made after the top-up is written: a Stripe outage here must not lose it either.
        customer_id = None
        if route.provider is ProviderName.STRIPE:
            customers = StripeCustomerRepository(session)
            customer_id = await customers.get(tenant_id)
            if customer_id is None:
                created = await gateways.stripe_or_refuse().ensure_customer(
                    tenant_id=tenant_id, name=tenant.name
                )
                customer_id = await customers.remember(tenant_id, created)
        checkout = await gateway.create_checkout(request, customer_id=customer_id)
    except ProviderUnavailable as exc:
        await topups.add_event(tenant_id, topup.id, "checkout_failed", source="api", detail=exc.detail)
        exc.keep_changes = True  # pending: `walletsvc reconcile` settles it
        raise
    except (InvalidPayment, ProviderNotConfigured, NotFound) as exc:
        await topups.mark(tenant_id, topup.id, TopupStatus.FAILED, reason=exc.detail)
        await topups.add_event(tenant_id, topup.id, "failed", source="api", detail=exc.detail)
        exc.keep_changes = True
        raise
    await topups.set_checkout(
        tenant_id, topup.id, checkout_id=checkout.checkout_id, payment_id=checkout.payment_id
    )
    await topups.add_event(tenant_id, topup.id, "checkout_created", source="api", detail=checkout.kind.value)
    return StartedTopup(topup=await topups.get(tenant_id, topup.id), checkout=checkout)


def _checkout_kind(provider: ProviderName, asked: CheckoutKind | None) -> CheckoutKind:
    if provider is ProviderName.RAZORPAY:
        if asked not in (None, CheckoutKind.RAZORPAY_MODAL):
            raise InvalidRequest("this tenant pays through a checkout modal; ask for no other checkout kind")
        return CheckoutKind.RAZORPAY_MODAL
    if asked is CheckoutKind.RAZORPAY_MODAL:
        raise InvalidRequest("this tenant pays by redirect or client secret; ask for no other checkout kind")
    return asked or CheckoutKind.REDIRECT


async def credit_topup(
    session: AsyncSession,
    tenant_id: str,
    topup_id: str,
    *,
    confirmed: Money,
    payment_id: str | None,
    source: str,
) -> Topup:
    """Credit what the provider confirmed, once. Concurrent confirmations of one top-up queue on its row
    lock; the first credits, the rest find it succeeded. A unique index on the ledger backs this up."""
    topups = TopupRepository(session)
    topup = await topups.get(tenant_id, topup_id, for_update=True)
    if topup.status in (TopupStatus.SUCCEEDED, TopupStatus.FLAGGED):
        await topups.add_event(
            tenant_id, topup_id, "confirmation_ignored", source=source, detail=topup.status.value
        )
        return topup
    mismatch = confirmation_mismatch(topup.amount, confirmed)
    if mismatch is not None:
        log.warning("top-up confirmation does not match; nothing credited", extra={"topup_id": topup_id})
        return await _flag(topups, topup, reason=mismatch, payment_id=payment_id, source=source)
    wallets = WalletRepository(session)
    counter = COUNTER_ACCOUNTS[topup.provider]
    await wallets.apply(
        EntryRequest(
            tenant_id=tenant_id,
            type=EntryType.TOPUP,
            amount=confirmed,
            counter_account=counter,
            reference_type="topup",
            reference_id=topup_id,
            description=f"Wallet top-up {confirmed.format()}",
            actor=f"provider:{topup.provider.value}",
        )
    )
    rules = await BonusRuleRepository(session).active_for(confirmed.currency)
    bonus = best_bonus(confirmed, rules, topup.created_at)
    if bonus is not None:
        rule, extra = bonus
        await wallets.apply(
            EntryRequest(
                tenant_id=tenant_id,
                type=EntryType.BONUS,
                amount=extra,
                counter_account=CounterAccount.PROMOTIONS,
                reference_type="topup",
                reference_id=topup_id,
                description=f"Top-up bonus {extra.format()} (rule {rule.id})",
                actor="system:bonus",
            )
        )
    credited = await topups.mark_succeeded(
        tenant_id,
        topup_id,
        credited=confirmed,
        bonus=bonus[1] if bonus else None,
        bonus_rule_id=bonus[0].id if bonus else None,
        payment_id=payment_id,
    )
    await issue_topup_invoice(session, credited)  # in this transaction: issued once, numbered gap-free
    detail = f"credited {confirmed.format()}" + (f" and a bonus of {bonus[1].format()}" if bonus else "")
    await topups.add_event(tenant_id, topup_id, "succeeded", source=source, detail=detail)
    await record_event(
        session,
        EventType.TOPUP_SUCCEEDED,
        tenant_id,
        {
            "topup_id": topup_id,
            "provider": topup.provider.value,
            "amount": money(confirmed.amount, confirmed.currency),
            "bonus": money(bonus[1].amount, bonus[1].currency) if bonus else None,
        },
    )
    await auto_topup_outcomes.topup_credited(session, tenant_id, topup_id, credited=confirmed)
    paid = await settle_owed(session, tenant_id)  # usage the wallet could not pay is paid first
    if paid:
        await topups.add_event(
            tenant_id, topup_id, "owed_settled", source=source, detail=f"{paid} minor units"
        )
    await note_balance_change(session, tenant_id, Cause(CauseType.TOPUP, topup_id))
    return credited


async def flag_topup(
    session: AsyncSession,
    tenant_id: str,
    topup_id: str,
    *,
    reason: str,
    payment_id: str | None,
    source: str,
) -> Topup:
    """The provider says it was paid but names no amount walletsvc can read: nothing is credited and the
    top-up is flagged for someone to look at, like a confirmation of another amount."""
    topups = TopupRepository(session)
    topup = await topups.get(tenant_id, topup_id, for_update=True)
    if topup.status in (TopupStatus.SUCCEEDED, TopupStatus.FLAGGED):
        detail = f"{topup.status.value}: {reason}"
        await topups.add_event(tenant_id, topup_id, "confirmation_ignored", source=source, detail=detail)
        return topup
    log.warning("top-up confirmed with an unreadable amount; nothing credited", extra={"topup_id": topup_id})
    return await _flag(topups, topup, reason=reason, payment_id=payment_id, source=source)


async def _flag(
    topups: TopupRepository, topup: Topup, *, reason: str, payment_id: str | None, source: str
) -> Topup:
    flagged = await topups.mark(
        topup.tenant_id, topup.id, TopupStatus.FLAGGED, reason=reason, payment_id=payment_id
    )
    await topups.add_event(topup.tenant_id, topup.id, "flagged", source=source, detail=reason)
    return flagged


async def fail_topup(
    session: AsyncSession,
    tenant_id: str,
    topup_id: str,
    *,
    reason: str,
    source: str,
    policy: AutoTopupPolicy,
    payment_id: str | None = None,
    code: str | None = None,
) -> Topup:
    """A failed payment attempt. Order is not assumed: a top-up that already succeeded stays succeeded,
    and a failed one still credits if a success arrives later. `policy`: the decline path of an auto
    top-up behind it (back-off, switch-off after N)."""
    topups = TopupRepository(session)
    topup = await topups.get(tenant_id, topup_id, for_update=True)
    await topups.add_event(tenant_id, topup_id, "payment_failed", source=source, detail=reason)
    if topup.status is not TopupStatus.PENDING:
        return topup
    failed = await topups.mark(tenant_id, topup_id, TopupStatus.FAILED, reason=reason, payment_id=payment_id)
    await record_event(
        session,
        EventType.TOPUP_FAILED,
        tenant_id,
        {
            "topup_id": topup_id,
            "provider": topup.provider.value,
            "amount": money(topup.amount.amount, topup.amount.currency),
            "reason": reason,
        },
    )
    await auto_topup_outcomes.topup_declined(
        session, tenant_id, topup_id, reason=reason, code=code, policy=policy
    )
    return failed


async def settle_status(
    session: AsyncSession,
    tenant_id: str,
    topup_id: str,
    status: PaymentStatus,
    *,
    source: str,
    policy: AutoTopupPolicy,
) -> Topup:
    """Apply what a provider says of a payment: paid credits (or, with no readable amount, flags),
    failed fails, pending changes nothing."""
    if status.state is PaymentState.PAID:
        if status.amount is None:
            return await flag_topup(
                session,
                tenant_id,
                topup_id,
                reason=status.reason or "the provider confirmed no amount",
                payment_id=status.payment_id,
                source=source,
            )
        return await credit_topup(
            session, tenant_id, topup_id, confirmed=status.amount, payment_id=status.payment_id, source=source
        )
    if status.state is PaymentState.FAILED:
        return await fail_topup(
            session,
            tenant_id,
            topup_id,
            reason=status.reason or "the payment failed",
            source=source,
            policy=policy,
            payment_id=status.payment_id,
        )
    return await TopupRepository(session).get(tenant_id, topup_id)


async def verify_razorpay(
    session: AsyncSession,
    gateways: Gateways,
    *,
    tenant_id: str,
    topup_id: str,
    order_id: str,
    payment_id: str,
    signature: str,
    policy: AutoTopupPolicy,
) -> Topup:
    """The Razorpay checkout handler's answer: check its signature, then ask Razorpay itself whether the
    payment is captured and for how much. The amount credited is Razorpay's, never the browser's."""
    gateway = gateways.razorpay_or_refuse()
    topup = await TopupRepository(session).get(tenant_id, topup_id)
    if topup.provider is not ProviderName.RAZORPAY or topup.provider_checkout_id != order_id:
        raise InvalidPayment("this order does not belong to this top-up")
    verify_razorpay_payment(order_id, payment_id, signature, gateways.razorpay_key_secret)
    payment = await gateway.fetch_payment(payment_id)
    if payment.get("order_id") != order_id:
        raise InvalidPayment("the payment was not made for this top-up's order")
    # The payment id is the one the signature covers, not whatever the answer's `id` says.
    status = replace(payment_status_of(payment), payment_id=payment_id)
    return await settle_status(session, tenant_id, topup_id, status, source="razorpay_verify", policy=policy)


async def stripe_return(
    session: AsyncSession, gateways: Gateways, *, session_id: str, policy: AutoTopupPolicy
) -> Topup:
    """The browser is back from Stripe Checkout: ask Stripe (never the browser) whether it paid."""
    gateway = gateways.stripe_or_refuse()
    topup_id, _tenant_hint, status = await gateway.retrieve_session(session_id)
    located = await TopupRepository(session).locate(
        ProviderName.STRIPE, topup_id=topup_id, checkout_id=session_id
    )
    if located is None:
        raise NotFound("top-up for checkout session", session_id)
    tenant_id, found_id = located
    return await settle_status(session, tenant_id, found_id, status, source="stripe_return", policy=policy)
