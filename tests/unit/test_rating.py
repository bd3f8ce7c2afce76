"""Rating, quota and call authorization edges: plain functions, no fixtures, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.money import Money
from walletsvc.domain.plans import (
    Plan,
    Subscription,
    add_month,
    authorize_call,
    current_period,
    settle_charge,
)
from walletsvc.domain.rating import (
    Rates,
    UsageKind,
    affordable_seconds,
    billable_seconds,
    rate_call,
    rate_units,
)

# Rs 10 a minute, rounded up to the minute.
INR_PER_MINUTE = Rates(currency="INR", per_minute_rate=Decimal("1000"), billing_increment_seconds=60)
# 0.7 paise a second, billed by the second.
INR_PER_SECOND = Rates(currency="INR", per_minute_rate=Decimal("42"), billing_increment_seconds=1)


def rates(**fields: Any) -> Rates:
    values: dict[str, Any] = {"currency": "INR", "per_minute_rate": Decimal("1000")}
    values.update(fields)
    return Rates(**values)


# --- billable seconds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "increment", "minimum", "billable"),
    [
        (0, 60, 0, 0),  # never connected
        (0, 1, 30, 0),  # the minimum applies to connected calls only
        (1, 60, 0, 60),
        (59, 60, 0, 60),
        (60, 60, 0, 60),
        (61, 60, 0, 120),
        (3600, 60, 0, 3600),
        (3601, 60, 0, 3660),
        (1, 1, 0, 1),
        (61, 1, 0, 61),
        (1, 6, 0, 6),
        (6, 6, 0, 6),
        (7, 6, 0, 12),
        (59, 6, 0, 60),
        (5, 1, 30, 30),  # shorter than the minimum: billed as the minimum
        (30, 1, 30, 30),
        (31, 1, 30, 31),
        (10, 6, 30, 30),
        (31, 6, 30, 36),  # past the minimum: rounded up to the increment
        (1, 60, 30, 60),  # the minimum itself is rounded up to the increment
        (45, 60, 90, 120),
    ],
)
def test_billable_seconds_apply_minimum_then_round_up_to_increment(
    duration: int, increment: int, minimum: int, billable: int
) -> None:
    r = rates(billing_increment_seconds=increment, minimum_billable_seconds=minimum)
    assert billable_seconds(duration, r) == billable


def test_negative_duration_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        billable_seconds(-1, INR_PER_MINUTE)
    with pytest.raises(InvalidRequest):
        rate_call(-1, INR_PER_MINUTE)


# --- calls --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "amount", "billable"),
    [(0, 0, 0), (1, 1000, 60), (59, 1000, 60), (60, 1000, 60), (61, 2000, 120), (3601, 61000, 3660)],
)
def test_call_at_a_per_minute_increment_rounds_up_to_whole_minutes(
    duration: int, amount: int, billable: int
) -> None:
    rating = rate_call(duration, INR_PER_MINUTE)
    assert rating.amount == Money(amount, "INR")
    assert rating.billable_seconds == billable
    assert rating.paid_seconds == billable
    assert rating.quota_seconds == 0
    assert rating.kind is UsageKind.CALL


@pytest.mark.parametrize(
    ("duration", "amount"),
    [
        (1, 1),  # 0.7 -> 1
        (5, 4),  # 3.5 -> 4: half rounds up
        (15, 11),  # 10.5 -> 11: half up, not to even (which would give 10)
        (59, 41),  # 41.3 -> 41
        (60, 42),
        (61, 43),  # 42.7 -> 43
        (3601, 2521),  # 2520.7 -> 2521
    ],
)
def test_rate_of_seven_tenths_of_a_paisa_a_second_rounds_half_up_once(duration: int, amount: int) -> None:
    rating = rate_call(duration, INR_PER_SECOND)
    assert rating.amount == Money(amount, "INR")
    assert rating.billable_seconds == duration


def test_never_connected_call_pays_no_connection_fee() -> None:
    rating = rate_call(0, rates(connection_fee=Decimal("50")))
    assert rating.amount == Money(0, "INR")
    assert rating.billable_seconds == 0


@pytest.mark.parametrize(("duration", "amount"), [(1, 1050), (60, 1050), (61, 2050)])
def test_connected_call_pays_the_connection_fee_once(duration: int, amount: int) -> None:
    assert rate_call(duration, rates(connection_fee=Decimal("50"))).amount.amount == amount


def test_fractional_fee_and_rate_are_summed_before_the_one_rounding() -> None:
    # 1 s at 0.7 plus a fee of 0.4 is 1.1 -> 1; rounding each part first would give 1 + 0 = 1 or 2.
    r = rates(per_minute_rate=Decimal("42"), billing_increment_seconds=1, connection_fee=Decimal("0.4"))
    assert rate_call(1, r).amount.amount == 1
    # 2 s at 0.7 plus 0.4 is 1.8 -> 2 (rounded separately: 1 + 0 = 1).
    assert rate_call(2, r).amount.amount == 2


def test_minimum_billable_duration_is_charged_for_a_short_call() -> None:
    r = rates(per_minute_rate=Decimal("60"), billing_increment_seconds=1, minimum_billable_seconds=30)
    short = rate_call(3, r)
    assert short.billable_seconds == 30
    assert short.amount.amount == 30
    assert rate_call(45, r).amount.amount == 45


# --- quota first -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "quota", "from_quota", "paid", "amount"),
    [
        (90, 300, 120, 0, 0),  # wholly inside the quota
        (120, 120, 120, 0, 0),  # exactly exhausts the quota
        (150, 120, 120, 60, 1000),  # part free, the rest paid
        (61, 60, 60, 60, 1000),  # one minute free, the second paid
        (60, 0, 0, 60, 1000),  # quota already exhausted
        (60, -30, 0, 60, 1000),  # over-used quota counts as none left
        (0, 300, 0, 0, 0),  # nothing to take from the quota
    ],
)
def test_quota_is_used_before_the_wallet(
    duration: int, quota: int, from_quota: int, paid: int, amount: int
) -> None:
    rating = rate_call(duration, INR_PER_MINUTE, quota_remaining_seconds=quota)
    assert rating.quota_seconds == from_quota
    assert rating.paid_seconds == paid
    assert rating.quota_seconds + rating.paid_seconds == rating.billable_seconds
    assert rating.amount.amount == amount


def test_quota_by_the_second_leaves_the_remainder_at_the_per_second_rate() -> None:
    rating = rate_call(61, INR_PER_SECOND, quota_remaining_seconds=60)
    assert (rating.quota_seconds, rating.paid_seconds) == (60, 1)
    assert rating.amount.amount == 1  # 0.7 -> 1


def test_quota_covers_minutes_but_not_the_connection_fee() -> None:
    rating = rate_call(60, rates(connection_fee=Decimal("50")), quota_remaining_seconds=600)
    assert rating.quota_seconds == 60
    assert rating.amount.amount == 50


# --- other currencies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "amount"),
    [(10, 1), (30, 2), (61, 3), (60, 3), (0, 0)],  # 0.5 -> 1, 1.5 -> 2, 3.05 -> 3
)
def test_zero_decimal_currency_rounds_to_whole_yen(duration: int, amount: int) -> None:
    r = Rates(currency="JPY", per_minute_rate=Decimal("3"), billing_increment_seconds=1)
    assert rate_call(duration, r).amount == Money(amount, "JPY")


@pytest.mark.parametrize(
    ("duration", "amount"),
    [(1, 4), (61, 254), (90, 375)],  # 250 fils a minute: 4.1667 -> 4, 254.1667 -> 254, 375
)
def test_three_decimal_currency_rates_in_fils(duration: int, amount: int) -> None:
    r = Rates(currency="KWD", per_minute_rate=Decimal("250"), billing_increment_seconds=1)
    assert rate_call(duration, r).amount == Money(amount, "KWD")


# --- messages, pages, files ----------------------------------------------------------------------------

USD_UNITS = Rates(
    currency="USD",
    per_minute_rate=Decimal("5"),
    unit_prices={
        UsageKind.SMS: Decimal("0.35"),
        UsageKind.EMAIL: Decimal("0.1"),
        UsageKind.FAX: Decimal("15"),
        UsageKind.FILE_TRANSFER: Decimal("2.5"),
    },
)


@pytest.mark.parametrize(
    ("kind", "quantity", "amount"),
    [
        (UsageKind.SMS, 1, 0),  # 0.35 -> 0
        (UsageKind.SMS, 2, 1),  # 0.70 -> 1
        (UsageKind.SMS, 3, 1),  # 1.05 -> 1
        (UsageKind.SMS, 10, 4),  # 3.5 -> 4
        (UsageKind.EMAIL, 4, 0),  # 0.4 -> 0
        (UsageKind.EMAIL, 5, 1),  # 0.5 -> 1
        (UsageKind.FAX, 3, 45),  # pages
        (UsageKind.FILE_TRANSFER, 3, 8),  # 7.5 -> 8
        (UsageKind.FILE_TRANSFER, 1, 3),  # 2.5 -> 3
    ],
)
def test_units_are_charged_by_quantity_times_price_rounded_once(
    kind: UsageKind, quantity: int, amount: int
) -> None:
    rating = rate_units(kind, quantity, USD_UNITS)
    assert rating.amount == Money(amount, "USD")
    assert rating.quantity == quantity
    assert rating.kind is kind
    assert (rating.billable_seconds, rating.quota_seconds, rating.paid_seconds) == (0, 0, 0)


def test_unit_kind_without_a_price_costs_nothing() -> None:
    assert rate_units(UsageKind.SMS, 5, INR_PER_MINUTE).amount == Money(0, "INR")


@pytest.mark.parametrize("quantity", [0, -1])
def test_zero_or_negative_quantity_is_refused(quantity: int) -> None:
    with pytest.raises(InvalidRequest):
        rate_units(UsageKind.SMS, quantity, USD_UNITS)


def test_a_call_is_not_rated_by_quantity() -> None:
    with pytest.raises(InvalidRequest):
        rate_units(UsageKind.CALL, 1, USD_UNITS)


@pytest.mark.parametrize(
    "fields",
    [
        {"billing_increment_seconds": 0},
        {"minimum_billable_seconds": -1},
        {"per_minute_rate": Decimal("-1")},
        {"connection_fee": Decimal("-0.5")},
        {"unit_prices": {UsageKind.SMS: Decimal("-1")}},
    ],
)
def test_invalid_rates_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        rates(**fields)


# --- how long a call may run ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "r", "quota", "cap", "seconds"),
    [
        (1000, INR_PER_MINUTE, 0, 14_400, 60),
        (999, INR_PER_MINUTE, 0, 14_400, 0),  # 59.9 s does not buy a whole minute
        (2500, INR_PER_MINUTE, 0, 14_400, 120),
        (0, INR_PER_MINUTE, 120, 14_400, 120),  # quota alone
        (1000, INR_PER_MINUTE, 120, 14_400, 180),  # quota, then the wallet
        (10**9, INR_PER_MINUTE, 0, 3600, 3600),  # never above the cap
        (1000, INR_PER_SECOND, 0, 14_400, 1428),  # 1000 / 0.7 = 1428.57
        (1, INR_PER_SECOND, 0, 14_400, 1),
        (1100, rates(connection_fee=Decimal("100")), 0, 14_400, 60),  # the fee comes off first
        (99, rates(connection_fee=Decimal("100")), 0, 14_400, 0),
        (100, rates(billing_increment_seconds=6), 0, 14_400, 6),
        (0, rates(per_minute_rate=Decimal("0")), 0, 600, 600),  # free calls run to the cap
        (-50, INR_PER_MINUTE, 60, 14_400, 60),  # a negative balance buys nothing, quota still runs
        (50, rates(connection_fee=Decimal("50")), 600, 14_400, 600),  # quota, and the fee is paid
        (49, rates(connection_fee=Decimal("50")), 600, 14_400, 0),  # quota does not pay the fee
        (0, rates(connection_fee=Decimal("0.4")), 600, 14_400, 600),  # a fee that rounds to 0
    ],
)
def test_affordable_seconds(available: int, r: Rates, quota: int, cap: int, seconds: int) -> None:
    assert affordable_seconds(available, r, quota_remaining_seconds=quota, cap_seconds=cap) == seconds


@pytest.mark.parametrize("r", [INR_PER_MINUTE, INR_PER_SECOND, rates(connection_fee=Decimal("33.3"))])
def test_a_call_of_the_affordable_length_never_costs_more_than_available(r: Rates) -> None:
    for available in [*range(0, 3000, 7), 10_000, 123_457]:
        for quota in (0, 60, 90):
            seconds = affordable_seconds(available, r, quota_remaining_seconds=quota, cap_seconds=86_400)
            if seconds == 0:
                continue
            cost = rate_call(seconds, r, quota_remaining_seconds=quota).amount.amount
            assert cost <= max(available, 0), (available, quota, seconds, cost)


# --- call authorization --------------------------------------------------------------------------------


def decide(**overrides: Any) -> Any:
    values: dict[str, Any] = {
        "available": 10_000,
        "rates": INR_PER_MINUTE,
        "quota_remaining_seconds": 0,
        "minimum_balance": 1000,
        "requested_max_seconds": None,
        "cap_seconds": 14_400,
        "default_hold_seconds": 300,
        "active_calls": 0,
        "max_concurrent_calls": None,
        "spent_today": 0,
        "daily_spend_cap": None,
    }
    values.update(overrides)
    return authorize_call(**values)


def test_authorized_call_runs_on_the_balance_and_holds_the_default_length() -> None:
    decision = decide()
    assert decision.allowed is True
    assert decision.max_seconds == 600  # Rs 100 at Rs 10 a minute
    assert decision.hold == Money(5000, "INR")  # 300 s expected
    assert decision.code is None


def test_hold_is_the_cost_of_the_requested_length() -> None:
    decision = decide(requested_max_seconds=120)
    assert decision.max_seconds == 120
    assert decision.hold == Money(2000, "INR")
    # 121 s may run, and cost three started minutes
    decision = decide(requested_max_seconds=121)
    assert decision.max_seconds == 121
    assert decision.hold == Money(3000, "INR")


def test_hold_includes_the_connection_fee_and_fractional_rate() -> None:
    r = rates(per_minute_rate=Decimal("42"), billing_increment_seconds=1, connection_fee=Decimal("50"))
    decision = decide(rates=r, requested_max_seconds=100)
    assert decision.max_seconds == 100
    assert decision.hold == Money(120, "INR")  # 100 * 0.7 + 50


def test_hold_never_exceeds_what_is_available() -> None:
    decision = decide(available=1500, requested_max_seconds=600)
    assert decision.allowed is True
    assert decision.max_seconds == 60
    assert decision.hold.amount == 1000
    assert decision.hold.amount <= 1500


@pytest.mark.parametrize(("available", "allowed"), [(999, False), (1000, True), (0, False)])
def test_minimum_balance_is_needed_to_start_a_call(available: int, allowed: bool) -> None:
    decision = decide(available=available)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.code == "BELOW_MINIMUM"
        assert decision.max_seconds == 0
        assert decision.hold == Money(0, "INR")


def test_remaining_quota_lets_a_call_start_below_the_minimum() -> None:
    decision = decide(available=0, quota_remaining_seconds=600)
    assert decision.allowed is True
    assert decision.max_seconds == 600
    assert decision.hold == Money(0, "INR")  # the expected 300 s all come from the quota


def test_quota_does_not_let_a_call_start_that_cannot_pay_its_connection_fee() -> None:
    decision = decide(
        available=20,
        minimum_balance=0,
        quota_remaining_seconds=600,
        rates=rates(connection_fee=Decimal("50")),
    )
    assert decision.allowed is False
    assert decision.code == "INSUFFICIENT_FUNDS"


def test_balance_above_minimum_that_buys_no_increment_is_insufficient() -> None:
    decision = decide(available=500, minimum_balance=0)
    assert decision.allowed is False
    assert decision.code == "INSUFFICIENT_FUNDS"


@pytest.mark.parametrize(("active", "limit", "allowed"), [(1, 2, True), (2, 2, False), (3, 2, False)])
def test_concurrent_call_limit(active: int, limit: int, allowed: bool) -> None:
    decision = decide(active_calls=active, max_concurrent_calls=limit)
    assert decision.allowed is allowed
    assert decision.code == (None if allowed else "CONCURRENT_CALL_LIMIT")


def test_no_concurrency_limit_when_none_is_set() -> None:
    assert decide(active_calls=10_000, max_concurrent_calls=None).allowed is True


@pytest.mark.parametrize("spent", [5000, 6000])
def test_daily_spend_cap_reached_refuses_the_call(spent: int) -> None:
    decision = decide(spent_today=spent, daily_spend_cap=5000)
    assert decision.allowed is False
    assert decision.code == "DAILY_SPEND_CAP"


def test_daily_spend_cap_limits_the_length_and_the_hold() -> None:
    decision = decide(spent_today=4000, daily_spend_cap=5000)
    assert decision.allowed is True
    assert decision.max_seconds == 60  # Rs 10 left under the cap
    assert decision.hold == Money(1000, "INR")


def test_limits_are_checked_before_the_balance() -> None:
    decision = decide(available=0, active_calls=1, max_concurrent_calls=1, spent_today=9, daily_spend_cap=1)
    assert decision.code == "CONCURRENT_CALL_LIMIT"


# --- settling a charge -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "available", "charged", "owed"),
    [(100, 500, 100, 0), (100, 100, 100, 0), (100, 60, 60, 40), (100, 0, 0, 100), (100, -20, 0, 100)],
)
def test_settle_charge_takes_what_the_wallet_can_and_records_the_rest(
    amount: int, available: int, charged: int, owed: int
) -> None:
    settlement = settle_charge(amount, available_after_release=available)
    assert (settlement.charged, settlement.owed) == (charged, owed)


def test_quota_remaining_never_goes_negative() -> None:
    plan = Plan("p", "P", "INR", 0, 10, INR_PER_MINUTE, (), True)
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    assert Subscription("t", "p", moment, moment, 120).quota_remaining_seconds(plan) == 480
    assert Subscription("t", "p", moment, moment, 900).quota_remaining_seconds(plan) == 0


# --- billing periods --------------------------------------------------------------------------------------


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2025, 1, 31), utc(2025, 2, 28)),
        (utc(2024, 1, 31), utc(2024, 2, 29)),  # leap year
        (utc(2025, 1, 29), utc(2025, 2, 28)),
        (utc(2025, 3, 31), utc(2025, 4, 30)),
        (utc(2025, 12, 15), utc(2026, 1, 15)),
        (utc(2025, 12, 31), utc(2026, 1, 31)),
        (utc(2025, 2, 28), utc(2025, 3, 28)),
        (utc(2025, 6, 15, 13), utc(2025, 7, 15, 13)),  # keeps the time of day
    ],
)
def test_add_month_keeps_the_day_or_takes_the_last_day_of_a_shorter_month(
    moment: datetime, expected: datetime
) -> None:
    assert add_month(moment) == expected


@pytest.mark.parametrize(
    ("start", "end", "now", "expected"),
    [
        # still inside: unchanged
        (utc(2025, 1, 15), utc(2025, 2, 15), utc(2025, 2, 1), (utc(2025, 1, 15), utc(2025, 2, 15), False)),
        # periods are [start, end): the end itself belongs to the next one
        (utc(2025, 1, 15), utc(2025, 2, 15), utc(2025, 2, 15), (utc(2025, 2, 15), utc(2025, 3, 15), True)),
        # several months at once
        (utc(2025, 1, 15), utc(2025, 2, 15), utc(2025, 5, 20), (utc(2025, 5, 15), utc(2025, 6, 15), True)),
        # across a year end
        (utc(2025, 11, 10), utc(2025, 12, 10), utc(2026, 2, 1), (utc(2026, 1, 10), utc(2026, 2, 10), True)),
        # a period anchored on the 31st keeps its anchor after a short month
        (utc(2025, 1, 31), utc(2025, 2, 28), utc(2025, 3, 5), (utc(2025, 2, 28), utc(2025, 3, 31), True)),
        (utc(2025, 1, 31), utc(2025, 2, 28), utc(2025, 4, 15), (utc(2025, 3, 31), utc(2025, 4, 30), True)),
        (utc(2025, 1, 31), utc(2025, 2, 28), utc(2025, 6, 1), (utc(2025, 5, 31), utc(2025, 6, 30), True)),
    ],
)
def test_current_period_rolls_forward_a_month_at_a_time(
    start: datetime, end: datetime, now: datetime, expected: tuple[datetime, datetime, bool]
) -> None:
    assert current_period(start, end, now) == expected


def test_period_rolled_one_month_at_a_time_matches_one_rolled_at_once() -> None:
    # A busy tenant's period is rolled (and stored) every month; a quiet one's several months at once.
    start, end = utc(2025, 1, 31), add_month(utc(2025, 1, 31))
    stepwise = (start, end)
    for month in range(2, 13):
        stepwise = current_period(*stepwise, utc(2025, month, 28, 23))[:2]
    at_once = current_period(start, end, utc(2025, 12, 28, 23))[:2]
    assert stepwise == at_once == (utc(2025, 11, 30), utc(2025, 12, 31))
