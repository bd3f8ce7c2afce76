from __future__ import annotations

from decimal import Decimal

import pytest

from walletsvc.domain.errors import CurrencyMismatch, UnknownCurrency
from walletsvc.domain.money import Money, minor_digits, to_minor_units


@pytest.mark.parametrize(
    ("currency", "digits"),
    [("JPY", 0), ("KRW", 0), ("INR", 2), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3)],
)
def test_minor_digits_follow_iso_4217(currency: str, digits: int) -> None:
    assert minor_digits(currency) == digits


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        Money(100, "XYZ")
    with pytest.raises(UnknownCurrency):
        minor_digits("inr")


def test_money_refuses_floats_and_bools() -> None:
    with pytest.raises(TypeError):
        Money(10.5, "INR")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "INR")  # a bool is an int to the type checker, but not an amount


def test_arithmetic_within_one_currency() -> None:
    assert Money(150, "INR") + Money(50, "INR") == Money(200, "INR")
    assert Money(150, "INR") - Money(200, "INR") == Money(-50, "INR")
    assert -Money(5, "JPY") == Money(-5, "JPY")
    assert Money(1, "USD") < Money(2, "USD")


def test_mixing_currencies_raises_instead_of_converting() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(100, "INR") + Money(100, "USD")
    with pytest.raises(CurrencyMismatch):
        _ = Money(100, "INR") < Money(100, "USD")


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(2000, "INR"), "INR 20.00"),
        (Money(-5, "INR"), "INR -0.05"),
        (Money(500, "JPY"), "JPY 500"),
        (Money(1250, "KWD"), "KWD 1.250"),
        (Money(7, "KWD"), "KWD 0.007"),
    ],
)
def test_format_uses_the_currency_exponent(money: Money, text: str) -> None:
    assert money.format() == text


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (Decimal("0.005"), "INR", 1),  # half a paisa rounds up
        (Decimal("0.0049"), "INR", 0),
        (Decimal("1.5"), "JPY", 2),
        (Decimal("0.0005"), "KWD", 1),
        (Decimal("10"), "INR", 1000),
        (Decimal("-0.005"), "INR", -1),  # half away from zero, symmetric for refunds
    ],
)
def test_one_rounding_rule_to_minor_units(value: Decimal, currency: str, minor: int) -> None:
    assert to_minor_units(value, currency) == minor
