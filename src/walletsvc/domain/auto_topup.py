"""Auto top-up rules: valid settings, when it fires, how much, caps, the runaway guard and back-off.

Pure: the services read the state, these functions decide, the services write what was decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.money import Money
from walletsvc.domain.topups import check_topup_amount, default_maximum

DEFAULT_MAX_PER_DAY = 2
MAX_PER_DAY_LIMIT = 24
DEFAULT_MAX_CONSECUTIVE_FAILURES = 3
DEFAULT_RETRY_BACKOFF = (3600, 21600)


@dataclass(frozen=True, slots=True)
class AutoTopupPolicy:
    """The decline path's limits (AUTO_TOPUP_MAX_CONSECUTIVE_FAILURES, AUTO_TOPUP_RETRY_BACKOFF_SECONDS),
    built once from the settings by each process and handed to whatever applies a failure: the credit
    function, the webhooks, the runner and reconcile."""

    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    retry_backoff: tuple[int, ...] = DEFAULT_RETRY_BACKOFF


@dataclass(frozen=True, slots=True)
class AutoTopupSettings:
    """What the wallet row mirrors of the auto top-up settings (shown in GET /v1/wallet)."""

    enabled: bool
    threshold: int | None
    amount: int | None


class AutoTopupStatus(StrEnum):
    CREATED = "created"  # enqueued by a balance change; the runner has not looked at it yet
    PROCESSING = "processing"  # its intent is committed; the provider is (being) asked
    REQUIRES_ACTION = "requires_action"  # 3-D Secure / SCA: waits for the customer, never retried
    SUCCEEDED = "succeeded"  # credited through the one credit function
    FAILED = "failed"  # declined (or no usable payment method): counts towards disabling
    REFUSED = "refused"  # a cap or the runaway guard said no: nothing was asked of the provider
    CANCELED = "canceled"  # auto top-up was switched off (or the wallet recovered) before it ran


IN_FLIGHT = frozenset({AutoTopupStatus.CREATED, AutoTopupStatus.PROCESSING, AutoTopupStatus.REQUIRES_ACTION})
# What caps count: succeeded ones and those still in flight.
COUNTED = IN_FLIGHT | {AutoTopupStatus.SUCCEEDED}


class DisabledReason(StrEnum):
    FAILURES = "consecutive_failures"  # lifted by a newly saved payment method or by re-enabling


class Refusal(StrEnum):
    DAILY_CAP = "max_per_day"
    MONTHLY_CAP = "monthly_cap"
    RUNAWAY_GUARD = "runaway_guard"


@dataclass(frozen=True, slots=True)
class AutoTopupConfig:
    enabled: bool = False
    threshold: int = 0
    amount: int | None = None
    target_balance: int | None = None
    payment_method_id: str | None = None
    max_per_day: int = DEFAULT_MAX_PER_DAY
    monthly_cap: int | None = None
    locked: bool = False
    locked_reason: str | None = None
    disabled_reason: str | None = None
    consecutive_failures: int = 0
    capped_notified_on: date | None = None

    @property
    def active(self) -> bool:
        """Whether balance changes may start an auto top-up."""
        return self.enabled and not self.locked and self.disabled_reason is None

    @property
    def fixed_amount(self) -> int | None:
        """The amount shown beside the wallet: the fixed one, or None when topping up to a target."""
        return self.amount


def validate_config(
    config: AutoTopupConfig,
    currency: str,
    *,
    minimums: Mapping[str, int],
    maximums: Mapping[str, int],
) -> None:
    """Settings that make sense, or a refusal saying which field is wrong (422)."""
    if config.threshold < 0:
        raise InvalidRequest("threshold is a number of minor units, 0 or more")
    if config.amount is not None and config.target_balance is not None:
        raise InvalidRequest("give either amount (a fixed top-up) or target_balance (top up to), not both")
    if config.enabled and config.amount is None and config.target_balance is None:
        raise InvalidRequest("an enabled auto top-up needs amount or target_balance")
    if config.enabled and config.threshold <= 0:
        raise InvalidRequest("an enabled auto top-up needs a threshold above 0")
    if config.amount is not None:
        check_topup_amount(Money(config.amount, currency), minimums=minimums, maximums=maximums)
    if config.target_balance is not None:
        if config.target_balance <= config.threshold:
            raise InvalidRequest("target_balance must be above threshold")
        maximum = maximums.get(currency, default_maximum(currency))
        check_topup_amount(
            Money(min(config.target_balance - config.threshold, maximum), currency),
            minimums=minimums,
            maximums=maximums,
        )
    if not 1 <= config.max_per_day <= MAX_PER_DAY_LIMIT:
        raise InvalidRequest(f"max_per_day is from 1 to {MAX_PER_DAY_LIMIT}")
    if config.monthly_cap is not None:
        if config.monthly_cap <= 0:
            raise InvalidRequest("monthly_cap is more than 0 (leave it out for no monthly cap)")
        if config.amount is not None and config.monthly_cap < config.amount:
            raise InvalidRequest("monthly_cap is below amount: no auto top-up could ever run")


def should_trigger(config_active: bool, *, available: int, threshold: int | None) -> bool:
    """The hot path's test, on the locked wallet: below the threshold of an active auto top-up."""
    return config_active and threshold is not None and available < threshold


def topup_amount(
    config: AutoTopupConfig,
    *,
    balance: int,
    reserved: int,
    owed: int,
    currency: str,
    minimums: Mapping[str, int],
    maximums: Mapping[str, int],
) -> int:
    """How much to charge. What the wallet owes is paid first from a credit (services/debts.py), so it is
    added: the wallet still ends above the threshold. Within the currency's top-up limits."""
    available = balance - reserved
    if config.target_balance is not None:
        wanted = config.target_balance - available + owed
    elif config.amount is not None:
        wanted = config.amount + owed
    else:
        raise InvalidRequest("auto top-up has neither amount nor target_balance")
    minimum = minimums.get(currency)
    maximum = maximums.get(currency, default_maximum(currency))
    floor = minimum if minimum is not None else 1
    return max(min(wanted, maximum), floor)


def day_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month_start(now: datetime) -> datetime:
    return datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CapDecision:
    refusal: Refusal
    until: datetime  # when a new attempt may run again
    detail: str


def check_caps(
    config: AutoTopupConfig,
    *,
    amount: int,
    currency: str,
    today_count: int,
    month_total: int,
    hour_count: int,
    max_per_hour: int,
    now: datetime,
) -> CapDecision | None:
    """None when this auto top-up may run. The counts are of others (succeeded and in flight), not this one.
    The runaway guard comes first: it holds whatever the settings say."""
    if hour_count >= max_per_hour:
        return CapDecision(
            Refusal.RUNAWAY_GUARD,
            now + timedelta(hours=1),
            f"{hour_count} auto top-ups in the last hour: the runaway guard allows {max_per_hour}",
        )
    if today_count >= config.max_per_day:
        return CapDecision(
            Refusal.DAILY_CAP,
            day_start(now) + timedelta(days=1),
            f"{today_count} auto top-ups today: max_per_day is {config.max_per_day}",
        )
    if config.monthly_cap is not None and month_total + amount > config.monthly_cap:
        return CapDecision(
            Refusal.MONTHLY_CAP,
            next_month_start(now),
            f"{Money(month_total, currency).format()} this month and {Money(amount, currency).format()} more "
            f"would pass monthly_cap {Money(config.monthly_cap, currency).format()}",
        )
    return None


def parse_backoff(text: str) -> tuple[int, ...]:
    """AUTO_TOPUP_RETRY_BACKOFF_SECONDS: "3600,21600", each more than 0."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError("a comma-separated list of seconds, e.g. 3600,21600") from exc
    if not values or any(v <= 0 for v in values):
        raise ValueError("a comma-separated list of seconds, each more than 0, e.g. 3600,21600")
    return values


@dataclass(frozen=True, slots=True)
class FailureDecision:
    failures: int  # consecutive, this one included
    disable: bool
    retry_after: datetime | None  # when a balance change may start the next attempt


def after_failure(consecutive_failures: int, *, policy: AutoTopupPolicy, now: datetime) -> FailureDecision:
    """A decline: wait the next back-off step; after the policy's maximum in a row, switch auto top-up off."""
    failures = consecutive_failures + 1
    if failures >= policy.max_consecutive_failures:
        return FailureDecision(failures, True, None)
    backoff = policy.retry_backoff
    step = backoff[min(failures - 1, len(backoff) - 1)]
    return FailureDecision(failures, False, now + timedelta(seconds=step))


@dataclass(frozen=True, slots=True)
class SavedPaymentMethod:
    """A saved card (or Razorpay mandate) as walletsvc shows it: brand, last 4 (or a masked VPA), expiry,
    a mandate's limit and state, never more."""

    tenant_id: str
    id: str
    provider: str
    kind: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    max_amount: int | None
    status: str
    created_at: datetime
    customer_id: str | None = None
    token_id: str | None = None  # a Razorpay mandate's token, once its authorization payment is made
    vpa: str | None = None  # UPI AutoPay: masked (ab****@okhdfc)
    expires_at: datetime | None = None  # a mandate's end
    status_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class AutoTopup:
    """One attempt."""

    tenant_id: str
    id: str
    status: AutoTopupStatus
    provider: str
    currency: str
    amount: int | None
    trigger_available: int
    trigger_cause: str
    payment_method_id: str | None
    topup_id: str | None
    provider_payment_id: str | None
    action_url: str | None
    failure_reason: str | None
    failure_code: str | None
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT
