"""A large, valid history written set-wise in raw SQL: tenants, wallets, succeeded top-ups, top-up refunds,
usage charges, charge refunds and their ledger rows, chained so that `walletsvc ledger verify` passes.

Going through the service would take hours for a million rows; these are the rows the service writes,
in a few statements. Each tenant's history repeats one pattern, row `seq` of a tenant being:

- every 50th (seq % 50 = 1): a top-up of 1,000.00 credited from Stripe (`topup`);
- seq % 200 = 100: a refund of 10.00 of the top-up 49 rows before it (`topup_refund`, debited);
- seq % 100 = 50: a refund of 0.05 of the charge just before it (`usage_refund`);
- any other row: an SMS charged 0.10 (`usage_charge`).

The history is dated before invoicing began (documents_epoch), as a migrated history is: verify expects
no invoice or credit note for it, and still reads every top-up and refund for those checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

TOPUP, TOPUP_REFUND, CHARGE, CHARGE_REFUND = 100_000, 1_000, 10, 5

PLAN = f"""
CREATE TEMP TABLE bench_rows ON COMMIT DROP AS
SELECT r.tenant_id, r.seq, r.n, r.type, r.amount,
       SUM(r.amount) OVER (PARTITION BY r.tenant_id ORDER BY r.seq) AS balance_after
  FROM (SELECT t.tenant_id, s.seq, t.n, k.type,
               CASE k.type WHEN 'topup' THEN {TOPUP} WHEN 'topup_refund' THEN -{TOPUP_REFUND}
                           WHEN 'usage_refund' THEN {CHARGE_REFUND} ELSE -{CHARGE} END AS amount
          FROM unnest($1::text[], $2::int[]) AS t(tenant_id, n)
         CROSS JOIN LATERAL generate_series(1, t.n) AS s(seq)
         CROSS JOIN LATERAL (SELECT CASE WHEN s.seq % 50 = 1 THEN 'topup'
                                         WHEN s.seq % 200 = 100 THEN 'topup_refund'
                                         WHEN s.seq % 100 = 50 THEN 'usage_refund'
                                         ELSE 'usage_charge' END AS type) k) r
"""

STEPS = (
    "INSERT INTO tenants (id, name, country, currency) SELECT DISTINCT tenant_id, 'bench', 'USA', 'USD'"
    " FROM bench_rows",
    "INSERT INTO wallets (tenant_id, currency, balance, ledger_seq)"
    " SELECT tenant_id, 'USD', balance_after, seq FROM bench_rows WHERE seq = n",
    f"""
    INSERT INTO topups (tenant_id, id, provider, status, amount, currency, checkout_kind, provider_payment_id,
                        credited_amount, refunded_amount, created_by, created_at, updated_at, succeeded_at)
    SELECT b.tenant_id, 'tp-' || b.tenant_id || '-' || b.seq, 'stripe', 'succeeded', {TOPUP}, 'USD', 'redirect',
           'pi_' || b.tenant_id || '_' || b.seq, {TOPUP},
           CASE WHEN b.seq + 99 <= b.n AND (b.seq + 99) % 200 = 100 THEN {TOPUP_REFUND} ELSE 0 END,
           'bench', $1, $1, $1
      FROM bench_rows b WHERE b.type = 'topup'
    """,
    f"""
    INSERT INTO topup_refunds (tenant_id, id, topup_id, amount, currency, status, provider_refund_id, reason,
                               debited, created_by, created_at, updated_at)
    SELECT tenant_id, 'tr-' || tenant_id || '-' || seq, 'tp-' || tenant_id || '-' || (seq - 99),
           {TOPUP_REFUND}, 'USD', 'succeeded', 're_' || tenant_id || '_' || seq, 'bench', true, 'bench', $1, $1
      FROM bench_rows WHERE type = 'topup_refund'
    """,
    f"""
    INSERT INTO usage_charges (tenant_id, kind, reference_id, quantity, amount, currency, charged, refunded,
                               created_by, created_at)
    SELECT tenant_id, 'sms', 'uc-' || seq, 1, {CHARGE}, 'USD', {CHARGE},
           CASE WHEN seq + 1 <= n AND (seq + 1) % 100 = 50 THEN {CHARGE_REFUND} ELSE 0 END,
           'bench', $1
      FROM bench_rows WHERE type = 'usage_charge' ORDER BY tenant_id, seq
    """,
    f"""
    INSERT INTO charge_refunds (tenant_id, id, charge_id, amount, to_wallet, forgiven, currency, reason,
                                created_by, created_at)
    SELECT b.tenant_id, 'cr-' || b.tenant_id || '-' || b.seq, c.id, {CHARGE_REFUND}, {CHARGE_REFUND}, 0, 'USD',
           'bench', 'bench', $1
      FROM bench_rows b
      JOIN usage_charges c ON c.tenant_id = b.tenant_id AND c.kind = 'sms' AND c.reference_id = 'uc-' || (b.seq - 1)
     WHERE b.type = 'usage_refund'
    """,
    """
    INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,
                                counter_account, reference_type, reference_id, description, actor, created_at)
    SELECT b.tenant_id, b.seq, b.type, b.amount, 'USD', b.balance_after - b.amount, b.balance_after,
           CASE WHEN b.type IN ('topup', 'topup_refund') THEN 'provider:stripe' ELSE 'revenue:usage' END,
           CASE b.type WHEN 'usage_refund' THEN 'charge_refund' ELSE b.type END,
           CASE b.type WHEN 'topup' THEN 'tp-' || b.tenant_id || '-' || b.seq
                       WHEN 'topup_refund' THEN 'tr-' || b.tenant_id || '-' || b.seq
                       WHEN 'usage_refund' THEN 'cr-' || b.tenant_id || '-' || b.seq
                       ELSE c.id::text END,
           CASE b.type WHEN 'usage_charge' THEN 'sms' ELSE 'bench ' || b.type END, 'bench',
           $1::timestamptz + b.seq * interval '1 millisecond'
      FROM bench_rows b
      LEFT JOIN usage_charges c
        ON b.type = 'usage_charge' AND c.tenant_id = b.tenant_id AND c.kind = 'sms' AND c.reference_id = 'uc-' || b.seq
     ORDER BY b.tenant_id, b.seq
    """,
)


@dataclass(frozen=True, slots=True)
class Written:
    rows: int
    tenants: int
    hot_tenant: str
    seconds: float


def tenant_rows(rows: int, *, hot_share: float, per_tenant: int, prefix: str) -> dict[str, int]:
    """How many ledger rows each tenant gets: one hot tenant with `hot_share` of them, the rest in tenants
    of `per_tenant` rows."""
    hot = max(1, int(rows * hot_share))
    plan = {f"{prefix}-hot": hot}
    rest, i = rows - hot, 0
    while rest > 0:
        take = min(per_tenant, rest)
        plan[f"{prefix}-{i:06d}"] = take
        rest, i = rest - take, i + 1
    return plan


async def write_history(
    conn: asyncpg.Connection, rows: int, *, hot_share: float = 0.5, per_tenant: int = 200, prefix: str = "bv"
) -> Written:
    """Write `rows` ledger rows (and what they record) in one transaction; answers what was written."""
    plan = tenant_rows(rows, hot_share=hot_share, per_tenant=per_tenant, prefix=prefix)
    started = time.perf_counter()
    async with conn.transaction():
        # Dated a month before invoicing began: see the module's docstring.
        epoch = await conn.fetchval("SELECT started_at - interval '30 days' FROM documents_epoch")
        await conn.execute(PLAN, list(plan), list(plan.values()))
        await conn.execute("ANALYZE bench_rows")
        for step in STEPS:
            arguments = (epoch,) if "$1" in step else ()
            await conn.execute(step, *arguments)
    return Written(
        rows=rows, tenants=len(plan), hot_tenant=f"{prefix}-hot", seconds=time.perf_counter() - started
    )
