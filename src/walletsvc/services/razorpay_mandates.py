"""Razorpay recurring mandates: the saved payment method of INR tenants' auto top-up.

Registration (`POST /v1/payment-methods/setup` for a Razorpay tenant) writes the intent first: a pending
mandate and the top-up that carries its authorization payment (the customer pays it in Checkout with
`recurring: "1"`, and it is credited to the wallet like any top-up). Then, with the intent committed, the
tenant's Razorpay customer is ensured and the authorization order made (its receipt is the top-up's id, so
a retry finds it). The authorization payment's `payment.captured` names the token; `token.confirmed`
makes the mandate usable; `token.rejected` / `.cancelled` / `.paused` make it unusable. Deleting it
cancels the token at Razorpay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.razorpay_mandates import RazorpayMandateRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.domain.auto_topup import SavedPaymentMethod
from walletsvc.domain.errors import NotFound
from walletsvc.domain.mandates import MandateStatus, mandate_covers
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind
from walletsvc.providers.base import obj_at, str_at
from walletsvc.providers.razorpay_mandates import (
    TokenDetails,
    authorization_order,
    cancel_token,
    ensure_customer,
    token_details,
)
from walletsvc.services.billing_contacts import get_billing_contacts
from walletsvc.services.gateways import Gateways
from walletsvc.services.intents import IntentBoundary, intent_id

log = logging.getLogger(__name__)

# Razorpay accepts a token's end up to ten years ahead (cards); the mandate is renewed by registering again.
MANDATE_VALIDITY = timedelta(days=3650)
MANDATE_NOTE = "mandate_registration"


class MandateAmounts(Protocol):
    """What registering a mandate reads from the settings: RAZORPAY_MANDATE_AUTH_AMOUNT (the authorization
    payment) and RAZORPAY_MANDATE_MAX_AMOUNT (the limit when the request names none); Settings has both."""

    @property
    def razorpay_mandate_auth_amount(self) -> int: ...

    @property
    def razorpay_mandate_max_amount(self) -> int: ...


@dataclass(frozen=True, slots=True)
class MandateSetup:
    """What the portal opens Razorpay Checkout with (`recurring: "1"`, `order_id`, `customer_id`)."""

    mandate_id: str
    topup_id: str
    key_id: str
    order_id: str
    customer_id: str
    method: str
    amount: Money
    max_amount: Money
    expires_at: datetime


async def start_mandate(
    session: AsyncSession,
    gateways: Gateways,
    amounts: MandateAmounts,
    *,
    tenant_id: str,
    intent: IntentBoundary,
    method: str,
    max_amount: int | None,
    actor: str,
) -> MandateSetup:
    gateway = gateways.razorpay_or_refuse()
    mandates = RazorpayMandateRepository(session)
    mandate_id = intent_id("mdt", intent.seed, tenant_id)
    topup_id = intent_id("top", intent.seed, "mandate", tenant_id)
    auth = Money(amounts.razorpay_mandate_auth_amount, "INR")
    limit = max_amount if max_amount is not None else amounts.razorpay_mandate_max_amount
    mandate = await mandates.get(tenant_id, mandate_id)
    if mandate is None:
        topups = TopupRepository(session)
        await topups.add(
            topup_id=topup_id,
            tenant_id=tenant_id,
            provider=ProviderName.RAZORPAY,
            amount=auth,
            checkout_kind=CheckoutKind.RAZORPAY_MODAL,
            save_payment_method=False,
            created_by=actor,
        )
        await topups.add_event(
            tenant_id, topup_id, "created", source="mandate", detail=f"authorization of {mandate_id}"
        )
        mandate = await mandates.add_pending(
            tenant_id,
            mandate_id,
            kind=method,
            max_amount=limit,
            expires_at=(datetime.now(UTC) + MANDATE_VALIDITY).replace(microsecond=0),
            auth_topup_id=topup_id,
            source="razorpay:authorization",
        )
    customer_id = await mandates.customer(tenant_id)
    tenant = await TenantRepository(session).get(tenant_id)
    contacts = await get_billing_contacts(session, tenant_id)
    await intent.commit()  # the mandate and its top-up are on record before Razorpay hears of them
    if customer_id is None:
        created = await ensure_customer(
            gateway,
            tenant_id=tenant_id,
            name=tenant.name,
            email=contacts.emails[0] if contacts.emails else None,
        )
        customer_id = await mandates.remember_customer(tenant_id, created)
    assert mandate.expires_at is not None
    assert mandate.max_amount is not None
    order_id = await authorization_order(
        gateway,
        receipt=topup_id,
        customer_id=customer_id,
        method=mandate.kind,
        amount=auth,
        max_amount=mandate.max_amount,
        expire_at=int(mandate.expires_at.timestamp()),
        notes={
            "tenant_id": tenant_id,
            "topup_id": topup_id,
            "mandate_id": mandate_id,
            "walletsvc": MANDATE_NOTE,
        },
    )
    await TopupRepository(session).set_checkout(tenant_id, topup_id, checkout_id=order_id, payment_id=None)
    await mandates.update(tenant_id, mandate_id, auth_order_id=order_id, customer_id=customer_id)
    return MandateSetup(
        mandate_id=mandate_id,
        topup_id=topup_id,
        key_id=gateway.key_id,
        order_id=order_id,
        customer_id=customer_id,
        method=mandate.kind,
        amount=auth,
        max_amount=Money(mandate.max_amount, "INR"),
        expires_at=mandate.expires_at,
    )


async def usable_mandate(
    session: AsyncSession, tenant_id: str, *, preferred: str | None, amount: int
) -> tuple[SavedPaymentMethod | None, str]:
    """The mandate an auto top-up of `amount` may debit, or None and why not (for the payment link's
    record). The one rule, as for cards: the settings' `payment_method_id` (`preferred`), else the default
    (`PUT /v1/payment-methods/{id}/default`), else the newest active one; a chosen one that is no longer
    active gives way to the others."""
    now = datetime.now(UTC)
    repository = RazorpayMandateRepository(session)
    mandates = await repository.usable(tenant_id)
    preferred = preferred or await repository.default_id(tenant_id)
    if preferred is not None:
        mandates = [m for m in mandates if m.id == preferred] or mandates
    if not mandates:
        return None, "no usable mandate"
    for mandate in mandates:
        if mandate_covers(
            status=mandate.status,
            max_amount=mandate.max_amount,
            expires_at=mandate.expires_at,
            amount=amount,
            now=now,
        ):
            return mandate, "mandate"
    return None, "above the mandate's max_amount (or the mandate has ended)"


async def refuse_mandate(session: AsyncSession, tenant_id: str, mandate_id: str, reason: str) -> None:
    """Razorpay would not debit it: unusable until the owner registers a new one. A mandate that was
    deleted (or ended) meanwhile keeps the state it has."""
    mandates = RazorpayMandateRepository(session)
    mandate = await mandates.get(tenant_id, mandate_id, for_update=True)
    if mandate is not None and mandate.active:
        await mandates.update(
            tenant_id, mandate_id, status=MandateStatus.REJECTED, status_reason=reason[:500]
        )


async def cancel_mandate(session: AsyncSession, gateways: Gateways, method: SavedPaymentMethod) -> None:
    """The owner deletes it: cancelled at Razorpay first (no debit can follow), then forgotten here."""
    if method.token_id is not None and method.customer_id is not None:
        try:
            await cancel_token(
                gateways.razorpay_or_refuse(), customer_id=method.customer_id, token_id=method.token_id
            )
        except NotFound:
            log.info("token already gone at Razorpay", extra={"tenant_id": method.tenant_id})


# --- Razorpay's events ----------------------------------------------------------------------------------


async def note_authorization_payment(session: AsyncSession, payment: dict[str, Any]) -> str | None:
    """An authorization payment (its order is a mandate's): remember the token it registered. Its money is
    the top-up's, settled by the caller as usual. None when the payment is no mandate's."""
    order_id = str_at(payment, "order_id")
    if order_id is None:
        return None
    mandates = RazorpayMandateRepository(session)
    mandate = await mandates.locate(auth_order_id=order_id)
    if mandate is None:
        return None
    token_id = str_at(payment, "token_id")
    if token_id is not None and mandate.token_id is None:
        await mandates.update(
            mandate.tenant_id,
            mandate.id,
            token_id=token_id,
            customer_id=str_at(payment, "customer_id") or mandate.customer_id,
        )
    return mandate.tenant_id


async def apply_token_event(
    session: AsyncSession, event_type: str, body: dict[str, Any]
) -> tuple[str, str | None]:
    """token.confirmed makes a mandate usable; token.rejected / .cancelled / .paused unusable
    (token.resumed: usable again). Answers (outcome, the tenant it concerns)."""
    entity = obj_at(obj_at(body, "token"), "entity")
    details = token_details(entity, state=event_type.partition(".")[2])
    mandate = await RazorpayMandateRepository(session).locate(token_id=details.token_id)
    if mandate is None:
        # Its authorization payment's webhook has not named the token yet (or was lost), and a token names
        # no order: 2xx, and reconcile reads the order's payments and then the token itself.
        return "token not known yet: reconcile reads it from the authorization order", None
    return await record_token(session, mandate, details, source=f"razorpay:{event_type}"), mandate.tenant_id


async def record_token(
    session: AsyncSession, mandate: SavedPaymentMethod, details: TokenDetails, *, source: str
) -> str:
    """Razorpay's word on a mandate's token (a `token.*` event, or reconcile's fetch): its state, card or
    VPA, limit and end. A mandate the owner deleted stays deleted. Answers the outcome."""
    if details.status is None:
        return "ignored"
    if mandate.status == MandateStatus.DETACHED.value:
        return "mandate deleted"
    mandates = RazorpayMandateRepository(session)
    await mandates.update(
        mandate.tenant_id,
        mandate.id,
        status=details.status,
        kind=details.kind,
        brand=details.brand or mandate.brand,
        last4=details.last4 or mandate.last4,
        exp_month=details.exp_month or mandate.exp_month,
        exp_year=details.exp_year or mandate.exp_year,
        vpa=details.vpa or mandate.vpa,
        max_amount=details.max_amount or mandate.max_amount,
        expires_at=details.expires_at or mandate.expires_at,
        status_reason=None if details.status is MandateStatus.ACTIVE else details.failure_reason,
    )
    if details.status is MandateStatus.ACTIVE and not mandate.active:
        from walletsvc.services.payment_methods import lift_failure_switch_off

        await lift_failure_switch_off(session, mandate.tenant_id, source=source)
    return f"mandate {details.status.value}"
