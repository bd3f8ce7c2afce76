"""The charge writer's statements, on the raw asyncpg connection: a hot wallet's batch is written in
four round trips (lock and prices, charges, ledger with wallet and quota, commit) with statements that
asyncpg prepares once per connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from walletsvc.db.repositories.plans import rates_from_mapping
from walletsvc.db.repositories.usage import LockedWallet, UsageCharge, charge_from_mapping
from walletsvc.domain.rating import Rates

_RATE_COLUMNS = (
    "per_minute_rate",
    "billing_increment_seconds",
    "minimum_billable_seconds",
    "connection_fee",
    "sms_price",
    "email_price",
    "fax_page_price",
    "file_transfer_price",
)

# Built from the constant column list above: no input reaches this text.
_LOCK = f"""
SELECT w.tenant_id, w.currency, w.balance, w.reserved, w.ledger_seq, w.flagged, w.owed, w.spent_day,
       w.spent_today, w.max_concurrent_calls, w.daily_spend_cap, w.low_balance_threshold,
       w.low_balance_since, w.low_balance_alerted_at,
       w.auto_topup_enabled, w.auto_topup_threshold, w.auto_topup_paused_until,
       s.plan_id, s.period_start, s.period_end, s.quota_used_seconds, p.included_minutes,
       {", ".join(f"p.{c} AS p_{c}" for c in _RATE_COLUMNS)},
       {", ".join(f"d.{c} AS d_{c}" for c in _RATE_COLUMNS)}
  FROM wallets w
  LEFT JOIN subscriptions s ON s.tenant_id = w.tenant_id
  LEFT JOIN plans p ON p.id = s.plan_id
  LEFT JOIN billing_defaults d ON d.currency = w.currency
 WHERE w.tenant_id = $1
   FOR UPDATE OF w
"""  # noqa: S608

_EXISTING = """
SELECT c.* FROM usage_charges c
  JOIN unnest($2::text[], $3::text[]) AS k(kind, reference_id)
    ON c.kind = k.kind AND c.reference_id = k.reference_id
 WHERE c.tenant_id = $1
"""

_SETTLE_HOLDS = """
UPDATE holds SET status = 'settled', closed_at = now()
 WHERE tenant_id = $1 AND call_id = ANY($2::text[]) AND status = 'active'
RETURNING call_id, amount
"""

_INSERT_CHARGES = """
INSERT INTO usage_charges (tenant_id, kind, reference_id, quantity, duration_seconds, billable_seconds,
                           quota_seconds, paid_seconds, amount, currency, charged, owed, plan_id,
                           hold_amount, created_by)
SELECT $1, x.kind, x.reference_id, x.quantity, x.duration_seconds, x.billable_seconds, x.quota_seconds,
       x.paid_seconds, x.amount, $2, x.charged, x.owed, $3, x.hold_amount, x.created_by
  FROM unnest($4::text[], $5::text[], $6::int[], $7::int[], $8::int[], $9::int[], $10::int[],
              $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::text[])
       AS x(kind, reference_id, quantity, duration_seconds, billable_seconds, quota_seconds, paid_seconds,
            amount, charged, owed, hold_amount, created_by)
ON CONFLICT ON CONSTRAINT usage_charges_once DO NOTHING
RETURNING *
"""

# The ledger rows, the quota and the wallet in one statement: the data-modifying CTEs all run, in one
# round trip, inside the batch's transaction.
_FINISH = """
WITH ledger AS (
    INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,
                                counter_account, reference_type, reference_id, description, actor)
    SELECT $1, x.seq, 'usage_charge', x.amount, $2, x.balance_before, x.balance_after, 'revenue:usage',
           'usage_charge', x.reference_id, x.description, x.actor
      FROM unnest($3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[])
           AS x(seq, amount, balance_before, balance_after, reference_id, description, actor)
), quota AS (
    UPDATE subscriptions
       SET quota_used_seconds = $10, period_start = $11, period_end = $12, updated_at = now()
     WHERE tenant_id = $1 AND $13::boolean
)
UPDATE wallets
   SET balance = $14, reserved = $15, ledger_seq = $16, flagged = $17, owed = $18, spent_day = $19,
       spent_today = $20, low_balance_since = $21, low_balance_alerted_at = $22, updated_at = now()
 WHERE tenant_id = $1
"""


@dataclass(slots=True)
class LockedAccount:
    """What a charge batch decides on, read with the wallet row locked: the wallet, its subscription
    and the prices that apply (the plan's, or the currency's stored defaults)."""

    wallet: LockedWallet
    plan_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    quota_used_seconds: int
    included_minutes: int
    plan_rates: Rates | None
    default_rates: Rates | None


@dataclass(frozen=True, slots=True)
class LedgerLine:
    seq: int
    amount: int
    balance_before: int
    balance_after: int
    reference_id: str
    description: str
    actor: str


class ChargeStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lock(self, tenant_id: str) -> LockedAccount | None:
        row = await self.conn.fetchrow(_LOCK, tenant_id)
        if row is None:
            return None
        wallet = LockedWallet(
            tenant_id=row["tenant_id"],
            currency=row["currency"],
            balance=row["balance"],
            reserved=row["reserved"],
            ledger_seq=row["ledger_seq"],
            flagged=row["flagged"],
            owed=row["owed"],
            spent_day=row["spent_day"],
            spent_today=row["spent_today"],
            max_concurrent_calls=row["max_concurrent_calls"],
            daily_spend_cap=row["daily_spend_cap"],
            low_balance_threshold=row["low_balance_threshold"],
            low_balance_since=row["low_balance_since"],
            low_balance_alerted_at=row["low_balance_alerted_at"],
            auto_topup_enabled=row["auto_topup_enabled"],
            auto_topup_threshold=row["auto_topup_threshold"],
            auto_topup_paused_until=row["auto_topup_paused_until"],
        )

        def rates(prefix: str) -> Rates | None:
            if row[f"{prefix}per_minute_rate"] is None:
                return None
            return rates_from_mapping({c: row[f"{prefix}{c}"] for c in _RATE_COLUMNS}, wallet.currency)

        return LockedAccount(
            wallet=wallet,
            plan_id=row["plan_id"],
            period_start=row["period_start"],
            period_end=row["period_end"],
            quota_used_seconds=row["quota_used_seconds"] or 0,
            included_minutes=row["included_minutes"] or 0,
            plan_rates=rates("p_"),
            default_rates=rates("d_"),
        )

    async def existing(
        self, tenant_id: str, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], UsageCharge]:
        rows = await self.conn.fetch(_EXISTING, tenant_id, [k for k, _ in keys], [r for _, r in keys])
        return {(r["kind"], r["reference_id"]): charge_from_mapping(r) for r in rows}

    async def settle_holds(self, tenant_id: str, call_ids: list[str]) -> dict[str, int]:
        rows = await self.conn.fetch(_SETTLE_HOLDS, tenant_id, call_ids)
        return {r["call_id"]: r["amount"] for r in rows}

    async def insert_charges(
        self, tenant_id: str, currency: str, plan_id: str | None, rows: list[dict[str, Any]]
    ) -> list[UsageCharge]:
        """Insert the batch's new charges; a reference charged meanwhile by another process is skipped
        (ON CONFLICT), so fewer rows come back than went in and the caller starts over."""

        def column(name: str) -> list[Any]:
            return [r[name] for r in rows]

        records = await self.conn.fetch(
            _INSERT_CHARGES,
            tenant_id,
            currency,
            plan_id,
            column("kind"),
            column("reference_id"),
            column("quantity"),
            column("duration_seconds"),
            column("billable_seconds"),
            column("quota_seconds"),
            column("paid_seconds"),
            column("amount"),
            column("charged"),
            column("owed"),
            column("hold_amount"),
            column("created_by"),
        )
        return [charge_from_mapping(r) for r in records]

    async def finish(
        self,
        wallet: LockedWallet,
        lines: list[LedgerLine],
        *,
        quota: tuple[int, datetime, datetime] | None,
        spent_day: date,
    ) -> None:
        used, start, end = quota if quota is not None else (0, None, None)
        await self.conn.execute(
            _FINISH,
            wallet.tenant_id,
            wallet.currency,
            [line.seq for line in lines],
            [line.amount for line in lines],
            [line.balance_before for line in lines],
            [line.balance_after for line in lines],
            [line.reference_id for line in lines],
            [line.description for line in lines],
            [line.actor for line in lines],
            used,
            start,
            end,
            quota is not None,
            wallet.balance,
            wallet.reserved,
            wallet.ledger_seq,
            wallet.flagged,
            wallet.owed,
            spent_day,
            wallet.spent_today,
            wallet.low_balance_since,
            wallet.low_balance_alerted_at,
        )
