"""Auto top-up settings, attempts and saved payment methods as the API shows and takes them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from walletsvc.api.schemas.common import NO_NUL_PATTERN, MoneyOut
from walletsvc.api.schemas.wallets import MAX_AMOUNT
from walletsvc.domain.auto_topup import AutoTopup, SavedPaymentMethod
from walletsvc.services.auto_topup import UNSET, AutoTopupView, SettingsChange

PAYMENT_METHOD_ID_PATTERN = r"^[A-Za-z0-9_]{1,64}$"

_EXAMPLE: dict[str, Any] = {
    "enabled": True,
    "threshold": 500,
    "amount": 2000,
    "payment_method_id": "pm_1QXyZ2AbCdEfGhIj",
    "max_per_day": 2,
    "monthly_cap": 20000,
}


_OUT_EXAMPLE: dict[str, Any] = {
    "enabled": True,
    "active": True,
    "threshold": {"amount": 500, "currency": "USD"},
    "amount": {"amount": 2000, "currency": "USD"},
    "target_balance": None,
    "payment_method_id": None,
    "default_payment_method_id": "pm_1QXyZ2AbCdEfGhIj",
    "max_per_day": 2,
    "monthly_cap": {"amount": 20000, "currency": "USD"},
    "locked": False,
    "locked_reason": None,
    "disabled_reason": None,
    "consecutive_failures": 0,
    "paused_until": None,
    "in_flight": None,
}


class AutoTopupIn(BaseModel):
    """What to change; a field left out keeps its value. Amounts are integers of minor units in the
    wallet's currency."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})
    enabled: StrictBool | None = None
    threshold: StrictInt | None = Field(
        default=None, ge=0, le=MAX_AMOUNT, description="Below this available balance an auto top-up starts"
    )
    amount: StrictInt | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, description="A fixed top-up (what the wallet owes is added)"
    )
    target_balance: StrictInt | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, description="Instead of amount: top up to this available balance"
    )
    payment_method_id: str | None = Field(
        default=None,
        pattern=PAYMENT_METHOD_ID_PATTERN,
        description="A saved payment method (GET /v1/payment-methods); null: the default one",
    )
    max_per_day: StrictInt | None = Field(default=None, ge=1, le=24, description="Default 2")
    monthly_cap: StrictInt | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, description="Most auto top-ups may add in a calendar month (UTC)"
    )
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="Optional: checked against the wallet's currency"
    )

    @model_validator(mode="after")
    def _one_amount(self) -> AutoTopupIn:
        if self.amount is not None and self.target_balance is not None:
            raise ValueError("give either amount (a fixed top-up) or target_balance (top up to), not both")
        return self

    def change(self, **extra: Any) -> SettingsChange:
        sent = self.model_fields_set
        amount_sent = "amount" in sent or "target_balance" in sent
        return SettingsChange(
            enabled=self.enabled,
            threshold=self.threshold,
            amount=self.amount if amount_sent else UNSET,
            target_balance=self.target_balance if amount_sent else UNSET,
            payment_method_id=self.payment_method_id if "payment_method_id" in sent else UNSET,
            max_per_day=self.max_per_day,
            monthly_cap=self.monthly_cap if "monthly_cap" in sent else UNSET,
            currency=self.currency,
            **extra,
        )


class AdminAutoTopupIn(AutoTopupIn):
    """An admin's change: the same fields, and the lock."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"locked": True, "locked_reason": "RBI e-mandate pending"}]},
    )
    locked: StrictBool | None = Field(
        default=None, description="Locked: auto top-up stays off, whatever the owner sets"
    )
    locked_reason: str | None = Field(default=None, max_length=500, pattern=NO_NUL_PATTERN)

    def admin_change(self) -> SettingsChange:
        return self.change(
            locked=self.locked,
            locked_reason=self.locked_reason if "locked_reason" in self.model_fields_set else UNSET,
        )


class AutoTopupAttemptOut(BaseModel):
    id: str
    status: str = Field(
        description="created, processing, requires_action, succeeded, failed, refused, canceled"
    )
    amount: MoneyOut | None
    topup_id: str | None
    trigger_available: MoneyOut = Field(description="The available balance that started it")
    action_url: str | None = Field(description="requires_action: where the customer confirms the payment")
    failure_reason: str | None
    failure_code: str | None
    created_at: datetime
    settled_at: datetime | None

    @classmethod
    def of(cls, attempt: AutoTopup) -> AutoTopupAttemptOut:
        c = attempt.currency
        return cls(
            id=attempt.id,
            status=attempt.status.value,
            amount=MoneyOut.of(attempt.amount, c) if attempt.amount is not None else None,
            topup_id=attempt.topup_id,
            trigger_available=MoneyOut.of(attempt.trigger_available, c),
            action_url=attempt.action_url if attempt.status.value == "requires_action" else None,
            failure_reason=attempt.failure_reason,
            failure_code=attempt.failure_code,
            created_at=attempt.created_at,
            settled_at=attempt.settled_at,
        )


class AutoTopupOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_OUT_EXAMPLE]})
    enabled: bool = Field(description="What the owner set")
    active: bool = Field(
        description="Whether balance changes start auto top-ups now: enabled, not locked, not switched off"
    )
    threshold: MoneyOut
    amount: MoneyOut | None
    target_balance: MoneyOut | None
    payment_method_id: str | None = Field(description="null: the default payment method")
    default_payment_method_id: str | None
    max_per_day: int
    monthly_cap: MoneyOut | None
    locked: bool
    locked_reason: str | None
    disabled_reason: str | None = Field(description="consecutive_failures: switched off after declines")
    consecutive_failures: int
    paused_until: datetime | None = Field(description="After a decline or a cap: no new attempt before this")
    in_flight: AutoTopupAttemptOut | None

    @classmethod
    def of(cls, v: AutoTopupView) -> AutoTopupOut:
        c, cfg = v.currency, v.config

        def m(amount: int | None) -> MoneyOut | None:
            return None if amount is None else MoneyOut.of(amount, c)

        return cls(
            enabled=cfg.enabled,
            active=cfg.active,
            threshold=MoneyOut.of(cfg.threshold, c),
            amount=m(cfg.amount),
            target_balance=m(cfg.target_balance),
            payment_method_id=cfg.payment_method_id,
            default_payment_method_id=v.default_payment_method_id,
            max_per_day=cfg.max_per_day,
            monthly_cap=m(cfg.monthly_cap),
            locked=cfg.locked,
            locked_reason=cfg.locked_reason,
            disabled_reason=cfg.disabled_reason,
            consecutive_failures=cfg.consecutive_failures,
            paused_until=v.paused_until,
            in_flight=AutoTopupAttemptOut.of(v.in_flight) if v.in_flight is not None else None,
        )


class PaymentMethodOut(BaseModel):
    """Brand, last 4 and expiry (a UPI mandate: the masked VPA), a mandate's limit and state: never more."""

    id: str
    provider: str
    kind: str = Field(description="card, or upi (a Razorpay UPI AutoPay mandate)")
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    vpa: str | None = Field(default=None, description="UPI AutoPay: the masked VPA (ab****@okhdfc)")
    max_amount: MoneyOut | None = Field(
        default=None, description="A Razorpay mandate's limit per debit: above it a payment link goes instead"
    )
    expires_at: datetime | None = Field(default=None, description="When a Razorpay mandate ends")
    status: str = Field(
        default="active",
        description="active; a Razorpay mandate may also be pending (not yet confirmed by the bank), "
        "paused, rejected, cancelled or expired (its authorization was never paid): only an active one "
        "is charged",
    )
    status_reason: str | None = None
    default: bool
    created_at: datetime

    @classmethod
    def of(cls, method: SavedPaymentMethod, *, default: bool) -> PaymentMethodOut:
        return cls(
            id=method.id,
            provider=method.provider,
            kind=method.kind,
            brand=method.brand,
            last4=method.last4,
            exp_month=method.exp_month,
            exp_year=method.exp_year,
            vpa=method.vpa,
            max_amount=MoneyOut.of(method.max_amount, "INR") if method.max_amount is not None else None,
            expires_at=method.expires_at,
            status=method.status,
            status_reason=method.status_reason,
            default=default,
            created_at=method.created_at,
        )


class PaymentMethodList(BaseModel):
    data: list[PaymentMethodOut]


class MandateSetupIn(BaseModel):
    """Razorpay tenants only (INR): how the recurring mandate is registered. Left out: a card mandate
    with RAZORPAY_MANDATE_MAX_AMOUNT as its limit."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"method": "upi"}]})
    method: Literal["card", "upi"] = Field(default="card", description="card, or upi (UPI AutoPay)")
    max_amount: StrictInt | None = Field(
        default=None, ge=100, le=MAX_AMOUNT, description="The most one debit may take, in paise"
    )


class MandateSetupOut(BaseModel):
    """For Razorpay Checkout: open it with `key`, `order_id`, `customer_id` and `recurring: "1"`. The
    customer's authorization payment (`amount`) is credited to the wallet; Razorpay's `token.confirmed`
    webhook then makes the mandate usable for auto top-up."""

    kind: str = "razorpay_mandate"
    payment_method_id: str
    topup_id: str = Field(description="The top-up carrying the authorization payment")
    key_id: str
    order_id: str
    customer_id: str
    recurring: str = "1"
    method: str
    amount: MoneyOut
    max_amount: MoneyOut
    expires_at: datetime


class SetupIntentOut(BaseModel):
    """For Stripe Elements: confirm the SetupIntent in the page; the card is saved by Stripe's webhook."""

    kind: str = "client_secret"
    setup_intent_id: str
    client_secret: str
    publishable_key: str


class ConfirmationOut(BaseModel):
    """For the portal's confirmation page of a 3-D Secure auto top-up: confirm the PaymentIntent in the
    page with Stripe.js (`stripe.confirmCardPayment(client_secret)`)."""

    kind: str = "client_secret"
    auto_topup_id: str
    payment_intent_id: str
    client_secret: str
    publishable_key: str | None
    amount: MoneyOut | None
