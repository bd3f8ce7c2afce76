"""Top-ups, checkouts, refunds and bonus rules as the API shows them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from walletsvc.api.schemas import examples
from walletsvc.api.schemas.common import NO_NUL_PATTERN, MoneyOut
from walletsvc.api.schemas.wallets import MAX_AMOUNT
from walletsvc.domain.money import Money
from walletsvc.domain.topups import BonusRule, Topup, TopupEvent, TopupRefund
from walletsvc.providers.base import Checkout

ID_PATTERN = r"^[A-Za-z0-9_]{1,64}$"


def _money(value: Money | None) -> MoneyOut | None:
    return None if value is None else MoneyOut.of(value.amount, value.currency)


class TopupCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.TOPUP_CREATE))
    amount: StrictInt = Field(gt=0, le=MAX_AMOUNT, description="Minor units, in the wallet's currency")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="Optional; the wallet's")
    save_payment_method: StrictBool = Field(
        default=False, description="Keep the card for auto top-up (Stripe: setup_future_usage=off_session)"
    )
    checkout: Literal["redirect", "client_secret"] | None = Field(
        default=None,
        description="For card checkouts: a hosted page (`redirect`, the default) or a PaymentIntent for "
        "Stripe Elements (`client_secret`). Ignored by tenants that pay through a checkout modal.",
    )
    provider: Literal["stripe", "razorpay"] | None = Field(
        default=None, description="Admins only: override the routing rules"
    )


class RedirectCheckout(BaseModel):
    kind: Literal["redirect"] = "redirect"
    url: str = Field(description="Send the browser here")
    expires_at: int | None = None


class ClientSecretCheckout(BaseModel):
    kind: Literal["client_secret"] = "client_secret"
    client_secret: str = Field(description="Confirm the payment with this in the page")
    publishable_key: str | None
    payment_intent_id: str


class RazorpayModalCheckout(BaseModel):
    kind: Literal["razorpay_modal"] = "razorpay_modal"
    key_id: str
    order_id: str
    amount: StrictInt = Field(description="Minor units (paise)")
    currency: str
    name: str
    description: str
    notes: dict[str, str]


CheckoutOut = Annotated[
    RedirectCheckout | ClientSecretCheckout | RazorpayModalCheckout, Field(discriminator="kind")
]


def checkout_out(checkout: Checkout) -> RedirectCheckout | ClientSecretCheckout | RazorpayModalCheckout:
    data = checkout.data
    if checkout.kind.value == "redirect":
        return RedirectCheckout(url=data["url"], expires_at=data.get("expires_at"))
    if checkout.kind.value == "client_secret":
        return ClientSecretCheckout(
            client_secret=data["client_secret"],
            publishable_key=data.get("publishable_key"),
            payment_intent_id=data["payment_intent_id"],
        )
    return RazorpayModalCheckout(**data)


class TopupEventOut(BaseModel):
    kind: str
    source: str
    detail: str
    created_at: datetime


class RefundOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.REFUND))
    id: str
    topup_id: str
    tenant_id: str
    amount: MoneyOut
    status: Literal["pending", "succeeded", "failed", "flagged"] = Field(
        description="`flagged`: the provider reported another amount than was asked for; nothing was "
        "debited and the money stays held until someone looks at it"
    )
    reason: str
    forced: bool
    debited: bool = Field(description="Whether the wallet has been debited for it (exactly once)")
    held: MoneyOut = Field(description="What it keeps reserved on the wallet until it is debited or fails")
    failure_reason: str | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, r: TopupRefund) -> RefundOut:
        return cls(
            id=r.id,
            topup_id=r.topup_id,
            tenant_id=r.tenant_id,
            amount=MoneyOut.of(r.amount.amount, r.amount.currency),
            status=r.status,
            reason=r.reason,
            forced=r.forced,
            debited=r.debited,
            held=MoneyOut.of(r.held, r.amount.currency),
            failure_reason=r.failure_reason,
            created_by=r.created_by,
            created_at=r.created_at,
        )


class TopupOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.TOPUP))
    id: str
    tenant_id: str
    status: Literal["pending", "succeeded", "failed", "flagged"]
    status_reason: str | None = Field(description="Why it failed or was flagged")
    amount: MoneyOut
    credited: MoneyOut | None = Field(description="What the provider confirmed and the wallet received")
    bonus: MoneyOut | None
    refunded: MoneyOut
    checkout_kind: Literal["redirect", "client_secret", "razorpay_modal"]
    save_payment_method: bool
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None

    @classmethod
    def of(cls, t: Topup) -> TopupOut:
        return cls(
            id=t.id,
            tenant_id=t.tenant_id,
            status=t.status.value,
            status_reason=t.status_reason,
            amount=MoneyOut.of(t.amount.amount, t.amount.currency),
            credited=_money(t.credited),
            bonus=_money(t.bonus),
            refunded=MoneyOut.of(t.refunded.amount, t.refunded.currency),
            checkout_kind=t.checkout_kind.value,
            save_payment_method=t.save_payment_method,
            created_at=t.created_at,
            updated_at=t.updated_at,
            succeeded_at=t.succeeded_at,
        )


class TopupCreated(TopupOut):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.TOPUP_CREATED))
    checkout: CheckoutOut


class TopupDetail(TopupOut):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.TOPUP_DETAIL))
    history: list[TopupEventOut]
    refunds: list[RefundOut]

    @classmethod
    def build(cls, t: Topup, events: list[TopupEvent], refunds: list[TopupRefund]) -> TopupDetail:
        return cls(
            **TopupOut.of(t).model_dump(),
            history=[
                TopupEventOut(kind=e.kind, source=e.source, detail=e.detail, created_at=e.created_at)
                for e in events
            ],
            refunds=[RefundOut.of(r) for r in refunds],
        )


class RazorpayVerify(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.RAZORPAY_VERIFY))
    razorpay_order_id: str = Field(pattern=ID_PATTERN)
    razorpay_payment_id: str = Field(pattern=ID_PATTERN)
    razorpay_signature: str = Field(pattern=r"^[0-9a-f]{64}$")


class RefundCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.REFUND_CREATE))
    amount: StrictInt | None = Field(
        default=None, gt=0, le=MAX_AMOUNT, description="Omit to refund all that is left"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL_PATTERN)
    force: StrictBool = Field(
        default=False, description="Refund even if the wallet no longer holds that much (it may go negative)"
    )

    @field_validator("reason")
    @classmethod
    def _reason_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the reason must say something")
        return value.strip()


PERCENT_PATTERN = r"^(100(\.0{1,4})?|[0-9]{1,2}(\.[0-9]{1,4})?)$"


class BonusRuleFields(BaseModel):
    min_amount: StrictInt = Field(
        ge=0, le=MAX_AMOUNT, description="Minor units: the rule applies from here on"
    )
    percent: str | None = Field(
        default=None,
        pattern=PERCENT_PATTERN,
        description='A decimal string, e.g. "5" or "2.5" (never a float); or give fixed_amount',
    )
    fixed_amount: StrictInt | None = Field(default=None, gt=0, le=MAX_AMOUNT, description="Minor units")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    active: StrictBool = True
    description: str = Field(default="", max_length=500, pattern=NO_NUL_PATTERN)


class BonusRuleCreate(BonusRuleFields):
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class BonusRulePatch(BaseModel):
    min_amount: StrictInt | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    percent: str | None = Field(default=None, pattern=PERCENT_PATTERN)
    fixed_amount: StrictInt | None = Field(default=None, gt=0, le=MAX_AMOUNT)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    active: StrictBool | None = None
    description: str | None = Field(default=None, max_length=500, pattern=NO_NUL_PATTERN)

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> BonusRulePatch:
        # Omitted means unchanged; an explicit null would write NULL into a NOT NULL column (a 500).
        for name in ("min_amount", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; omit it to leave it unchanged")
        return self


class BonusRuleOut(BaseModel):
    id: str
    currency: str
    min_amount: MoneyOut
    percent: str | None
    fixed_amount: MoneyOut | None
    starts_at: datetime | None
    ends_at: datetime | None
    active: bool
    description: str

    @classmethod
    def of(cls, rule: BonusRule, description: str) -> BonusRuleOut:
        c = rule.currency
        return cls(
            id=rule.id,
            currency=c,
            min_amount=MoneyOut.of(rule.min_amount, c),
            percent=None if rule.percent is None else format(rule.percent.normalize(), "f"),
            fixed_amount=None if rule.fixed_amount is None else MoneyOut.of(rule.fixed_amount, c),
            starts_at=rule.starts_at,
            ends_at=rule.ends_at,
            active=rule.active,
            description=description,
        )


def percent_of(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
