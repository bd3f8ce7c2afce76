"""Top-ups: their lifecycle, limits, bonuses, and what a provider's confirmation must match."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from walletsvc.domain.errors import AboveMaximum, BelowMinimum, InvalidRequest
from walletsvc.domain.money import Money, minor_digits, round_minor
from walletsvc.domain.tenants import ProviderName


class TopupStatus(StrEnum):
    PENDING = "pending"  # checkout started; the provider has not confirmed
    SUCCEEDED = "succeeded"  # confirmed and credited (exactly once)
    FAILED = "failed"  # the provider said the payment failed; a later success still credits
    FLAGGED = "flagged"  # the provider confirmed a different amount or currency: nothing credited


class CheckoutKind(StrEnum):
    REDIRECT = "redirect"  # Stripe Checkout: send the browser to `url`
    CLIENT_SECRET = "client_secret"  # noqa: S105 - Stripe Elements: confirm a PaymentIntent in the page
    RAZORPAY_MODAL = "razorpay_modal"  # Razorpay Checkout: open the modal with these fields


@dataclass(frozen=True, slots=True)
class Topup:
    id: str
    tenant_id: str
    provider: ProviderName
    status: TopupStatus
    amount: Money
    checkout_kind: CheckoutKind
    save_payment_method: bool
    provider_checkout_id: str | None  # Stripe Checkout Session id or Razorpay order id
    provider_payment_id: str | None  # Stripe PaymentIntent id or Razorpay payment id
    credited: Money | None
    bonus: Money | None
    refunded: Money
    status_reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    succeeded_at: datetime | None

    def age_at_least(self, age: timedelta, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) - self.created_at >= age

    @property
    def refundable(self) -> int:
        """What may still be refunded to the card: what was credited, less what was refunded."""
        return 0 if self.credited is None else self.credited.amount - self.refunded.amount


@dataclass(frozen=True, slots=True)
class TopupEvent:
    """One step in a top-up's history: created, redirected, credited, failed ... and what told us."""

    kind: str
    source: str
    detail: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TopupRefund:
    """A refund of a top-up to the card or account it came from."""

    id: str
    tenant_id: str
    topup_id: str
    amount: Money
    status: str  # pending, succeeded, failed, flagged (the provider reported it wrongly: for review)
    provider_refund_id: str | None
    reason: str
    forced: bool
    debited: bool
    held: int  # reserved on the wallet for it until it is debited or fails
    failure_reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


def default_minimum(currency: str) -> int:
    """One major unit (Rs 1, $1, ¥1) when no minimum is configured for the currency."""
    return int(10 ** minor_digits(currency))


def default_maximum(currency: str) -> int:
    """100,000 major units when no maximum is configured."""
    return int(100_000 * 10 ** minor_digits(currency))


def check_topup_amount(amount: Money, *, minimums: Mapping[str, int], maximums: Mapping[str, int]) -> None:
    minimum = minimums.get(amount.currency, default_minimum(amount.currency))
    maximum = maximums.get(amount.currency, default_maximum(amount.currency))
    if amount.amount < minimum:
        raise BelowMinimum(
            f"the smallest top-up is {Money(minimum, amount.currency).format()}",
            minimum=minimum,
            currency=amount.currency,
        )
    if amount.amount > maximum:
        raise AboveMaximum(
            f"the largest top-up is {Money(maximum, amount.currency).format()}",
            maximum=maximum,
            currency=amount.currency,
        )


@dataclass(frozen=True, slots=True)
class BonusRule:
    """From `min_amount` on, a top-up earns `percent` % of itself or a `fixed_amount`, optionally
    only between `starts_at` and `ends_at`."""

    id: str
    currency: str
    min_amount: int
    percent: Decimal | None
    fixed_amount: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    active: bool

    def __post_init__(self) -> None:
        if (self.percent is None) == (self.fixed_amount is None):
            raise InvalidRequest("a bonus rule has either a percent or a fixed amount, not both")
        if self.percent is not None and not Decimal(0) < self.percent <= Decimal(100):
            raise InvalidRequest("a bonus percent is more than 0 and at most 100")
        if self.fixed_amount is not None and self.fixed_amount <= 0:
            raise InvalidRequest("a fixed bonus is more than 0")
        if self.min_amount < 0:
            raise InvalidRequest("a bonus rule's min_amount is 0 or more")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise InvalidRequest("a bonus rule ends after it starts")

    def applies(self, amount: Money, at: datetime) -> bool:
        return (
            self.active
            and amount.currency == self.currency
            and amount.amount >= self.min_amount
            and (self.starts_at is None or self.starts_at <= at)
            and (self.ends_at is None or at < self.ends_at)
        )

    def bonus_for(self, amount: Money) -> Money:
        if self.fixed_amount is not None:
            return Money(self.fixed_amount, amount.currency)
        assert self.percent is not None
        return Money(round_minor(Decimal(amount.amount) * self.percent / 100), amount.currency)


def best_bonus(amount: Money, rules: Iterable[BonusRule], at: datetime) -> tuple[BonusRule, Money] | None:
    """The one rule that gives the most (bonuses do not stack); None when no rule applies."""
    candidates = [(rule, rule.bonus_for(amount)) for rule in rules if rule.applies(amount, at)]
    candidates = [(rule, bonus) for rule, bonus in candidates if bonus.amount > 0]
    if not candidates:
        return None
    return max(candidates, key=lambda pair: (pair[1].amount, pair[0].id))


def confirmation_mismatch(expected: Money, confirmed: Money) -> str | None:
    """Why a provider's confirmation cannot be credited, or None when it matches the top-up."""
    if confirmed.currency != expected.currency:
        return f"the provider confirmed {confirmed.currency}, the top-up is in {expected.currency}"
    if confirmed.amount != expected.amount:
        return f"the provider confirmed {confirmed.format()}, the top-up was for {expected.format()}"
    return None
