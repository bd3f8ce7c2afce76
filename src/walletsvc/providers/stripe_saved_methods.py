"""Stripe saved payment methods and off-session charges (auto top-up), on StripeGateway's client.

SetupIntents for Elements, detaching a card, reading a card's brand / last 4 / expiry (never more), and the
off-session, confirmed PaymentIntent of an auto top-up, whose every outcome (paid, processing, 3-D Secure
wanted, declined) is answered as a plain value: SDK objects never leave this folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import stripe

from walletsvc.domain.errors import InvalidPayment
from walletsvc.domain.money import Money
from walletsvc.providers.base import obj_at, paid_status, required_str, str_at
from walletsvc.providers.stripe_gateway import StripeGateway


@dataclass(frozen=True, slots=True)
class CardDetails:
    payment_method_id: str
    customer_id: str | None
    kind: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


def card_details(pm: dict[str, Any]) -> CardDetails:
    """What walletsvc keeps of a PaymentMethod object: brand, last 4, expiry. Nothing else is read."""
    card = obj_at(pm, "card")
    customer = pm.get("customer")
    customer_id = str_at(customer, "id") if isinstance(customer, dict) else str_at(pm, "customer")

    def small_int(key: str) -> int | None:
        value = card.get(key)
        return value if type(value) is int and 0 < value < 10_000 else None

    last4 = str_at(card, "last4")
    return CardDetails(
        payment_method_id=required_str(pm, "id"),
        customer_id=customer_id,
        kind=str_at(pm, "type") or "card",
        brand=(str_at(card, "brand") or str_at(card, "display_brand") or "")[:32] or None,
        last4=last4 if last4 is not None and len(last4) == 4 and last4.isdigit() else None,
        exp_month=small_int("exp_month"),
        exp_year=small_int("exp_year"),
    )


@dataclass(frozen=True, slots=True)
class SetupStarted:
    setup_intent_id: str
    client_secret: str


async def create_setup_intent(
    gateway: StripeGateway, *, customer_id: str, tenant_id: str, key: str
) -> SetupStarted:
    """A SetupIntent the portal confirms with Stripe Elements; the card it saves is for off-session use."""
    intent = await gateway._call(
        lambda: gateway.client.v1.setup_intents.create_async(
            params={
                "customer": customer_id,
                "usage": "off_session",
                "automatic_payment_methods": {"enabled": True},
                "metadata": {"tenant_id": tenant_id, "walletsvc": "payment_method_setup"},
            },
            options={"idempotency_key": key},
        )
    )
    return SetupStarted(
        setup_intent_id=required_str(intent, "id"), client_secret=required_str(intent, "client_secret")
    )


async def retrieve_payment_method(gateway: StripeGateway, payment_method_id: str) -> CardDetails:
    pm = await gateway._call(lambda: gateway.client.v1.payment_methods.retrieve_async(payment_method_id))
    return card_details(pm)


async def detach_payment_method(gateway: StripeGateway, payment_method_id: str) -> None:
    await gateway._call(lambda: gateway.client.v1.payment_methods.detach_async(payment_method_id))


async def retrieve_client_secret(gateway: StripeGateway, payment_intent_id: str) -> str:
    """The client secret of a PaymentIntent waiting for 3-D Secure: asked of Stripe when the portal needs
    it, never stored."""
    intent = await gateway._call(lambda: gateway.client.v1.payment_intents.retrieve_async(payment_intent_id))
    return required_str(intent, "client_secret")


async def cancel_payment_intent(gateway: StripeGateway, payment_intent_id: str) -> OffSessionCharge:
    """Cancel a PaymentIntent nobody confirmed; answers how it stands (a success that came first stays)."""
    try:
        intent = await gateway._call(
            lambda: gateway.client.v1.payment_intents.cancel_async(
                payment_intent_id, options={"idempotency_key": f"walletsvc:cancel:{payment_intent_id}"}
            )
        )
    except InvalidPayment:  # it cannot be canceled any more: read what it is
        intent = await gateway._call(
            lambda: gateway.client.v1.payment_intents.retrieve_async(payment_intent_id)
        )
    return charge_of(intent)


class ChargeState(StrEnum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"  # Stripe has it; a webhook (or reconcile) says how it ended
    REQUIRES_ACTION = "requires_action"  # the customer must authenticate (3-D Secure / SCA)
    DECLINED = "declined"


# Decline codes that mean the customer's bank wants them to authenticate, not that the card was refused.
AUTHENTICATION_CODES = frozenset({"authentication_required", "authentication_not_handled"})


@dataclass(frozen=True, slots=True)
class OffSessionCharge:
    state: ChargeState
    payment_intent_id: str | None
    amount: Money | None  # what Stripe confirms received (SUCCEEDED only)
    reason: str | None = None  # the provider's words, for a decline
    code: str | None = None  # decline_code or code
    action_url: str | None = None  # a Stripe-hosted page, when Stripe gives one


class _Declined:
    """A card error, carried through StripeGateway._call (which only knows results and exceptions)."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error

    def to_dict(self) -> dict[str, Any]:
        return {"object": "walletsvc.card_error", "error": self.error}


def charge_of(intent: dict[str, Any]) -> OffSessionCharge:
    """The one reading of an auto top-up's PaymentIntent (the create answer, webhooks, reconcile)."""
    status = str_at(intent, "status")
    intent_id = str_at(intent, "id")
    error = obj_at(intent, "last_payment_error")
    code = str_at(error, "decline_code") or str_at(error, "code")
    if status == "succeeded":
        paid = paid_status(
            intent.get("amount_received"), intent.get("currency"), intent_id, name="amount_received"
        )
        return OffSessionCharge(ChargeState.SUCCEEDED, intent_id, paid.amount, paid.reason)
    if status == "requires_action" or (status == "requires_payment_method" and code in AUTHENTICATION_CODES):
        redirect = obj_at(obj_at(intent, "next_action"), "redirect_to_url")
        return OffSessionCharge(
            ChargeState.REQUIRES_ACTION,
            intent_id,
            None,
            str_at(error, "message") or "the card issuer asks the customer to authenticate",
            code or "authentication_required",
            str_at(redirect, "url"),
        )
    if status in ("requires_payment_method", "canceled"):
        return OffSessionCharge(
            ChargeState.DECLINED,
            intent_id,
            None,
            str_at(error, "message") or ("the payment was canceled" if status == "canceled" else "declined"),
            code or status,
        )
    return OffSessionCharge(ChargeState.PROCESSING, intent_id, None)


async def charge_off_session(
    gateway: StripeGateway,
    *,
    auto_topup_id: str,
    topup_id: str,
    tenant_id: str,
    amount: Money,
    customer_id: str,
    payment_method_id: str,
) -> OffSessionCharge:
    """Charge a saved card with the customer away: one confirmed PaymentIntent under the deterministic key
    `walletsvc:auto_topup:<id>`, so that a resumed job (or reconcile) gets the same PaymentIntent back.
    A decline is an answer, not an error; ProviderUnavailable means: ask again later, with the same key."""

    async def create() -> Any:
        try:
            return await gateway.client.v1.payment_intents.create_async(
                params={
                    "amount": amount.amount,
                    "currency": amount.currency.lower(),
                    "customer": customer_id,
                    "payment_method": payment_method_id,
                    "off_session": True,
                    "confirm": True,
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "description": f"Automatic wallet top-up {topup_id}",
                    "metadata": {
                        "topup_id": topup_id,
                        "tenant_id": tenant_id,
                        "auto_topup_id": auto_topup_id,
                    },
                },
                options={"idempotency_key": f"walletsvc:auto_topup:{auto_topup_id}"},
            )
        except stripe.CardError as exc:
            body = exc.json_body if isinstance(exc.json_body, dict) else {}
            error = body.get("error")
            return _Declined(error if isinstance(error, dict) else {"message": exc.user_message})

    answer = await gateway._call(create)
    if answer.get("object") != "walletsvc.card_error":
        return charge_of(answer)
    error = obj_at(answer, "error")
    intent = obj_at(error, "payment_intent")
    code = str_at(error, "decline_code") or str_at(error, "code")
    if intent:
        read = charge_of({**intent, "last_payment_error": intent.get("last_payment_error") or error})
        if read.state is not ChargeState.PROCESSING:
            return read
    if code in AUTHENTICATION_CODES:
        return OffSessionCharge(
            ChargeState.REQUIRES_ACTION,
            str_at(intent, "id"),
            None,
            str_at(error, "message") or "the card issuer asks the customer to authenticate",
            code,
        )
    return OffSessionCharge(
        ChargeState.DECLINED,
        str_at(intent, "id"),
        None,
        str_at(error, "message") or "the card was declined",
        code or "card_declined",
    )
