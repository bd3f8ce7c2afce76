"""Auto top-up: the settings, the trigger every balance change calls, and the worker's runner.

The trigger (services/auto_topup_trigger.py) runs in the transaction that lowered the available balance
and starts an attempt (a row in auto_topups, at most one in flight per tenant) with its job.

The runner (`run_auto_topup`, job `run_auto_topup`) is its own unit of work, in three steps: (1) check the
caps and the runaway guard, fix the amount (what the wallet owes included), write the top-up behind it and
commit that intent; (2) ask Stripe for an off-session, confirmed PaymentIntent under the deterministic key
`walletsvc:auto_topup:<id>`, with no transaction open; (3) record the answer through the one credit
function. A job killed between the steps runs again (or reconcile resumes it) under the same key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.auto_topups import AutoTopupRepository, start_if_due
from walletsvc.db.repositories.payment_methods import PaymentMethodRepository
from walletsvc.db.repositories.topups import StripeCustomerRepository, TopupRepository
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.auto_topup import (
    AutoTopup,
    AutoTopupConfig,
    AutoTopupPolicy,
    AutoTopupStatus,
    Refusal,
    check_caps,
    day_start,
    month_start,
    topup_amount,
    validate_config,
)
from walletsvc.domain.errors import AutoTopupLocked, InvalidPayment, NoPaymentMethod, NotFound, WalletError
from walletsvc.domain.events import EventType, money
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind, TopupStatus
from walletsvc.providers.base import PaymentState, PaymentStatus
from walletsvc.providers.stripe_saved_methods import (
    ChargeState,
    OffSessionCharge,
    cancel_payment_intent,
    charge_off_session,
)
from walletsvc.services import auto_topup_outcomes
from walletsvc.services.auto_topup_links import (
    LinkPlan,
    LinkSettings,
    link_plan,
    prepare_link,
    record_link,
    send_link,
    start_processing,
)
from walletsvc.services.auto_topup_mandates import (
    MandatePlan,
    prepare_mandate,
    record_debit,
    resume_mandate,
    send_debit,
)
from walletsvc.services.events import record_event
from walletsvc.services.gateways import Gateways
from walletsvc.services.intents import intent_id
from walletsvc.services.payment_methods import tenant_provider
from walletsvc.services.topups import TopupLimits, fail_topup, settle_status

log = logging.getLogger(__name__)


class AutoTopupRunLimits(TopupLimits, LinkSettings, Protocol):
    """What the runner and reconcile read from the settings: the top-up limits, the payment link's,
    AUTO_TOPUP_MAX_PER_HOUR (the runaway guard), AUTO_TOPUP_CONFIRM_URL (else PORTAL_SUCCESS_URL) and
    AUTO_TOPUP_ACTION_TIMEOUT_SECONDS (Settings has them all; so may any small value in a test)."""

    @property
    def auto_topup_max_per_hour(self) -> int: ...

    @property
    def auto_topup_confirm_url(self) -> str | None: ...

    @property
    def auto_topup_action_timeout_seconds(self) -> int: ...


# --- settings ----------------------------------------------------------------------------------------

UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A PUT's fields; a field left out keeps its value (`amount` and `target_balance` replace each other)."""

    enabled: bool | None = None
    threshold: int | None = None
    amount: int | None = UNSET
    target_balance: int | None = UNSET
    payment_method_id: str | None = UNSET
    max_per_day: int | None = None
    monthly_cap: int | None = UNSET
    currency: str | None = None
    locked: bool | None = None  # admins only
    locked_reason: str | None = UNSET


@dataclass(frozen=True, slots=True)
class AutoTopupView:
    config: AutoTopupConfig
    currency: str
    paused_until: datetime | None
    in_flight: AutoTopup | None
    default_payment_method_id: str | None


async def view(session: AsyncSession, tenant_id: str) -> AutoTopupView:
    wallet = await WalletRepository(session).get(tenant_id)
    attempts = AutoTopupRepository(session)
    paused = await attempts.paused_until(tenant_id)
    return AutoTopupView(
        config=await attempts.config(tenant_id),
        currency=wallet.currency,
        paused_until=None if paused is None or paused.year > 9000 else paused,
        in_flight=await attempts.in_flight(tenant_id),
        default_payment_method_id=await PaymentMethodRepository(session).default_id(tenant_id),
    )


async def update_settings(
    session: AsyncSession,
    limits: TopupLimits,
    *,
    tenant_id: str,
    change: SettingsChange,
    actor: str,
    admin: bool,
) -> AutoTopupView:
    """Validate and store; a wallet already below the new threshold starts an auto top-up at once."""
    wallet = await WalletRepository(session).get(tenant_id, for_update=True)
    if change.currency is not None and change.currency != wallet.currency:
        from walletsvc.domain.errors import CurrencyMismatch

        raise CurrencyMismatch(expected=wallet.currency, got=change.currency)
    attempts = AutoTopupRepository(session)
    old = await attempts.config(tenant_id, for_update=True)
    new = old
    if change.amount is not UNSET or change.target_balance is not UNSET:
        amount = None if change.amount is UNSET else change.amount
        target = None if change.target_balance is UNSET else change.target_balance
        new = replace(new, amount=amount, target_balance=target)
    for name in ("enabled", "threshold", "max_per_day"):
        value = getattr(change, name)
        if value is not None:
            new = replace(new, **{name: value})
    for name in ("payment_method_id", "monthly_cap"):
        value = getattr(change, name)
        if value is not UNSET:
            new = replace(new, **{name: value})
    if admin:
        if change.locked is not None:
            new = replace(
                new, locked=change.locked, locked_reason=None if not change.locked else new.locked_reason
            )
        if change.locked_reason is not UNSET:
            new = replace(new, locked_reason=change.locked_reason)
    elif old.locked and change.enabled:
        raise AutoTopupLocked(
            "an admin has locked auto top-up off for this tenant"
            + (f": {old.locked_reason}" if old.locked_reason else "")
        )
    if change.enabled:  # switching it on (again) is the owner's answer to a switch-off after declines
        new = replace(new, disabled_reason=None, consecutive_failures=0)
    validate_config(new, wallet.currency, minimums=limits.topup_minimums, maximums=limits.topup_maximums)
    methods = PaymentMethodRepository(session)
    if new.payment_method_id is not None:
        method = await methods.get(tenant_id, new.payment_method_id)
        if method is None or not method.active:
            raise NoPaymentMethod(
                f"payment_method_id {new.payment_method_id!r} is not a saved payment method"
            )
    if (
        new.enabled
        and new.payment_method_id is None
        and await _needs_card(session, tenant_id)
        and await methods.default_id(tenant_id) is None
    ):
        raise NoPaymentMethod(
            "save a card first (a top-up with save_payment_method, or POST /v1/payment-methods/setup)"
        )
    # Switching it on again ends a back-off; other changes leave it (a PUT is never a way round it).
    await attempts.save_config(tenant_id, new, actor=actor, lift_pause=new.active and not old.active)
    if new.active:
        await start_if_due(session, tenant_id, "settings")
    return await view(session, tenant_id)


async def _needs_card(session: AsyncSession, tenant_id: str) -> bool:
    """Stripe tenants pay auto top-ups with a saved card; Razorpay ones may fall back to a payment link."""
    return await _provider_of(session, tenant_id) is ProviderName.STRIPE


async def _provider_of(session: AsyncSession, tenant_id: str) -> ProviderName:
    return await tenant_provider(session, tenant_id)


# --- the runner ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    attempt: AutoTopup
    topup_id: str
    amount: Money
    customer_id: str
    payment_method_id: str


def confirm_url(settings: AutoTopupRunLimits, attempt_id: str) -> str:
    """The portal page where the customer confirms a 3-D Secure auto top-up."""
    base = settings.auto_topup_confirm_url or settings.portal_success_url
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "topup"]
    query.append(("auto_topup_id", attempt_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def run_auto_topup(
    db: Database,
    gateways: Gateways,
    settings: AutoTopupRunLimits,
    *,
    policy: AutoTopupPolicy,
    tenant_id: str,
    auto_topup_id: str,
) -> AutoTopupStatus:
    """The job: prepare and commit the intent, charge outside any transaction, record the answer."""
    async with unit_of_work(db) as session:
        plan, status = await _prepare(session, gateways, settings, policy, tenant_id, auto_topup_id)
    if plan is None:
        return status
    if isinstance(plan, MandatePlan):
        debit = await send_debit(gateways, plan)  # ProviderUnavailable: runs again, finds what was made
        async with unit_of_work(db) as session:
            recorded = await record_debit(session, settings, plan, debit, policy=policy)
        if not isinstance(recorded, LinkPlan):
            return recorded
        plan = recorded  # Razorpay refused the mandate: the payment link goes instead, once
    if isinstance(plan, LinkPlan):
        link = await send_link(gateways, plan)
        async with unit_of_work(db) as session:
            return await record_link(session, plan, link)
    try:
        charge = await charge_off_session(
            gateways.stripe_or_refuse(),
            auto_topup_id=plan.attempt.id,
            topup_id=plan.topup_id,
            tenant_id=tenant_id,
            amount=plan.amount,
            customer_id=plan.customer_id,
            payment_method_id=plan.payment_method_id,
        )  # ProviderUnavailable: the job runs again (then reconcile), under the same Stripe idempotency key
    except (InvalidPayment, NotFound) as exc:
        # Stripe refused the request itself (a card gone from the customer, ...): a failure like a decline.
        charge = OffSessionCharge(ChargeState.DECLINED, None, None, exc.detail, "invalid_request")
    async with unit_of_work(db) as session:
        return await record_charge(session, tenant_id, plan.attempt.id, plan.topup_id, charge, policy=policy)


async def _prepare(
    session: AsyncSession,
    gateways: Gateways,
    settings: AutoTopupRunLimits,
    policy: AutoTopupPolicy,
    tenant_id: str,
    attempt_id: str,
) -> tuple[_Plan | MandatePlan | LinkPlan | None, AutoTopupStatus]:
    attempts = AutoTopupRepository(session)
    attempt = await attempts.get(tenant_id, attempt_id, for_update=True)
    if attempt.status is AutoTopupStatus.PROCESSING:
        if attempt.provider == ProviderName.RAZORPAY.value:
            if attempt.payment_method_id is not None:  # on a mandate: the same receipt, never a 2nd debit
                return await resume_mandate(session, attempt), attempt.status
            return await link_plan(session, settings, attempt), attempt.status  # finds the first link
        return await _resume(session, attempt), attempt.status  # resumed: the same key, the same intent
    if attempt.status is not AutoTopupStatus.CREATED:
        return None, attempt.status  # ended, or waiting for the customer
    wallet = await WalletRepository(session).get(tenant_id, for_update=True)
    config = await attempts.config(tenant_id)
    if not config.active:
        return None, await _end(attempts, attempt, AutoTopupStatus.CANCELED, "auto top-up is off", "off")
    if wallet.available >= config.threshold:
        return None, await _end(
            attempts, attempt, AutoTopupStatus.CANCELED, "the balance recovered", "recovered"
        )
    provider = await _provider_of(session, tenant_id)
    now = datetime.now(UTC)
    amount = topup_amount(
        config,
        balance=wallet.balance,
        reserved=wallet.reserved,
        owed=wallet.owed,
        currency=wallet.currency,
        minimums=settings.topup_minimums,
        maximums=settings.topup_maximums,
    )
    today_count, _ = await attempts.counted_since(tenant_id, day_start(now), excluding=attempt.id)
    _, month_total = await attempts.counted_since(tenant_id, month_start(now), excluding=attempt.id)
    hour_count, _ = await attempts.counted_since(
        tenant_id, now.replace(microsecond=0) - _HOUR, excluding=attempt.id
    )
    refusal = check_caps(
        config,
        amount=amount,
        currency=wallet.currency,
        today_count=today_count,
        month_total=month_total,
        hour_count=hour_count,
        max_per_hour=settings.auto_topup_max_per_hour,
        now=now,
    )
    if refusal is not None:
        await attempts.update(
            tenant_id,
            attempt.id,
            status=AutoTopupStatus.REFUSED,
            provider=provider.value,
            amount=amount,
            failure_reason=refusal.detail,
            failure_code=refusal.refusal.value,
            settled_at=now,
        )
        await attempts.pause(tenant_id, refusal.until)
        payload = {
            "auto_topup_id": attempt.id,
            "cap": refusal.refusal.value,
            "detail": refusal.detail,
            "amount": money(amount, wallet.currency),
            "until": refusal.until.isoformat(),
        }
        if refusal.refusal is Refusal.RUNAWAY_GUARD:
            log.error(
                "auto top-up runaway guard: refused for tenant %s (%s)",
                tenant_id,
                refusal.detail,
                extra={"tenant_id": tenant_id, "auto_topup_id": attempt.id},
            )
            await record_event(session, EventType.AUTO_TOPUP_RUNAWAY_GUARD, tenant_id, payload)
        elif config.capped_notified_on != now.date():  # said once a day
            await attempts.set_state(tenant_id, capped_notified_on=now.date())
            await record_event(session, EventType.AUTO_TOPUP_CAPPED, tenant_id, payload)
        return None, AutoTopupStatus.REFUSED
    topup_id = intent_id("top", f"auto_topup:{attempt.id}")
    if (provider is ProviderName.RAZORPAY and gateways.razorpay is None) or (
        provider is ProviderName.STRIPE and gateways.stripe is None
    ):
        await attempts.update(tenant_id, attempt.id, provider=provider.value, amount=amount)
        await auto_topup_outcomes.record_failure(
            session,
            await attempts.get(tenant_id, attempt.id),
            reason=f"{provider.value} is not configured here",
            code="provider_not_configured",
            policy=policy,
        )
        return None, AutoTopupStatus.FAILED
    if provider is ProviderName.RAZORPAY:
        # INR: a recurring mandate that covers the amount is debited; without one (or above its limit) a
        # payment link goes to the billing contacts.
        mandate_plan, why = await prepare_mandate(
            session,
            attempt,
            topup_id=topup_id,
            amount=Money(amount, wallet.currency),
            preferred=config.payment_method_id,
        )
        if mandate_plan is not None:
            return mandate_plan, AutoTopupStatus.PROCESSING
        plan = await prepare_link(
            session, settings, attempt, topup_id=topup_id, amount=Money(amount, wallet.currency), why=why
        )
        return plan, AutoTopupStatus.PROCESSING
    method_id = config.payment_method_id or await PaymentMethodRepository(session).default_id(tenant_id)
    customer_id = await StripeCustomerRepository(session).get(tenant_id)
    if method_id is None or customer_id is None:
        await attempts.update(tenant_id, attempt.id, provider=provider.value, amount=amount)
        reason = "no saved payment method: save a card with POST /v1/payment-methods/setup"
        await auto_topup_outcomes.record_failure(
            session,
            await attempts.get(tenant_id, attempt.id),
            reason=reason,
            code="no_payment_method",
            policy=policy,
        )
        return None, AutoTopupStatus.FAILED
    processing = await start_processing(
        session,
        attempt,
        topup_id=topup_id,
        amount=Money(amount, wallet.currency),
        provider=provider,
        checkout_kind=CheckoutKind.CLIENT_SECRET,  # a PaymentIntent: reconcile asks Stripe about it
        detail=f"auto top-up {attempt.id}",
        payment_method_id=method_id,
        action_url=confirm_url(settings, attempt.id),
    )
    return (
        _Plan(processing, topup_id, Money(amount, wallet.currency), customer_id, method_id),
        AutoTopupStatus.PROCESSING,
    )


# Stripe keeps an idempotency key for 24 hours: past that a resumed call could make a second PaymentIntent,
# so an older attempt is left to reconcile (which fails its never-confirmed top-up; a late success credits).
_RESUME_WITHIN = timedelta(hours=23)


async def _resume(session: AsyncSession, attempt: AutoTopup) -> _Plan | None:
    if datetime.now(UTC) - attempt.created_at > _RESUME_WITHIN:
        return None
    customer_id = await StripeCustomerRepository(session).get(attempt.tenant_id)
    if attempt.topup_id is None or attempt.amount is None or attempt.payment_method_id is None:
        return None
    if customer_id is None:
        return None
    topup = await TopupRepository(session).get(attempt.tenant_id, attempt.topup_id)
    if topup.status is not TopupStatus.PENDING:
        return None  # a webhook settled it meanwhile
    return _Plan(
        attempt,
        attempt.topup_id,
        Money(attempt.amount, attempt.currency),
        customer_id,
        attempt.payment_method_id,
    )


_HOUR = timedelta(hours=1)


async def _end(
    attempts: AutoTopupRepository, attempt: AutoTopup, status: AutoTopupStatus, reason: str, code: str
) -> AutoTopupStatus:
    await attempts.update(
        attempt.tenant_id,
        attempt.id,
        status=status,
        failure_reason=reason,
        failure_code=code,
        settled_at=datetime.now(UTC),
    )
    await attempts.pause(attempt.tenant_id, None)
    return status


async def record_charge(
    session: AsyncSession,
    tenant_id: str,
    attempt_id: str,
    topup_id: str,
    charge: OffSessionCharge,
    *,
    policy: AutoTopupPolicy,
) -> AutoTopupStatus:
    """Stripe's answer, applied through the top-up (whose lock orders it against webhooks and reconcile)."""
    topups = TopupRepository(session)
    if charge.payment_intent_id is not None:
        await topups.set_checkout(
            tenant_id, topup_id, checkout_id=charge.payment_intent_id, payment_id=charge.payment_intent_id
        )
        await AutoTopupRepository(session).update(
            tenant_id, attempt_id, provider_payment_id=charge.payment_intent_id
        )
    if charge.state is ChargeState.SUCCEEDED:
        status = PaymentStatus(PaymentState.PAID, charge.amount, charge.payment_intent_id, charge.reason)
        await settle_status(session, tenant_id, topup_id, status, source="auto_topup", policy=policy)
    elif charge.state is ChargeState.DECLINED:
        await fail_topup(
            session,
            tenant_id,
            topup_id,
            reason=charge.reason or "declined",
            source="auto_topup",
            policy=policy,
            payment_id=charge.payment_intent_id,
            code=charge.code,
        )
    elif charge.state is ChargeState.REQUIRES_ACTION:
        await TopupRepository(session).get(tenant_id, topup_id, for_update=True)
        await topups.add_event(
            tenant_id, topup_id, "requires_action", source="auto_topup", detail=charge.code or ""
        )
        await auto_topup_outcomes.topup_requires_action(
            session,
            tenant_id,
            topup_id,
            payment_intent_id=charge.payment_intent_id,
            reason=charge.reason,
            action_url=charge.action_url,
        )
    return (await AutoTopupRepository(session).get(tenant_id, attempt_id)).status


async def _give_up_waiting(
    db: Database, gateways: Gateways, attempt: AutoTopup, policy: AutoTopupPolicy
) -> None:
    """Cancel the PaymentIntent first (a confirmation can no longer charge the card), then fail the top-up
    behind it: a failure like a decline. A success that came first is credited instead, once."""
    if attempt.topup_id is None:
        return
    status = PaymentStatus(PaymentState.PENDING, None, attempt.provider_payment_id)
    if attempt.provider_payment_id is not None:
        charge = await cancel_payment_intent(gateways.stripe_or_refuse(), attempt.provider_payment_id)
        if charge.state is ChargeState.SUCCEEDED:
            status = PaymentStatus(PaymentState.PAID, charge.amount, charge.payment_intent_id, charge.reason)
    async with unit_of_work(db) as session:
        if status.state is PaymentState.PAID:
            await settle_status(
                session, attempt.tenant_id, attempt.topup_id, status, source="reconcile", policy=policy
            )
            return
        await fail_topup(
            session,
            attempt.tenant_id,
            attempt.topup_id,
            reason="the customer did not confirm the payment in time",
            source="reconcile",
            policy=policy,
            payment_id=attempt.provider_payment_id,
            code="action_timeout",
        )


async def resume_stale(
    db: Database,
    gateways: Gateways,
    settings: AutoTopupRunLimits,
    *,
    policy: AutoTopupPolicy,
    older_than_seconds: int,
) -> int:
    """Reconcile's part: attempts a job gave up on (the provider was down for long) run again, and 3-D
    Secure ones nobody confirmed in AUTO_TOPUP_ACTION_TIMEOUT_SECONDS end (so auto top-up can go on)."""
    async with db.sessionmaker() as session:
        attempts = AutoTopupRepository(session)
        stale = await attempts.stale(older_than_seconds)
        waiting = await attempts.waiting_longer_than(settings.auto_topup_action_timeout_seconds)
    for attempt in waiting:
        try:
            await _give_up_waiting(db, gateways, attempt, policy)
        except WalletError as exc:
            log.warning("a waiting auto top-up stays: %s", exc.detail, extra={"auto_topup_id": attempt.id})
    resumed = 0
    for attempt in stale:
        try:
            await run_auto_topup(
                db, gateways, settings, policy=policy, tenant_id=attempt.tenant_id, auto_topup_id=attempt.id
            )
            resumed += 1
        except (InvalidPayment, NotFound) as exc:
            log.warning(
                "auto top-up could not be resumed: %s", exc.detail, extra={"auto_topup_id": attempt.id}
            )
        except Exception:
            log.exception("auto top-up could not be resumed", extra={"auto_topup_id": attempt.id})
    return resumed
