from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from walletsvc.domain.errors import AboveMaximum, BelowMinimum, InvalidRequest
from walletsvc.domain.money import Money
from walletsvc.domain.topups import BonusRule, best_bonus, check_topup_amount, confirmation_mismatch

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def rule(rule_id: str = "r1", **kw: Any) -> BonusRule:
    fields: dict[str, Any] = {
        "id": rule_id,
        "currency": "INR",
        "min_amount": 50_000,
        "percent": Decimal("10"),
        "fixed_amount": None,
        "starts_at": None,
        "ends_at": None,
        "active": True,
    }
    fields.update(kw)
    return BonusRule(**fields)


def test_the_minimum_recharge_is_rs_10() -> None:
    limits = {"minimums": {"INR": 1000}, "maximums": {}}
    check_topup_amount(Money(1000, "INR"), **limits)
    with pytest.raises(BelowMinimum) as low:
        check_topup_amount(Money(999, "INR"), **limits)
    assert low.value.minimum == 1000
    assert "INR 10.00" in low.value.detail


def test_currencies_without_a_setting_use_one_major_unit_to_100000() -> None:
    check_topup_amount(Money(1, "JPY"), minimums={}, maximums={})
    check_topup_amount(Money(1_000, "KWD"), minimums={}, maximums={})
    with pytest.raises(BelowMinimum):
        check_topup_amount(Money(999, "KWD"), minimums={}, maximums={})
    with pytest.raises(AboveMaximum):
        check_topup_amount(Money(100_001, "JPY"), minimums={}, maximums={})


def test_percent_bonus_rounds_by_the_one_rule() -> None:
    (chosen, bonus) = best_bonus(Money(50_005, "INR"), [rule()], NOW) or (None, None)
    assert chosen is not None
    assert bonus == Money(5_001, "INR")  # 5000.5 paise rounds half up


def test_fixed_bonus() -> None:
    result = best_bonus(Money(60_000, "INR"), [rule(percent=None, fixed_amount=2_500)], NOW)
    assert result is not None
    assert result[1] == Money(2_500, "INR")


def test_no_bonus_below_the_rule_minimum_or_in_another_currency() -> None:
    assert best_bonus(Money(49_999, "INR"), [rule()], NOW) is None
    assert best_bonus(Money(90_000, "USD"), [rule()], NOW) is None


def test_time_boxed_rules_apply_only_inside_their_window() -> None:
    boxed = rule(starts_at=NOW - timedelta(days=1), ends_at=NOW + timedelta(days=1))
    assert best_bonus(Money(50_000, "INR"), [boxed], NOW) is not None
    assert best_bonus(Money(50_000, "INR"), [boxed], NOW + timedelta(days=1)) is None  # ends_at is exclusive
    assert best_bonus(Money(50_000, "INR"), [boxed], NOW - timedelta(days=2)) is None


def test_inactive_rules_do_not_apply() -> None:
    assert best_bonus(Money(50_000, "INR"), [rule(active=False)], NOW) is None


def test_the_best_single_rule_wins_and_rules_do_not_stack() -> None:
    rules = [
        rule("small", percent=Decimal("5")),
        rule("big", percent=Decimal("12.5")),
        rule("flat", percent=None, fixed_amount=100),
    ]
    chosen = best_bonus(Money(80_000, "INR"), rules, NOW)
    assert chosen is not None
    assert (chosen[0].id, chosen[1]) == ("big", Money(10_000, "INR"))


@pytest.mark.parametrize(
    "fields",
    [
        {"percent": Decimal("5"), "fixed_amount": 100},
        {"percent": None, "fixed_amount": None},
        {"percent": Decimal("0")},
        {"percent": Decimal("100.01")},
        {"percent": None, "fixed_amount": -5},
        {"min_amount": -1},
        {"starts_at": NOW, "ends_at": NOW},
    ],
)
def test_nonsense_rules_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        rule(**fields)


def test_confirmation_must_match_amount_and_currency() -> None:
    assert confirmation_mismatch(Money(2500, "USD"), Money(2500, "USD")) is None
    assert "USD 24.99" in (confirmation_mismatch(Money(2500, "USD"), Money(2499, "USD")) or "")
    assert "EUR" in (confirmation_mismatch(Money(2500, "USD"), Money(2500, "EUR")) or "")
