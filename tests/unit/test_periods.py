"""The periods a close walks through are the periods the charge writer rolls the quota through."""

from __future__ import annotations

from datetime import UTC, datetime

from walletsvc.domain.periods import next_period
from walletsvc.domain.plans import add_month, current_period


def test_a_period_anchored_on_the_31st_keeps_its_day_through_short_months() -> None:
    start = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
    period = (start, add_month(start))
    ends = []
    for _ in range(4):
        period = next_period(*period)
        ends.append(period[1].date().isoformat())
    assert ends == ["2027-03-31", "2027-04-30", "2027-05-31", "2027-06-30"]


def test_closing_period_by_period_lands_where_the_charge_writer_rolls_to() -> None:
    start = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
    end = add_month(start)
    period = (start, end)
    for months in range(1, 14):
        period = next_period(*period)
        moment = period[0]  # the first instant of the period `months` after the first
        assert current_period(start, end, moment)[:2] == period, months


def test_the_next_period_starts_where_the_last_ended() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    end = datetime(2027, 1, 1, tzinfo=UTC)
    assert next_period(start, end) == (end, datetime(2027, 2, 1, tzinfo=UTC))
