"""Tax, tax ids, numbers and periods of documents: pure rules, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walletsvc.domain.documents import DocumentKind, Period, counter_year, format_number, series_name
from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.tax import TaxRule, break_down, gst_state_code, split_evenly, tax_amount
from walletsvc.domain.tax_ids import TaxIdInvalid, check_tax_id, gstin_check_character

GST_KA = TaxRule(
    rate_percent=Decimal(18), label="GST", indian_gst=True, seller_country="IND", seller_state="KA"
)
rates = st.decimals(min_value=0, max_value=Decimal("99.9999"), places=4)
amounts = st.integers(min_value=0, max_value=10**15)


def test_inclusive_tax_is_taken_out_of_the_gross_and_adds_back_exactly() -> None:
    taxed = break_down(50000, TaxRule(rate_percent=Decimal(18)), buyer_country="DEU", buyer_state=None)
    assert (taxed.net, taxed.tax, taxed.gross) == (42373, 7627, 50000)  # 50000 * 18 / 118 = 7627.118...


def test_exclusive_tax_is_added_on_top() -> None:
    taxed = break_down(
        10000, TaxRule(rate_percent=Decimal(19), inclusive=False), buyer_country="DEU", buyer_state=None
    )
    assert (taxed.net, taxed.tax, taxed.gross) == (10000, 1900, 11900)


def test_half_a_minor_unit_rounds_up() -> None:
    assert tax_amount(50, Decimal(1), inclusive=False) == 1  # 0.5 -> 1
    assert tax_amount(49, Decimal(1), inclusive=False) == 0  # 0.49 -> 0


def test_no_rate_means_no_tax_lines() -> None:
    taxed = break_down(12345, TaxRule(), buyer_country="IND", buyer_state="KA")
    assert taxed.taxes == ()
    assert taxed.net == taxed.gross == 12345


def test_gst_within_the_sellers_state_is_cgst_plus_sgst() -> None:
    taxed = break_down(50001, GST_KA, buyer_country="IND", buyer_state="29")
    assert [t.label for t in taxed.taxes] == ["CGST", "SGST"]
    assert [t.rate_percent for t in taxed.taxes] == [Decimal(9), Decimal(9)]
    assert taxed.taxes[0].amount + taxed.taxes[1].amount == taxed.tax
    assert taxed.taxes[0].amount - taxed.taxes[1].amount in (0, 1)


def test_gst_to_another_state_or_an_unknown_one_is_igst() -> None:
    for state in ("MH", None):
        taxed = break_down(50000, GST_KA, buyer_country="IND", buyer_state=state)
        assert [(t.label, t.rate_percent, t.amount) for t in taxed.taxes] == [("IGST", Decimal(18), 7627)]


@given(amounts, rates, st.booleans(), st.booleans())
def test_totals_add_up_to_the_minor_unit_for_any_amount(
    amount: int, rate: Decimal, inclusive: bool, same_state: bool
) -> None:
    rule = TaxRule(
        rate_percent=rate, inclusive=inclusive, indian_gst=True, seller_country="IND", seller_state="KA"
    )
    taxed = break_down(amount, rule, buyer_country="IND", buyer_state="KA" if same_state else "MH")
    assert taxed.net + sum(t.amount for t in taxed.taxes) == taxed.gross
    assert (taxed.gross if inclusive else taxed.net) == amount
    assert all(isinstance(t.amount, int) and t.amount >= 0 for t in taxed.taxes)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_the_two_gst_halves_always_add_up(tax: int) -> None:
    first, second = split_evenly(tax)
    assert first + second == tax
    assert abs(first - second) <= 1


def test_a_rate_is_a_decimal_below_100() -> None:
    with pytest.raises(ValueError, match="Decimal percentage"):
        TaxRule(rate_percent=Decimal(100))
    with pytest.raises(ValueError, match="Decimal percentage"):
        TaxRule(rate_percent=18.0)  # type: ignore[arg-type]


def test_indian_states_by_iso_or_gst_code() -> None:
    assert gst_state_code("KA") == gst_state_code("IN-KA") == gst_state_code("29") == "29"
    assert gst_state_code("ZZ") is None
    assert gst_state_code("00") is None
    assert gst_state_code(None) is None


def test_a_real_gstin_passes_and_a_typo_is_caught() -> None:
    assert check_tax_id("27aapfu0939f1zv", country="IND") == "27AAPFU0939F1ZV"
    assert check_tax_id("27AAPFU0939F1ZV", country="IND", state="MH") == "27AAPFU0939F1ZV"
    with pytest.raises(TaxIdInvalid, match="check character"):
        check_tax_id("27AAPFU0939F1ZW", country="IND")
    with pytest.raises(TaxIdInvalid, match="15 characters"):
        check_tax_id("27AAPFU0939F1Z", country="IND")
    with pytest.raises(TaxIdInvalid, match="not the state given"):
        check_tax_id("27AAPFU0939F1ZV", country="IND", state="KA")


def test_a_gstin_with_a_state_code_that_does_not_exist_is_refused() -> None:
    body = "00AAPFU0939F1Z"
    with pytest.raises(TaxIdInvalid, match="not a GST state code"):
        check_tax_id(body + gstin_check_character(body), country="IND")


@pytest.mark.parametrize(
    ("country", "raw", "normal"),
    [
        ("DEU", "DE 123 456 789", "DE123456789"),
        ("DEU", "123456789", "DE123456789"),  # typed without its prefix
        ("FRA", "FR40303265045", "FR40303265045"),
        ("NLD", "NL123456789B01", "NL123456789B01"),
        ("GRC", "EL123456789", "EL123456789"),
        ("AUT", "ATU12345678", "ATU12345678"),
        ("USA", "12-3456789", "12-3456789"),  # generic: kept as typed, upper-cased
    ],
)
def test_vat_numbers_by_country(country: str, raw: str, normal: str) -> None:
    assert check_tax_id(raw, country=country) == normal


@pytest.mark.parametrize(
    ("country", "raw"), [("DEU", "DE12345678"), ("ITA", "IT123"), ("NLD", "NL123456789X01"), ("USA", "!")]
)
def test_vat_numbers_of_the_wrong_shape_are_refused(country: str, raw: str) -> None:
    with pytest.raises(TaxIdInvalid):
        check_tax_id(raw, country=country)


def test_numbers_carry_the_series_and_the_year() -> None:
    assert format_number(series_name("WS", DocumentKind.INVOICE), 2026, 123) == "WS-2026-000123"
    assert format_number(series_name("WS", DocumentKind.CREDIT_NOTE), 2026, 4) == "WS-CN-2026-000004"
    assert format_number(series_name("WS", DocumentKind.STATEMENT), 0, 10) == "WS-ST-000010"
    assert format_number("WS", 2026, 1_234_567) == "WS-2026-1234567"
    moment = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert counter_year(moment, yearly_reset=True) == 2026
    assert counter_year(moment, yearly_reset=False) == 0


def test_periods_are_calendar_months_in_utc() -> None:
    november = Period.parse("2026-11")
    assert november.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert november.end == datetime(2026, 12, 1, tzinfo=UTC)
    assert str(Period.parse("2026-12").next()) == "2027-01"
    assert str(Period.parse("2027-01").previous()) == "2026-12"
    for bad in ("2026-13", "2026-1", "26-11", "1999-12", "2026-11.pdf"):
        with pytest.raises(InvalidRequest):
            Period.parse(bad)
