"""Period close: the cursor of each subscription's oldest open period, the plan each period pays for, and
the closed periods with their plan fee."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.periods import ClosedPeriod

c = t.period_cursors.c
hist = t.subscription_plan_history.c
pp = t.plan_periods.c

# Subscriptions that have no cursor yet (opened before migration 0009 ran, or written by something other
# than services/plans.py): their current period is the first one this service closes.
_ADOPT = text(
    """
    WITH adopted AS (
        INSERT INTO period_cursors (tenant_id, period_start, period_end)
        SELECT s.tenant_id, s.period_start, s.period_end FROM subscriptions s
         WHERE NOT EXISTS (SELECT 1 FROM period_cursors pc WHERE pc.tenant_id = s.tenant_id)
        ON CONFLICT (tenant_id) DO NOTHING
        RETURNING tenant_id, period_start
    )
    INSERT INTO subscription_plan_history (tenant_id, effective_from, plan_id, changed_by)
    SELECT a.tenant_id, a.period_start, s.plan_id, s.changed_by
      FROM adopted a JOIN subscriptions s USING (tenant_id)
    ON CONFLICT (tenant_id, effective_from) DO NOTHING
    """
)


def closed_from_mapping(m: Any) -> ClosedPeriod:
    return ClosedPeriod(
        id=m["id"],
        tenant_id=m["tenant_id"],
        period_start=m["period_start"],
        period_end=m["period_end"],
        plan_id=m["plan_id"],
        currency=m["currency"],
        fee=m["fee"],
        charged=m["charged"],
        owed=m["owed"],
        quota_used_seconds=m["quota_used_seconds"],
        included_minutes=m["included_minutes"],
        closed_by=m["closed_by"],
        closed_at=m["closed_at"],
    )


class PeriodRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- the cursor and the plan history --------------------------------------------------------

    async def open_subscription(
        self, tenant_id: str, *, start: datetime, end: datetime, plan_id: str, changed_by: str
    ) -> None:
        """A new subscription: its first period is the first to close, on `plan_id`."""
        await self.session.execute(
            pg_insert(t.period_cursors)
            .values(tenant_id=tenant_id, period_start=start, period_end=end)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        await self.schedule_plan(tenant_id, effective_from=start, plan_id=plan_id, changed_by=changed_by)

    async def schedule_plan(
        self, tenant_id: str, *, effective_from: datetime, plan_id: str, changed_by: str
    ) -> None:
        """Periods starting at or after `effective_from` pay `plan_id`'s fee (a later change in the same
        period replaces an earlier one)."""
        await self.session.execute(
            pg_insert(t.subscription_plan_history)
            .values(
                tenant_id=tenant_id, effective_from=effective_from, plan_id=plan_id, changed_by=changed_by
            )
            .on_conflict_do_update(
                index_elements=["tenant_id", "effective_from"],
                set_={"plan_id": plan_id, "changed_by": changed_by, "updated_at": func.now()},
            )
        )

    async def plan_for(self, tenant_id: str, period_start: datetime) -> str | None:
        """The plan whose fee the period starting at `period_start` pays."""
        plan_id: str | None = (
            await self.session.execute(
                select(hist.plan_id)
                .where(hist.tenant_id == tenant_id, hist.effective_from <= period_start)
                .order_by(hist.effective_from.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        return plan_id

    async def adopt_subscriptions(self) -> None:
        await self.session.execute(_ADOPT)

    async def due_tenants(self, now: datetime, *, tenants: Collection[str] | None = None) -> list[str]:
        """Tenants whose oldest open period has ended by `now`, the longest overdue first."""
        query = select(c.tenant_id).where(c.period_end <= now).order_by(c.period_end, c.tenant_id)
        if tenants is not None:
            query = query.where(c.tenant_id.in_(list(tenants)))
        return list((await self.session.execute(query)).scalars().all())

    async def cursor(self, tenant_id: str, *, for_update: bool = False) -> tuple[datetime, datetime] | None:
        query = select(c.period_start, c.period_end).where(c.tenant_id == tenant_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else (row.period_start, row.period_end)

    async def advance_cursor(self, tenant_id: str, *, start: datetime, end: datetime) -> None:
        await self.session.execute(
            update(t.period_cursors)
            .where(c.tenant_id == tenant_id)
            .values(period_start=start, period_end=end, updated_at=func.now())
        )

    async def roll_subscription(
        self, tenant_id: str, *, from_start: datetime, start: datetime, end: datetime
    ) -> None:
        """Move the subscription row from the period starting at `from_start` to [start, end), its quota
        back to zero (only if it still shows that period: the charge writer may have rolled it)."""
        s = t.subscriptions.c
        await self.session.execute(
            update(t.subscriptions)
            .where(s.tenant_id == tenant_id, s.period_start == from_start)
            .values(period_start=start, period_end=end, quota_used_seconds=0, updated_at=func.now())
        )

    # --- closed periods ---------------------------------------------------------------------------

    async def insert_closed(self, values: dict[str, Any]) -> ClosedPeriod | None:
        """Record a closed period; None when that period was closed already (by a rerun or another
        worker): the unique (tenant, period start) is what makes a close happen once."""
        row = (
            await self.session.execute(
                pg_insert(t.plan_periods)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["tenant_id", "period_start"])
                .returning(*t.plan_periods.c)
            )
        ).one_or_none()
        return None if row is None else closed_from_mapping(row._mapping)

    async def owed(self, tenant_id: str) -> list[ClosedPeriod]:
        """Closed periods whose fee is still (partly) owed, oldest first, locked for paying."""
        rows = (
            await self.session.execute(
                select(t.plan_periods)
                .where(pp.tenant_id == tenant_id, pp.owed > 0)
                .order_by(pp.period_start)
                .with_for_update()
            )
        ).all()
        return [closed_from_mapping(r._mapping) for r in rows]

    async def set_paid(self, tenant_id: str, period_id: str, *, charged: int, owed: int) -> None:
        await self.session.execute(
            update(t.plan_periods)
            .where(pp.tenant_id == tenant_id, pp.id == period_id)
            .values(charged=charged, owed=owed, updated_at=func.now())
        )

    async def list_closed(self, tenant_id: str) -> list[ClosedPeriod]:
        rows = (
            await self.session.execute(
                select(t.plan_periods).where(pp.tenant_id == tenant_id).order_by(pp.period_start)
            )
        ).all()
        return [closed_from_mapping(r._mapping) for r in rows]

    async def quota_used_between(self, tenant_id: str, start: datetime, end: datetime) -> int:
        """Quota seconds the tenant's charges used in [start, end), net of refunds: the figure of a period
        whose subscription row the charge writer has already rolled forward."""
        u = t.usage_charges.c
        used = (
            await self.session.execute(
                select(func.coalesce(func.sum(u.quota_seconds - u.quota_refunded_seconds), 0)).where(
                    and_(u.tenant_id == tenant_id, u.created_at >= start, u.created_at < end)
                )
            )
        ).scalar_one()
        return int(used)
