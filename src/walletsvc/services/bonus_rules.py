"""Bonus rules: admins create and change them; the domain checks they make sense."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.bonus_rules import BonusRuleRepository
from walletsvc.domain.money import check_currency
from walletsvc.domain.topups import BonusRule


async def create_bonus_rule(
    session: AsyncSession,
    *,
    currency: str,
    min_amount: int,
    percent: Decimal | None,
    fixed_amount: int | None,
    starts_at: datetime | None,
    ends_at: datetime | None,
    active: bool,
    description: str,
    actor: str,
) -> tuple[BonusRule, str]:
    rule = BonusRule(
        id=f"bonus_{secrets.token_hex(8)}",
        currency=check_currency(currency),
        min_amount=min_amount,
        percent=percent,
        fixed_amount=fixed_amount,
        starts_at=starts_at,
        ends_at=ends_at,
        active=active,
    )
    return await BonusRuleRepository(session).add(
        rule, description=description, created_by=actor
    ), description


async def update_bonus_rule(
    session: AsyncSession, rule_id: str, *, changes: dict[str, object], description: str | None
) -> tuple[BonusRule, str]:
    """Apply the given fields; giving `percent` drops a fixed amount and the other way round."""
    rules = BonusRuleRepository(session)
    current, current_description = await rules.get(rule_id)
    if "percent" in changes and changes["percent"] is not None:
        changes.setdefault("fixed_amount", None)
    if "fixed_amount" in changes and changes["fixed_amount"] is not None:
        changes.setdefault("percent", None)
    updated = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
    text = current_description if description is None else description
    return await rules.replace(updated, description=text), text
