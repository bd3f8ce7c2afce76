"""Saved payment methods: Stripe cards saved by a top-up or a SetupIntent, learned from Stripe's webhooks,
and Razorpay mandates (services/razorpay_mandates.py); listed (brand, last 4 or a masked VPA, expiry, a
mandate's limit and state only), chosen as the default for auto top-up, and detached."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.auto_topups import AutoTopupRepository
from walletsvc.db.repositories.payment_methods import PaymentMethodRepository
from walletsvc.db.repositories.razorpay_mandates import RazorpayMandateRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.db.repositories.topups import StripeCustomerRepository
from walletsvc.domain.auto_topup import DisabledReason, SavedPaymentMethod
from walletsvc.domain.errors import Conflict, InvalidRequest, NotFound
from walletsvc.domain.mandates import MandateStatus
from walletsvc.domain.routing import choose_provider
from walletsvc.domain.tenants import ProviderName
from walletsvc.providers.base import id_at, str_at
from walletsvc.providers.stripe_saved_methods import (
    SetupStarted,
    card_details,
    create_setup_intent,
    detach_payment_method,
)
from walletsvc.services.gateways import Gateways
from walletsvc.services.intents import IntentBoundary, intent_id
from walletsvc.services.razorpay_mandates import cancel_mandate

log = logging.getLogger(__name__)

PAYMENT_METHOD_EVENTS = frozenset(
    {"payment_method.attached", "payment_method.detached", "setup_intent.succeeded"}
)


@dataclass(frozen=True, slots=True)
class ListedMethod:
    method: SavedPaymentMethod
    default: bool


async def list_methods(session: AsyncSession, tenant_id: str) -> list[ListedMethod]:
    methods = PaymentMethodRepository(session)
    listed = await methods.listed(tenant_id)
    default = await methods.default_id(tenant_id) or await default_mandate_id(session, tenant_id, listed)
    return [ListedMethod(m, m.id == default) for m in listed]


async def default_mandate_id(
    session: AsyncSession, tenant_id: str, listed: list[SavedPaymentMethod]
) -> str | None:
    """The mandate a Razorpay tenant's auto top-up debits when its settings name none: the chosen default
    while it is active, else the newest active one."""
    active = [m for m in listed if m.provider == ProviderName.RAZORPAY.value and m.active]
    chosen = await RazorpayMandateRepository(session).default_id(tenant_id)
    if any(m.id == chosen for m in active):
        return chosen
    return active[-1].id if active else None


async def tenant_provider(session: AsyncSession, tenant_id: str) -> ProviderName:
    """The tenant's payment provider: Stripe (cards) or Razorpay (recurring mandates, payment links)."""
    tenant = await TenantRepository(session).get(tenant_id)
    return choose_provider(
        currency=tenant.currency,
        country=tenant.country,
        data_residency_region=tenant.data_residency_region,
        tenant_setting=tenant.payments_provider,
    ).provider


async def ensure_customer(session: AsyncSession, gateways: Gateways, tenant_id: str) -> str:
    customers = StripeCustomerRepository(session)
    customer_id = await customers.get(tenant_id)
    if customer_id is None:
        tenant = await TenantRepository(session).get(tenant_id)
        created = await gateways.stripe_or_refuse().ensure_customer(tenant_id=tenant_id, name=tenant.name)
        customer_id = await customers.remember(tenant_id, created)
    return customer_id


async def start_setup(
    session: AsyncSession, gateways: Gateways, *, tenant_id: str, intent: IntentBoundary
) -> tuple[SetupStarted, str]:
    """A SetupIntent for Stripe Elements. A retry with the same Idempotency-Key gets the same one back
    (the same Stripe idempotency key). Answers it and the publishable key the portal opens Elements with."""
    if await tenant_provider(session, tenant_id) is not ProviderName.STRIPE:
        raise InvalidRequest("this tenant pays through Razorpay: it saves a recurring mandate instead")
    gateway = gateways.stripe_or_refuse()
    if not gateway.publishable_key:
        from walletsvc.services.gateways import not_configured

        raise not_configured("saving cards with Stripe Elements is", ("STRIPE_PUBLISHABLE_KEY",))
    customer_id = await ensure_customer(session, gateways, tenant_id)
    await intent.commit()  # the customer is on record before the SetupIntent exists
    key = f"walletsvc:setup:{intent_id('seti', intent.seed, tenant_id)}"
    started = await create_setup_intent(gateway, customer_id=customer_id, tenant_id=tenant_id, key=key)
    return started, gateway.publishable_key


async def detach(session: AsyncSession, gateways: Gateways, *, tenant_id: str, method_id: str) -> None:
    """Detach at Stripe (or cancel the mandate at Razorpay), then forget it here; auto top-up no longer
    uses it."""
    methods = PaymentMethodRepository(session)
    method = await methods.get(tenant_id, method_id)
    if method is None or method.status == "detached":
        raise NotFound("payment method", method_id)
    if method.provider == ProviderName.RAZORPAY.value:
        await cancel_mandate(session, gateways, method)
    elif method.provider == ProviderName.STRIPE.value:
        try:
            await detach_payment_method(gateways.stripe_or_refuse(), method_id)
        except NotFound:
            log.info("payment method already gone at Stripe", extra={"tenant_id": tenant_id})
    await forget(session, tenant_id, method_id)


async def forget(session: AsyncSession, tenant_id: str, method_id: str) -> bool:
    methods = PaymentMethodRepository(session)
    if not await methods.mark_detached(tenant_id, method_id):
        return False
    if await methods.default_id(tenant_id) == method_id:
        remaining = await methods.active(tenant_id)
        await methods.set_default(tenant_id, remaining[-1].id if remaining else None)
    await RazorpayMandateRepository(session).clear_default(tenant_id, method_id)
    settings = AutoTopupRepository(session)
    config = await settings.config(tenant_id, for_update=True)
    if config.payment_method_id == method_id:
        await settings.set_state(tenant_id, payment_method_id=None)
    return True


async def set_default(session: AsyncSession, *, tenant_id: str, method_id: str) -> SavedPaymentMethod:
    """The method auto top-up charges when its settings name none (`payment_method_id` null): a card, or
    for a Razorpay tenant an active mandate. Only an active one can be chosen: a pending, paused or
    refused mandate answers 409."""
    methods = PaymentMethodRepository(session)
    method = await methods.get(tenant_id, method_id)
    if method is None or method.status in (MandateStatus.DETACHED.value, MandateStatus.EXPIRED.value):
        raise NotFound("payment method", method_id)
    if not method.active:
        raise Conflict(
            f"payment method {method_id} is {method.status}: only an active one can be the default"
        )
    if method.provider == ProviderName.RAZORPAY.value:
        await RazorpayMandateRepository(session).set_default(tenant_id, method_id)
    else:
        await methods.set_default(tenant_id, method_id)
    return method


async def learn(
    session: AsyncSession,
    tenant_id: str,
    method_id: str,
    *,
    source: str,
    pm: dict[str, Any] | None = None,
    customer_id: str | None = None,
) -> SavedPaymentMethod:
    """Remember a saved method (its details when the event carries the object). The first becomes the
    default; a newly saved one lifts an auto top-up that switched itself off after declines."""
    details = card_details(pm) if pm is not None else None
    methods = PaymentMethodRepository(session)
    method, new = await methods.remember(
        tenant_id,
        method_id,
        provider=ProviderName.STRIPE.value,
        source=source,
        kind=details.kind if details else "card",
        customer_id=customer_id or (details.customer_id if details else None),
        brand=details.brand if details else None,
        last4=details.last4 if details else None,
        exp_month=details.exp_month if details else None,
        exp_year=details.exp_year if details else None,
    )
    if await methods.default_id(tenant_id) is None:
        await methods.set_default(tenant_id, method_id)
    if new:
        await lift_failure_switch_off(session, tenant_id, source=source)
    return method


async def lift_failure_switch_off(session: AsyncSession, tenant_id: str, *, source: str) -> None:
    """A newly saved card or confirmed mandate is the owner's answer to a switch-off after declines."""
    settings = AutoTopupRepository(session)
    config = await settings.config(tenant_id, for_update=True)
    if config.disabled_reason == DisabledReason.FAILURES.value:
        await settings.save_config(
            tenant_id,
            replace(config, disabled_reason=None, consecutive_failures=0),
            actor=f"system:{source}",
            lift_pause=True,
        )


async def apply_stripe_event(
    session: AsyncSession, event_type: str, obj: dict[str, Any]
) -> tuple[str, str | None]:
    """payment_method.attached / .detached and setup_intent.succeeded: (outcome, tenant it concerns)."""
    methods = PaymentMethodRepository(session)
    if event_type == "payment_method.detached":
        method_id = str_at(obj, "id")
        tenant_id = (
            await methods.tenant_of_method(ProviderName.STRIPE.value, method_id) if method_id else None
        )
        if tenant_id is None or method_id is None:
            return "unknown payment method", None
        forgotten = await forget(session, tenant_id, method_id)
        return ("payment method detached" if forgotten else "already detached"), tenant_id
    if event_type == "payment_method.attached":
        customer_id = id_at(obj, "customer")
        method_id = str_at(obj, "id")
        tenant_id = await methods.tenant_of_customer(customer_id) if customer_id else None
        if tenant_id is None or method_id is None:
            return "unknown customer", None
        await learn(session, tenant_id, method_id, source="stripe:payment_method.attached", pm=obj)
        return "payment method saved", tenant_id
    # setup_intent.succeeded: the card is saved for off-session use; its details come with `attached`.
    customer_id = id_at(obj, "customer")
    method_id = id_at(obj, "payment_method")
    tenant_id = await methods.tenant_of_customer(customer_id) if customer_id else None
    if tenant_id is None or method_id is None:
        return "unknown customer", None
    pm = obj.get("payment_method") if isinstance(obj.get("payment_method"), dict) else None
    await learn(
        session, tenant_id, method_id, source="stripe:setup_intent.succeeded", pm=pm, customer_id=customer_id
    )
    return "payment method saved", tenant_id
