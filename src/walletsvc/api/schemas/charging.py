"""Plans, subscriptions, call authorization and usage charges as the API shows them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictBool, StrictInt

from walletsvc.api.schemas import examples
from walletsvc.api.schemas.common import NO_NUL_PATTERN, MoneyOut
from walletsvc.api.schemas.wallets import MAX_AMOUNT, TENANT_ID_PATTERN
from walletsvc.domain.charging import UsageCharge
from walletsvc.domain.plans import Plan, Subscription
from walletsvc.domain.rating import Rates, UsageKind

# Rates are decimal strings of minor units, never floats: "42" paise a minute is 0.7 paise a second.
RATE_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,6})?$"
REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@/+=-]{0,199}$"
Rate = str


def money(amount: int, currency: str) -> MoneyOut:
    return MoneyOut.of(amount, currency)


class RatesIn(BaseModel):
    per_minute_rate: Rate = Field(
        pattern=RATE_PATTERN, description="Minor units per minute, a decimal string"
    )
    billing_increment_seconds: StrictInt = Field(default=60, ge=1, le=3600, description="60: by the minute")
    minimum_billable_seconds: StrictInt = Field(default=0, ge=0, le=3600)
    connection_fee: Rate = Field(
        default="0", pattern=RATE_PATTERN, description="Minor units per connected call"
    )
    sms_price: Rate = Field(default="0", pattern=RATE_PATTERN, description="Minor units per SMS")
    email_price: Rate = Field(default="0", pattern=RATE_PATTERN)
    fax_page_price: Rate = Field(default="0", pattern=RATE_PATTERN)
    file_transfer_price: Rate = Field(default="0", pattern=RATE_PATTERN)

    def to_rates(self, currency: str) -> Rates:
        return Rates(
            currency=currency,
            per_minute_rate=Decimal(self.per_minute_rate),
            billing_increment_seconds=self.billing_increment_seconds,
            minimum_billable_seconds=self.minimum_billable_seconds,
            connection_fee=Decimal(self.connection_fee),
            unit_prices={
                UsageKind.SMS: Decimal(self.sms_price),
                UsageKind.EMAIL: Decimal(self.email_price),
                UsageKind.FAX: Decimal(self.fax_page_price),
                UsageKind.FILE_TRANSFER: Decimal(self.file_transfer_price),
            },
        )


class RatesOut(BaseModel):
    currency: str
    per_minute_rate: Rate
    billing_increment_seconds: int
    minimum_billable_seconds: int
    connection_fee: Rate
    sms_price: Rate
    email_price: Rate
    fax_page_price: Rate
    file_transfer_price: Rate

    @classmethod
    def of(cls, rates: Rates) -> RatesOut:
        def text(value: Decimal) -> str:
            return format(value.normalize(), "f")

        return cls(
            currency=rates.currency,
            per_minute_rate=text(rates.per_minute_rate),
            billing_increment_seconds=rates.billing_increment_seconds,
            minimum_billable_seconds=rates.minimum_billable_seconds,
            connection_fee=text(rates.connection_fee),
            sms_price=text(rates.unit_prices.get(UsageKind.SMS, Decimal(0))),
            email_price=text(rates.unit_prices.get(UsageKind.EMAIL, Decimal(0))),
            fax_page_price=text(rates.unit_prices.get(UsageKind.FAX, Decimal(0))),
            file_transfer_price=text(rates.unit_prices.get(UsageKind.FILE_TRANSFER, Decimal(0))),
        )


class PlanCreate(RatesIn):
    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$", description="Omit to have one made"
    )
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL_PATTERN)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    monthly_price: StrictInt = Field(ge=0, le=MAX_AMOUNT, description="Minor units per period")
    included_minutes: StrictInt = Field(default=0, ge=0, le=10_000_000, description="The quota per period")
    features: list[str] = Field(default_factory=list, max_length=50)
    active: StrictBool = True


class PlanPatch(BaseModel):
    # A plan's currency and id never change: a field this model does not know is refused, not ignored.
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=NO_NUL_PATTERN)
    monthly_price: StrictInt | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    included_minutes: StrictInt | None = Field(default=None, ge=0, le=10_000_000)
    per_minute_rate: Rate | None = Field(default=None, pattern=RATE_PATTERN)
    billing_increment_seconds: StrictInt | None = Field(default=None, ge=1, le=3600)
    minimum_billable_seconds: StrictInt | None = Field(default=None, ge=0, le=3600)
    connection_fee: Rate | None = Field(default=None, pattern=RATE_PATTERN)
    sms_price: Rate | None = Field(default=None, pattern=RATE_PATTERN)
    email_price: Rate | None = Field(default=None, pattern=RATE_PATTERN)
    fax_page_price: Rate | None = Field(default=None, pattern=RATE_PATTERN)
    file_transfer_price: Rate | None = Field(default=None, pattern=RATE_PATTERN)
    features: list[str] | None = Field(default=None, max_length=50)
    active: StrictBool | None = None


class PlanOut(BaseModel):
    id: str
    name: str
    currency: str
    monthly_price: MoneyOut
    included_minutes: int
    rates: RatesOut
    features: list[str]
    active: bool

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        return cls(
            id=plan.id,
            name=plan.name,
            currency=plan.currency,
            monthly_price=money(plan.monthly_price, plan.currency),
            included_minutes=plan.included_minutes,
            rates=RatesOut.of(plan.rates),
            features=list(plan.features),
            active=plan.active,
        )


class QuotaOut(BaseModel):
    included_seconds: int
    used_seconds: int
    remaining_seconds: int


class SubscriptionOut(BaseModel):
    tenant_id: str
    plan: PlanOut | None = Field(description="null: no plan; the currency's default rates apply")
    period_start: datetime | None
    period_end: datetime | None
    quota: QuotaOut
    rates: RatesOut = Field(description="The rates charged now")

    @classmethod
    def of(
        cls, tenant_id: str, plan: Plan | None, subscription: Subscription | None, rates: Rates
    ) -> SubscriptionOut:
        included = plan.included_minutes * 60 if plan else 0
        used = subscription.quota_used_seconds if subscription else 0
        return cls(
            tenant_id=tenant_id,
            plan=PlanOut.of(plan) if plan else None,
            period_start=subscription.period_start if subscription else None,
            period_end=subscription.period_end if subscription else None,
            quota=QuotaOut(
                included_seconds=included, used_seconds=used, remaining_seconds=max(included - used, 0)
            ),
            rates=RatesOut.of(rates),
        )


class SubscriptionChange(BaseModel):
    plan_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")


class AuthorizeIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.AUTHORIZE_IN))
    tenant_id: str | None = Field(
        default=None, pattern=TENANT_ID_PATTERN, description="Platform-wide keys only"
    )
    max_duration_seconds: StrictInt | None = Field(default=None, ge=1, le=86_400)


class AuthorizeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.AUTHORIZE_OUT))
    call_id: str
    tenant_id: str
    allowed: bool
    max_seconds: int = Field(description="How long the call may run on the balance and quota")
    hold: MoneyOut | None = Field(description="Held until the hangup charge settles it")
    expires_at: datetime | None
    reason: str | None
    code: str | None = Field(
        description="Why not: BELOW_MINIMUM, INSUFFICIENT_FUNDS, CONCURRENT_CALL_LIMIT, ..."
    )
    available: MoneyOut = Field(description="The available balance after the hold")


class UsageIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.USAGE_IN))
    tenant_id: str | None = Field(
        default=None, pattern=TENANT_ID_PATTERN, description="Platform-wide keys only"
    )
    kind: UsageKind
    reference_id: str = Field(
        pattern=REFERENCE_PATTERN, description="The call id, message id, ...: unique per kind"
    )
    duration_seconds: StrictInt | None = Field(default=None, ge=0, le=86_400, description="Calls")
    quantity: StrictInt | None = Field(
        default=None, ge=1, le=100_000, description="Messages, fax pages, files"
    )


# A usage record as it came, any JSON value, documented as UsageIn: the route validates it with
# api/telephony.usage_of, so that a malformed record of a batch is refused on its own, in its place.
UsageDocument = Annotated[Any, PlainValidator(lambda document: document, json_schema_input_type=UsageIn)]


# Only the envelope is validated whole (an object whose `records` is a list of 1 to 1,000 items).
class UsageBatchIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.USAGE_BATCH_IN))
    records: list[UsageDocument] = Field(min_length=1, max_length=1000)


class ChargeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.CHARGE))
    id: str
    tenant_id: str
    kind: UsageKind
    reference_id: str
    quantity: int
    duration_seconds: int | None
    billable_seconds: int
    quota_seconds: int = Field(description="Seconds paid by the plan's included minutes")
    paid_seconds: int
    amount: MoneyOut = Field(description="What the usage cost")
    charged: MoneyOut = Field(description="What the wallet paid")
    owed: MoneyOut = Field(description="What the wallet could not pay; paid off by the next credit")
    refunded: MoneyOut
    hold_released: MoneyOut
    replayed: bool = Field(description="True when this reference was charged before: the first charge")
    created_at: datetime

    @classmethod
    def of(cls, charge: UsageCharge, *, replayed: bool = False) -> ChargeOut:
        return cls.model_validate(charge_document(charge, replayed=replayed))


def charge_document(charge: UsageCharge, *, replayed: bool = False) -> dict[str, Any]:
    """A charge as ChargeOut shows it, as plain values: the usage routes answer up to a thousand of these
    at a time, and building them as models (six each) cost more than writing them."""
    c = charge.amount.currency
    return {
        "id": str(charge.id),
        "tenant_id": charge.tenant_id,
        "kind": charge.kind.value,
        "reference_id": charge.reference_id,
        "quantity": charge.quantity,
        "duration_seconds": charge.duration_seconds,
        "billable_seconds": charge.billable_seconds,
        "quota_seconds": charge.quota_seconds,
        "paid_seconds": charge.paid_seconds,
        "amount": {"amount": charge.amount.amount, "currency": c},
        "charged": {"amount": charge.charged, "currency": c},
        "owed": {"amount": charge.owed, "currency": c},
        "refunded": {"amount": charge.refunded, "currency": c},
        "hold_released": {"amount": charge.hold_amount, "currency": c},
        "replayed": replayed,
        "created_at": charge.created_at,
    }


class BatchResult(BaseModel):
    index: int
    status: int = Field(description="What this record alone would have answered: 201, 402, 404, 422, ...")
    charge: ChargeOut | None = None
    problem: dict[str, Any] | None = None


class UsageBatchOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.USAGE_BATCH_OUT))
    results: list[BatchResult]


class ChargeRefundIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.CHARGE_REFUND_IN))
    amount: StrictInt | None = Field(default=None, gt=0, le=MAX_AMOUNT, description="Omit to refund the rest")
    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL_PATTERN)


class ChargeRefundOut(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.of(examples.CHARGE_REFUND))
    id: str
    charge_id: str
    amount: MoneyOut
    to_wallet: MoneyOut = Field(description="Credited back to the wallet")
    forgiven: MoneyOut = Field(description="Taken off what was owed")
    quota_seconds: int = Field(description="Given back to the current period's quota")
    reason: str
    created_by: str
    created_at: datetime
    charge: ChargeOut


class BillingDefaultsIn(RatesIn):
    minimum_balance: StrictInt = Field(ge=0, le=MAX_AMOUNT, description="Minor units a call needs to start")


class BillingDefaultsOut(BaseModel):
    rates: RatesOut
    minimum_balance: MoneyOut


class TenantPatch(BaseModel):
    low_balance_threshold: StrictInt | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    max_concurrent_calls: StrictInt | None = Field(
        default=None, ge=1, le=100_000, description="null: no limit"
    )
    daily_spend_cap: StrictInt | None = Field(default=None, ge=1, le=MAX_AMOUNT, description="null: no cap")
    payments_provider: Literal["stripe", "razorpay"] | None = None
