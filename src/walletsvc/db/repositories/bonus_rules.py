"""Bonus rules for top-ups, managed by admins."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.errors import NotFound
from walletsvc.domain.topups import BonusRule

b = t.bonus_rules.c


def rule_from_mapping(m: Any) -> BonusRule:
    return BonusRule(
        id=m["id"],
        currency=m["currency"],
        min_amount=m["min_amount"],
        percent=Decimal(m["percent"]) if m["percent"] is not None else None,
        fixed_amount=m["fixed_amount"],
        starts_at=m["starts_at"],
        ends_at=m["ends_at"],
        active=m["active"],
    )


class BonusRuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, rule: BonusRule, *, description: str, created_by: str) -> BonusRule:
        row = (
            await self.session.execute(
                insert(t.bonus_rules)
                .values(
                    id=rule.id,
                    currency=rule.currency,
                    min_amount=rule.min_amount,
                    percent=rule.percent,
                    fixed_amount=rule.fixed_amount,
                    starts_at=rule.starts_at,
                    ends_at=rule.ends_at,
                    active=rule.active,
                    description=description,
                    created_by=created_by,
                )
                .returning(*t.bonus_rules.c)
            )
        ).one()
        return rule_from_mapping(row._mapping)

    async def get(self, rule_id: str) -> tuple[BonusRule, str]:
        row = (await self.session.execute(select(t.bonus_rules).where(b.id == rule_id))).one_or_none()
        if row is None:
            raise NotFound("bonus rule", rule_id)
        return rule_from_mapping(row._mapping), row._mapping["description"]

    async def replace(self, rule: BonusRule, *, description: str) -> BonusRule:
        row = (
            await self.session.execute(
                update(t.bonus_rules)
                .where(b.id == rule.id)
                .values(
                    min_amount=rule.min_amount,
                    percent=rule.percent,
                    fixed_amount=rule.fixed_amount,
                    starts_at=rule.starts_at,
                    ends_at=rule.ends_at,
                    active=rule.active,
                    description=description,
                    updated_at=func.now(),
                )
                .returning(*t.bonus_rules.c)
            )
        ).one()
        return rule_from_mapping(row._mapping)

    async def list_rules(self, *, currency: str | None = None) -> list[tuple[BonusRule, str]]:
        query = select(t.bonus_rules).order_by(b.currency, b.min_amount, b.id)
        if currency is not None:
            query = query.where(b.currency == currency)
        rows = (await self.session.execute(query)).all()
        return [(rule_from_mapping(r._mapping), r._mapping["description"]) for r in rows]

    async def active_for(self, currency: str) -> list[BonusRule]:
        rows = (
            await self.session.execute(select(t.bonus_rules).where(b.currency == currency, b.active))
        ).all()
        return [rule_from_mapping(r._mapping) for r in rows]
