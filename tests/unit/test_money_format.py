"""Amounts written for people in e-mails: symbols, decimals per currency, grouping, signs."""

from __future__ import annotations

import pytest

from walletsvc.domain.errors import UnknownCurrency
from walletsvc.domain.money import Money
from walletsvc.domain.money_format import format_amount, format_money, group_thousands


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (50000, "INR", "Rs 500.00"),
        (500, "JPY", "¥500"),
        (1250, "KWD", "KD 1.250"),
        (500, "USD", "$5.00"),
        (500, "EUR", "€5.00"),
        (500, "GBP", "£5.00"),
        (100, "CHF", "CHF 1.00"),
        (1250, "BHD", "BHD 1.250"),
        (7, "KRW", "KRW 7"),
        (12345, "CLF", "CLF 1.2345"),
    ],
)
def test_each_currency_is_written_with_its_symbol_and_decimals(
    amount: int, currency: str, expected: str
) -> None:
    assert format_amount(amount, currency) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (0, "INR", "Rs 0.00"),
        (1, "INR", "Rs 0.01"),
        (99, "USD", "$0.99"),
        (1, "KWD", "KD 0.001"),
        (0, "JPY", "¥0"),
    ],
)
def test_small_amounts_keep_their_leading_zeros(amount: int, currency: str, expected: str) -> None:
    assert format_amount(amount, currency) == expected


def test_negative_amounts_put_the_sign_before_the_symbol() -> None:
    assert format_amount(-500, "USD") == "-$5.00"
    assert format_amount(-50000, "INR") == "-Rs 500.00"
    assert format_amount(-1, "JPY") == "-¥1"
    assert format_amount(-1_000_000_00, "EUR") == "-€1,000,000.00"


def test_thousands_are_grouped_and_rupees_in_lakhs_and_crores() -> None:
    assert format_amount(1_234_567_89, "USD") == "$1,234,567.89"
    assert format_amount(1_000_00, "USD") == "$1,000.00"
    assert format_amount(999_99, "USD") == "$999.99"
    assert format_amount(1_00_000_00, "INR") == "Rs 1,00,000.00"
    assert format_amount(12_34_56_789_00, "INR") == "Rs 12,34,56,789.00"
    assert format_amount(1_000_000, "JPY") == "¥1,000,000"
    assert format_amount(1_234_567, "KWD") == "KD 1,234.567"


def test_grouping_of_digit_strings() -> None:
    assert group_thousands("1") == "1"
    assert group_thousands("123") == "123"
    assert group_thousands("1234") == "1,234"
    assert group_thousands("123456") == "123,456"
    assert group_thousands("1234567") == "1,234,567"
    assert group_thousands("1234", indian=True) == "1,234"
    assert group_thousands("123456", indian=True) == "1,23,456"
    assert group_thousands("1234567", indian=True) == "12,34,567"
    assert group_thousands("123456789", indian=True) == "12,34,56,789"


def test_an_unknown_currency_is_refused_not_guessed() -> None:
    with pytest.raises(UnknownCurrency):
        format_amount(100, "XYZ")


def test_a_float_is_never_an_amount() -> None:
    with pytest.raises(TypeError):
        format_amount(5.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_amount(True, "USD")


def test_money_values_format_the_same_way() -> None:
    assert format_money(Money(50000, "INR")) == "Rs 500.00"
