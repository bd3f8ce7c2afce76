"""Subscription periods and their close: which period comes next, and what a closed period records.

The plan fee is postpaid: a period's fee is charged when that period closes, at the price of the plan the
period started on. A plan change takes effect from the next period, so the period in which the tenant
changed plan is charged at the old plan's fee, and the new plan's fee is charged from the next one on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from walletsvc.domain.plans import add_month


def next_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period after [start, end), anchored as `current_period` anchors it, so that the periods closed
    here are the same periods the charge writer rolls the quota through."""
    anchor = max(start.day, end.day)
    return end, add_month(end, day=anchor)


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    """A closed subscription period: its plan fee, what the wallet paid of it and what it still owes."""

    id: str
    tenant_id: str
    period_start: datetime
    period_end: datetime
    plan_id: str
    currency: str
    fee: int  # minor units: the plan's monthly price when the period closed
    charged: int  # paid by the wallet (at the close, and later by credits paying what was owed)
    owed: int  # not paid yet; fee == charged + owed
    quota_used_seconds: int
    included_minutes: int
    closed_by: str
    closed_at: datetime
