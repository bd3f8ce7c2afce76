"""What the rest of walletsvc knows of a payment provider: a few plain values and one small protocol."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from walletsvc.domain.errors import ProviderUnavailable
from walletsvc.domain.money import CURRENCIES, Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind

# No provider takes an amount of more than 12 digits (Stripe: 8, 12 for a few currencies); anything
# larger is nonsense, and would not fit the ledger's BIGINT either.
MAX_PROVIDER_AMOUNT = 10**15

# What PostgreSQL text and JSONB cannot hold: NUL, and UTF-16 surrogates that JSON lets through unpaired.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class PaymentState(StrEnum):
    PAID = "paid"  # captured: credit it
    PENDING = "pending"  # not decided yet (open session, authorized, async method on its way)
    FAILED = "failed"  # declined or expired


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    topup_id: str
    tenant_id: str
    tenant_name: str
    amount: Money
    kind: CheckoutKind
    save_payment_method: bool


@dataclass(frozen=True, slots=True)
class Checkout:
    kind: CheckoutKind
    checkout_id: str  # Stripe Checkout Session / PaymentIntent id, or Razorpay order id
    payment_id: str | None  # known at once for a PaymentIntent
    data: dict[str, Any] = field(default_factory=dict)  # what the portal needs; never a secret key


@dataclass(frozen=True, slots=True)
class PaymentStatus:
    state: PaymentState
    # What the provider confirms; only meaningful when PAID. PAID with None: the provider's amount could
    # not be read (missing or malformed), `reason` says why, and the top-up is flagged, not credited.
    amount: Money | None
    payment_id: str | None
    reason: str | None = None


class RefundState(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund_id: str
    state: RefundState
    amount: Money


class PaymentGateway(Protocol):
    name: ProviderName

    async def create_checkout(self, request: CheckoutRequest, *, customer_id: str | None) -> Checkout: ...

    async def payment_status(self, checkout_id: str, kind: CheckoutKind) -> PaymentStatus: ...

    async def refund(
        self, *, payment_id: str, amount: Money, refund_id: str, topup_id: str, tenant_id: str, reason: str
    ) -> RefundResult: ...


# --- reading provider payloads -------------------------------------------------------------------------
# Every field walletsvc reads from a provider's event or API answer goes through one of these: the right
# type comes back (None or {} when the field is absent or null), any other type raises MalformedPayload.
# Nothing is coerced or guessed, so a payload of the wrong shape never moves money.


class MalformedPayload(ProviderUnavailable):
    """A provider's event or API answer with the wrong shape where walletsvc reads it: an object that is
    a string, an id that is a number, an amount that is not an integer of minor units. A webhook event is
    stored and answered as malformed (services/webhooks.py); an API answer counts as the provider failing
    (503 PROVIDER_UNAVAILABLE; reconcile reports it and asks again on its next run)."""


def shown(value: object) -> str:
    """A short, storable rendering of a provider's value for a reason text."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)  # escapes NUL and surrogates; floats keep their fraction
    return text if len(text) <= 40 else text[:37] + "..."


def obj_at(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """obj[key] as an object: {} when absent or null."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedPayload(f"`{key}` is {shown(value)}, not an object")
    return value


def str_at(obj: Mapping[str, Any], key: str) -> str | None:
    """obj[key] as a string: None when absent, null or empty."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"`{key}` is {shown(value)}, not a string")
    if _UNSTORABLE.search(value):
        raise MalformedPayload(f"`{key}` holds a NUL character or an unpaired surrogate")
    return value


def required_str(obj: Mapping[str, Any], key: str) -> str:
    value = str_at(obj, key)
    if value is None:
        raise MalformedPayload(f"`{key}` is missing")
    return value


def id_at(obj: Mapping[str, Any], key: str) -> str | None:
    """An expandable reference (Stripe): the id string, or the expanded object carrying it."""
    if isinstance(obj.get(key), dict):
        return str_at(obj[key], "id")
    return str_at(obj, key)


def objects_at(obj: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """obj[key] as a list of objects: [] when absent or null."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"`{key}` is {shown(value)}, not a list")
    for item in value:
        if not isinstance(item, dict):
            raise MalformedPayload(f"an item of `{key}` is {shown(item)}, not an object")
    return value


def provider_money(amount: object, currency: object, *, name: str, positive: bool = False) -> Money:
    """The one rule for an amount a provider names: an integer of minor units (never a float, a string,
    a bool or null), 0 or more (more than 0 when `positive`), at most MAX_PROVIDER_AMOUNT, beside a known
    ISO 4217 currency. Anything else raises MalformedPayload: an amount is never coerced."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MalformedPayload(f"`{name}` is {shown(amount)}, not an integer of minor units")
    if amount < (1 if positive else 0):
        raise MalformedPayload(f"`{name}` is {amount}, not {'more than 0' if positive else '0 or more'}")
    if amount > MAX_PROVIDER_AMOUNT:
        raise MalformedPayload(f"`{name}` is {shown(amount)}, more than any payment")
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        raise MalformedPayload(f"`currency` is {shown(currency)}, not an ISO 4217 currency code")
    return Money(amount, currency.upper())


def paid_status(amount: object, currency: object, payment_id: str | None, *, name: str) -> PaymentStatus:
    """A payment the provider calls paid, for the amount it names. An amount that cannot be read credits
    nothing: the status carries no amount and why, and the top-up is flagged for review."""
    try:
        money = provider_money(amount, currency, name=name)
    except MalformedPayload as exc:
        return PaymentStatus(PaymentState.PAID, None, payment_id, f"unreadable amount: {exc.detail}")
    return PaymentStatus(PaymentState.PAID, money, payment_id)
