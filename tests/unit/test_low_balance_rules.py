"""The low-balance rule: announce a low spell once (at most once a UTC day), resolve only what was announced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from walletsvc.domain.low_balance import (
    AlertState,
    Cause,
    CauseType,
    Signal,
    evaluate,
    is_low,
    parse_low_balance_setting,
    parse_thresholds,
    threshold_for,
)

MORNING = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NOON = MORNING + timedelta(hours=3)
NEXT_DAY = MORNING + timedelta(days=1)
CLEAR = AlertState()


def test_low_means_available_below_a_set_threshold() -> None:
    assert is_low(499, 500)
    assert not is_low(500, 500)
    assert not is_low(-10, 0)  # threshold 0: alerts off, whatever the balance


def test_crossing_below_starts_a_spell_and_announces_it() -> None:
    decision = evaluate(CLEAR, available=400, threshold=500, now=MORNING)
    assert decision.signal is Signal.LOW
    assert decision.state == AlertState(low_since=MORNING, alerted_at=MORNING)


def test_staying_above_changes_nothing() -> None:
    decision = evaluate(CLEAR, available=900, threshold=500, now=MORNING)
    assert decision.signal is None
    assert decision.state == CLEAR


def test_going_lower_within_an_announced_spell_says_nothing_more() -> None:
    low = evaluate(CLEAR, available=400, threshold=500, now=MORNING).state
    decision = evaluate(low, available=100, threshold=500, now=NOON)
    assert decision.signal is None
    assert decision.state == low


def test_climbing_back_resolves_an_announced_spell_once() -> None:
    low = evaluate(CLEAR, available=400, threshold=500, now=MORNING).state
    resolved = evaluate(low, available=500, threshold=500, now=NOON)
    assert resolved.signal is Signal.RESOLVED
    assert resolved.state == AlertState(low_since=None, alerted_at=MORNING)
    again = evaluate(resolved.state, available=800, threshold=500, now=NOON)
    assert again.signal is None


def test_a_second_crossing_the_same_day_is_not_announced_and_ends_silently() -> None:
    first = evaluate(CLEAR, available=400, threshold=500, now=MORNING).state
    over = evaluate(first, available=600, threshold=500, now=MORNING + timedelta(minutes=5)).state
    second = evaluate(over, available=300, threshold=500, now=NOON)
    assert second.signal is None
    assert second.state.low_since == NOON
    assert not second.state.spell_announced
    ended = evaluate(second.state, available=700, threshold=500, now=NOON + timedelta(minutes=1))
    assert ended.signal is None  # never announced, so nothing to resolve
    assert ended.state.low_since is None


def test_a_crossing_the_next_day_is_announced_again() -> None:
    first = evaluate(CLEAR, available=400, threshold=500, now=MORNING).state
    over = evaluate(first, available=600, threshold=500, now=NOON).state
    decision = evaluate(over, available=300, threshold=500, now=NEXT_DAY)
    assert decision.signal is Signal.LOW
    assert decision.state == AlertState(low_since=NEXT_DAY, alerted_at=NEXT_DAY)


def test_an_unannounced_spell_is_announced_by_the_first_change_of_a_later_day() -> None:
    first = evaluate(CLEAR, available=400, threshold=500, now=MORNING).state
    over = evaluate(first, available=600, threshold=500, now=MORNING + timedelta(minutes=1)).state
    quiet = evaluate(over, available=300, threshold=500, now=NOON).state  # same day: not announced
    decision = evaluate(quiet, available=290, threshold=500, now=NEXT_DAY)
    assert decision.signal is Signal.LOW
    assert decision.state == AlertState(low_since=NOON, alerted_at=NEXT_DAY)


def test_the_day_is_the_utc_day_whatever_the_clock_zone() -> None:
    # 23:30 UTC on Dec 1 and 00:30 UTC on Dec 2 are one hour apart but two days: both are announced.
    late = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    first = evaluate(CLEAR, available=1, threshold=5, now=late).state
    over = evaluate(first, available=9, threshold=5, now=late).state
    ist = timezone(timedelta(hours=5, minutes=30))
    after_midnight = datetime(2026, 12, 2, 6, 0, tzinfo=ist)  # 00:30 UTC
    assert evaluate(over, available=1, threshold=5, now=after_midnight).signal is Signal.LOW
    still_dec_1 = datetime(2026, 12, 2, 4, 0, tzinfo=ist)  # 22:30 UTC on Dec 1
    assert evaluate(over, available=1, threshold=5, now=still_dec_1).signal is None


def test_threshold_zero_ends_a_spell() -> None:
    low = evaluate(CLEAR, available=400, threshold=500, now=MORNING).state
    decision = evaluate(low, available=400, threshold=0, now=NOON)
    assert decision.signal is Signal.RESOLVED
    assert decision.state.low_since is None


def test_raising_the_threshold_over_the_balance_announces_it() -> None:
    decision = evaluate(CLEAR, available=400, threshold=1_000, now=MORNING)
    assert decision.signal is Signal.LOW


def test_cause_payload_names_type_and_id() -> None:
    assert Cause(CauseType.CHARGE, "42").as_payload() == {"type": "charge", "id": "42"}
    assert Cause(CauseType.THRESHOLD).as_payload() == {"type": "threshold", "id": None}


def test_a_new_wallet_takes_the_currency_default_unless_it_asks() -> None:
    defaults = {"INR": 50_000, "USD": 500}
    assert threshold_for("INR", None, defaults) == 50_000
    assert threshold_for("INR", 0, defaults) == 0  # explicit 0: no alerts
    assert threshold_for("INR", 700, defaults) == 700
    assert threshold_for("JPY", None, defaults) == 0


def test_thresholds_setting_parses_pairs_and_json() -> None:
    assert parse_thresholds("INR=50000, usd=500,EUR=500") == {"INR": 50_000, "USD": 500, "EUR": 500}
    assert parse_thresholds("") == {}
    assert parse_low_balance_setting('{"INR": 50000}') == {"INR": 50_000}
    assert parse_low_balance_setting({"USD": 0}) == {"USD": 0}
    assert parse_low_balance_setting(None) == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("INR", "CURRENCY=AMOUNT"),
        ("INR=", "CURRENCY=AMOUNT"),
        ("XYZ=5", "ISO 4217"),
        ("INR=5.5", "whole number"),
        ("INR=-5", "whole number"),
        ("INR=5,INR=6", "twice"),
        ("INR=10000000000000000", "at most"),
        ('{"INR": 5.5}', "whole number"),
        ('{"INR": -1}', "0 or more"),
        ("{not json", "JSON"),
        ("[1]", "CURRENCY=AMOUNT"),
    ],
)
def test_thresholds_setting_refuses_what_it_cannot_use(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_low_balance_setting(value)
