"""Plans, subscriptions and their billing periods, and the decision to let a call start."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

from walletsvc.domain.money import Money
from walletsvc.domain.rating import Rates, affordable_seconds, rate_call


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    currency: str
    monthly_price: int  # minor units, charged once per period
    included_minutes: int  # the quota: minutes of calls per period paid by the monthly price
    rates: Rates
    features: tuple[str, ...]
    active: bool


@dataclass(frozen=True, slots=True)
class Subscription:
    tenant_id: str
    plan_id: str
    period_start: datetime
    period_end: datetime
    quota_used_seconds: int

    def quota_remaining_seconds(self, plan: Plan) -> int:
        return max(plan.included_minutes * 60 - self.quota_used_seconds, 0)


def add_month(moment: datetime, *, day: int | None = None) -> datetime:
    """The same day next month (or `day`, a period's anchor), or the month's last day when it is shorter
    (31 Jan -> 28/29 Feb)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(day or moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def current_period(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime, bool]:
    """Roll a period forward, a month at a time, until it contains `now`; say whether it moved.

    A period keeps the day it is anchored on: one opened on 31 Jan ends 28 Feb, then 31 Mar, 30 Apr,
    not 28 Mar, 28 Apr. The anchor is the larger of the start and end days, because no two
    consecutive months are both shorter than it; so it survives being stored and rolled month by month.
    """
    anchor = max(start.day, end.day)
    moved = False
    while now >= end:
        start, end, moved = end, add_month(end, day=anchor), True
    return start, end, moved


@dataclass(frozen=True, slots=True)
class Authorization:
    allowed: bool
    max_seconds: int
    hold: Money
    reason: str | None = None  # why not, when not allowed
    code: str | None = None  # a stable code for `reason`


def authorize_call(
    *,
    available: int,
    rates: Rates,
    quota_remaining_seconds: int,
    minimum_balance: int,
    requested_max_seconds: int | None,
    cap_seconds: int,
    default_hold_seconds: int,
    active_calls: int,
    max_concurrent_calls: int | None,
    spent_today: int,
    daily_spend_cap: int | None,
) -> Authorization:
    """May this call start, for how long, and how much to hold for it.

    `max_seconds` is how long the call may run on the available balance and the remaining quota at the
    plan's rate. The hold is the cost of the expected length (`requested_max_seconds`, or the default
    estimate), so that concurrent calls cannot together promise more than the wallet holds.
    """
    none = Money(0, rates.currency)
    if max_concurrent_calls is not None and active_calls >= max_concurrent_calls:
        return Authorization(
            False, 0, none, f"{active_calls} calls are already in progress", "CONCURRENT_CALL_LIMIT"
        )
    if daily_spend_cap is not None and spent_today >= daily_spend_cap:
        return Authorization(False, 0, none, "today's spend cap is reached", "DAILY_SPEND_CAP")
    if quota_remaining_seconds <= 0 and available < minimum_balance:
        return Authorization(
            False,
            0,
            none,
            f"the available balance is below the minimum of {Money(minimum_balance, rates.currency).format()}",
            "BELOW_MINIMUM",
        )
    cap = min(requested_max_seconds or cap_seconds, cap_seconds)
    if daily_spend_cap is not None:
        available = min(available, daily_spend_cap - spent_today)
    max_seconds = affordable_seconds(
        max(available, 0), rates, quota_remaining_seconds=quota_remaining_seconds, cap_seconds=cap
    )
    if max_seconds <= 0:
        return Authorization(
            False, 0, none, "the balance does not pay for any time at this rate", "INSUFFICIENT_FUNDS"
        )
    expected = min(max_seconds, requested_max_seconds or default_hold_seconds)
    estimate = rate_call(expected, rates, quota_remaining_seconds=quota_remaining_seconds).amount.amount
    return Authorization(True, max_seconds, Money(min(estimate, max(available, 0)), rates.currency))


@dataclass(slots=True)  # built per charge: not frozen, as domain/charging.py says why
class Settlement:
    """How one charge lands on a wallet: what the wallet pays now and what stays owed."""

    charged: int
    owed: int


def settle_charge(amount: int, *, available_after_release: int) -> Settlement:
    """The call happened: charge what the wallet can cover (its own hold included) and record the rest
    as owed, never taking the balance below zero."""
    charged = min(amount, max(available_after_release, 0))
    return Settlement(charged=charged, owed=amount - charged)
