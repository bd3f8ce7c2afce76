"""Rating: what a call or a message costs, quota first, to the minor unit.

Rates are Decimals of minor units (a rate of 0.7 paise a second is `per_minute_rate=Decimal("42")`),
so they may be finer than a minor unit; the total of one charge is turned into whole minor units once,
by `money.round_minor`, the one rounding rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.money import Money, round_minor


class UsageKind(StrEnum):
    CALL = "call"
    SMS = "sms"
    EMAIL = "email"
    FAX = "fax"  # priced per page
    FILE_TRANSFER = "file_transfer"


@dataclass(frozen=True, slots=True)
class Rates:
    """The prices a tenant pays: its plan's, or the defaults for its currency when it has no plan."""

    currency: str
    per_minute_rate: Decimal  # minor units per minute of call
    billing_increment_seconds: int = 60  # 60: rounds up to the minute; 1: by the second
    minimum_billable_seconds: int = 0  # a connected call is billed at least this long
    connection_fee: Decimal = Decimal(0)  # minor units per connected call
    unit_prices: dict[UsageKind, Decimal] = field(default_factory=dict)  # minor units per message/page/file

    def __post_init__(self) -> None:
        if self.billing_increment_seconds < 1:
            raise InvalidRequest("the billing increment is at least 1 second")
        if self.minimum_billable_seconds < 0:
            raise InvalidRequest("the minimum billable duration is 0 or more")
        prices = [self.per_minute_rate, self.connection_fee, *self.unit_prices.values()]
        if any(price < 0 for price in prices):
            raise InvalidRequest("prices are 0 or more")


@dataclass(frozen=True, slots=True)
class Rating:
    kind: UsageKind
    amount: Money  # what the wallet pays
    billable_seconds: int  # calls: the duration after the minimum and the increment
    quota_seconds: int  # calls: the part covered by the plan's included minutes
    paid_seconds: int  # calls: the part paid from the wallet
    quantity: int  # messages, pages, files; 1 for a call


def billable_seconds(duration_seconds: int, rates: Rates) -> int:
    """0 s (never connected) bills nothing; otherwise at least the minimum, rounded up to the increment."""
    if duration_seconds < 0:
        raise InvalidRequest("a duration is 0 seconds or more")
    if duration_seconds == 0:
        return 0
    billed = max(duration_seconds, rates.minimum_billable_seconds)
    increment = rates.billing_increment_seconds
    return -(-billed // increment) * increment


def rate_call(duration_seconds: int, rates: Rates, *, quota_remaining_seconds: int = 0) -> Rating:
    """Quota first: the included minutes cover what they can, the wallet pays the rest at the plan's
    rate. The connection fee is paid by every connected call (quota covers minutes, not fees)."""
    billable = billable_seconds(duration_seconds, rates)
    from_quota = min(billable, max(quota_remaining_seconds, 0))
    paid = billable - from_quota
    total = Decimal(paid) * rates.per_minute_rate / 60
    if billable > 0:
        total += rates.connection_fee
    return Rating(
        kind=UsageKind.CALL,
        amount=Money(round_minor(total), rates.currency),
        billable_seconds=billable,
        quota_seconds=from_quota,
        paid_seconds=paid,
        quantity=1,
    )


def rate_units(kind: UsageKind, quantity: int, rates: Rates) -> Rating:
    """Messages, fax pages and file transfers: quantity times the unit price."""
    if kind is UsageKind.CALL:
        raise InvalidRequest("a call is rated by its duration")
    if quantity < 1:
        raise InvalidRequest("a quantity is 1 or more")
    price = rates.unit_prices.get(kind, Decimal(0))
    return Rating(
        kind=kind,
        amount=Money(round_minor(Decimal(quantity) * price), rates.currency),
        billable_seconds=0,
        quota_seconds=0,
        paid_seconds=0,
        quantity=quantity,
    )


def affordable_seconds(
    available: int, rates: Rates, *, quota_remaining_seconds: int, cap_seconds: int
) -> int:
    """How long a call may run: the remaining quota, plus what the available balance pays for at the
    rate (after the connection fee), rounded down to whole increments, never above `cap_seconds`.
    Quota covers minutes, not the fee: a wallet that cannot pay the fee affords no call at all."""
    increment = rates.billing_increment_seconds
    if round_minor(rates.connection_fee) > max(available, 0):
        return 0
    budget = Decimal(available) - rates.connection_fee
    if rates.per_minute_rate == 0:
        paid = cap_seconds if budget >= 0 else 0
    elif budget <= 0:
        paid = 0
    else:
        paid = int(budget * 60 / rates.per_minute_rate)
    total = max(quota_remaining_seconds, 0) + paid
    return min(total // increment * increment, cap_seconds)
