"""Auto top-up rules (domain/auto_topup.py): plain functions, no fixtures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from walletsvc.domain.auto_topup import (
    AutoTopupConfig,
    AutoTopupPolicy,
    CapDecision,
    Refusal,
    after_failure,
    check_caps,
    next_month_start,
    parse_backoff,
    should_trigger,
    topup_amount,
    validate_config,
)
from walletsvc.domain.errors import AboveMaximum, BelowMinimum, InvalidRequest

NOW = datetime(2026, 12, 1, 11, 30, tzinfo=UTC)
LIMITS = {"minimums": {"USD": 500}, "maximums": {"USD": 1_000_000}}


def test_it_triggers_only_below_the_threshold_of_an_active_auto_topup() -> None:
    assert should_trigger(True, available=499, threshold=500)
    assert not should_trigger(True, available=500, threshold=500)
    assert not should_trigger(False, available=0, threshold=500)
    assert not should_trigger(True, available=0, threshold=None)


def test_a_locked_or_switched_off_auto_topup_is_not_active() -> None:
    on = AutoTopupConfig(enabled=True, threshold=500, amount=2000)
    assert on.active
    assert not AutoTopupConfig(enabled=True, threshold=500, amount=2000, locked=True).active
    assert not AutoTopupConfig(
        enabled=True, threshold=500, amount=2000, disabled_reason="consecutive_failures"
    ).active


def test_the_amount_includes_what_the_wallet_owes() -> None:
    fixed = AutoTopupConfig(enabled=True, threshold=500, amount=2000)
    assert topup_amount(fixed, balance=0, reserved=0, owed=700, currency="USD", **LIMITS) == 2700
    target = AutoTopupConfig(enabled=True, threshold=500, target_balance=5000)
    # available 300 (1000 held for calls): up to 5000 available, plus the 200 owed
    assert topup_amount(target, balance=1300, reserved=1000, owed=200, currency="USD", **LIMITS) == 4900


def test_the_amount_stays_within_the_currencys_top_up_limits() -> None:
    target = AutoTopupConfig(enabled=True, threshold=500, target_balance=900)
    assert topup_amount(target, balance=800, reserved=0, owed=0, currency="USD", **LIMITS) == 500
    huge = AutoTopupConfig(enabled=True, threshold=500, amount=1_000_000)
    assert topup_amount(huge, balance=0, reserved=0, owed=50_000, currency="USD", **LIMITS) == 1_000_000


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (AutoTopupConfig(enabled=True, threshold=500, amount=100), BelowMinimum),
        (AutoTopupConfig(enabled=True, threshold=500, amount=2_000_000), AboveMaximum),
        (AutoTopupConfig(enabled=True, threshold=500), InvalidRequest),
        (AutoTopupConfig(enabled=True, threshold=0, amount=2000), InvalidRequest),
        (AutoTopupConfig(enabled=True, threshold=5000, target_balance=5000), InvalidRequest),
        (AutoTopupConfig(enabled=True, threshold=500, amount=2000, target_balance=9000), InvalidRequest),
        (AutoTopupConfig(enabled=True, threshold=500, amount=2000, max_per_day=0), InvalidRequest),
        (AutoTopupConfig(enabled=True, threshold=500, amount=2000, monthly_cap=1999), InvalidRequest),
    ],
)
def test_settings_that_make_no_sense_are_refused(config: AutoTopupConfig, error: type[Exception]) -> None:
    with pytest.raises(error):
        validate_config(config, "USD", **LIMITS)


def test_sensible_settings_pass() -> None:
    validate_config(
        AutoTopupConfig(enabled=True, threshold=500, amount=2000, monthly_cap=20000), "USD", **LIMITS
    )
    validate_config(AutoTopupConfig(enabled=True, threshold=500, target_balance=5000), "USD", **LIMITS)
    validate_config(AutoTopupConfig(enabled=False), "USD", **LIMITS)


def test_caps_refuse_the_third_of_a_day_and_what_would_pass_the_monthly_cap() -> None:
    config = AutoTopupConfig(enabled=True, threshold=500, amount=2000, monthly_cap=5000)

    def caps(today: int, month: int, hour: int) -> CapDecision | None:
        return check_caps(
            config,
            amount=2000,
            currency="USD",
            today_count=today,
            month_total=month,
            hour_count=hour,
            max_per_hour=3,
            now=NOW,
        )

    assert caps(1, 2000, 1) is None
    daily = caps(2, 4000, 2)
    assert daily is not None
    assert daily.refusal is Refusal.DAILY_CAP
    assert daily.until == datetime(2026, 12, 2, tzinfo=UTC)
    monthly = caps(0, 4000, 0)
    assert monthly is not None
    assert monthly.refusal is Refusal.MONTHLY_CAP
    assert monthly.until == datetime(2027, 1, 1, tzinfo=UTC)


def test_the_runaway_guard_holds_whatever_the_settings_say() -> None:
    config = AutoTopupConfig(enabled=True, threshold=500, amount=2000, max_per_day=24)
    guard = check_caps(
        config,
        amount=2000,
        currency="USD",
        today_count=3,
        month_total=0,
        hour_count=3,
        max_per_hour=3,
        now=NOW,
    )
    assert guard is not None
    assert guard.refusal is Refusal.RUNAWAY_GUARD
    assert guard.until == NOW + timedelta(hours=1)


def test_declines_back_off_by_the_schedule_then_switch_off() -> None:
    policy = AutoTopupPolicy(max_consecutive_failures=3, retry_backoff=parse_backoff("3600,21600"))
    first = after_failure(0, policy=policy, now=NOW)
    assert (first.failures, first.disable, first.retry_after) == (1, False, NOW + timedelta(hours=1))
    second = after_failure(1, policy=policy, now=NOW)
    assert second.retry_after == NOW + timedelta(hours=6)
    third = after_failure(2, policy=policy, now=NOW)
    assert (third.failures, third.disable, third.retry_after) == (3, True, None)


def test_the_policy_is_what_the_process_was_given() -> None:
    strict = AutoTopupPolicy(max_consecutive_failures=1, retry_backoff=(60,))
    assert after_failure(0, policy=strict, now=NOW).disable is True
    patient = AutoTopupPolicy(max_consecutive_failures=5, retry_backoff=(60,))
    fourth = after_failure(3, policy=patient, now=NOW)
    assert (fourth.disable, fourth.retry_after) == (False, NOW + timedelta(seconds=60))
    assert AutoTopupPolicy() == AutoTopupPolicy(3, (3600, 21600))  # the settings' defaults


@pytest.mark.parametrize("text", ["", "0", "-5", "1h", "3600,,x"])
def test_a_backoff_setting_that_is_not_seconds_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="seconds"):
        parse_backoff(text)


def test_the_month_rolls_over_at_the_year_end() -> None:
    assert next_month_start(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_month_start(datetime(2026, 1, 31, tzinfo=UTC)) == datetime(2026, 2, 1, tzinfo=UTC)
