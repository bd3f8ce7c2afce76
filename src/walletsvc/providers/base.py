"""What the rest of walletsvc knows of a payment provider: a few plain values and one small protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind


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
    amount: Money | None  # what the provider confirms; only meaningful when PAID
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
