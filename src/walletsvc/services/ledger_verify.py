"""`walletsvc ledger verify`: every ledger invariant of DESIGN.md, checked over the whole database.

Each check is one query that returns the offending rows; an empty result means the invariant holds.

Every check reads whole tables, so its plan must stay linear in their size. Right after a bulk write the
tables have no statistics yet: the planner then takes a selective filter for one row and, with the LIMIT
of the report, chose a nested loop over a sequential scan (60,000 ledger rows: one check ran for over
5 minutes). Three things keep it linear: the tables are analysed first (in a short transaction of their
own), each check is planned for its whole result (a MATERIALIZED CTE; the LIMIT only stops reading it),
and nested loops are off for the checks' transaction (whole-table joins are hash or merge joins).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    description: str
    sql: str


@dataclass(slots=True)
class CheckResult:
    check: Check
    offending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.offending


CHECKS: tuple[Check, ...] = (
    Check(
        "balance_equals_ledger_sum",
        "each wallet's balance equals the sum of its ledger amounts",
        """
        SELECT w.tenant_id, w.balance, COALESCE(s.total, 0) AS ledger_sum
          FROM wallets w
          LEFT JOIN (SELECT tenant_id, SUM(amount) AS total FROM ledger_entries GROUP BY tenant_id) s
            USING (tenant_id)
         WHERE w.balance <> COALESCE(s.total, 0)
        """,
    ),
    Check(
        "chain_unbroken",
        "each row's balance_before is the previous row's balance_after (the first starts at 0)",
        """
        SELECT tenant_id, id, seq, balance_before, previous_after
          FROM (SELECT tenant_id, id, seq, balance_before,
                       COALESCE(LAG(balance_after) OVER (PARTITION BY tenant_id ORDER BY seq), 0)
                           AS previous_after
                  FROM ledger_entries) chain
         WHERE balance_before <> previous_after
        """,
    ),
    Check(
        "sequence_contiguous",
        "each wallet's ledger sequence runs 1..n with no gap, and n is the wallet's ledger_seq",
        """
        SELECT w.tenant_id, w.ledger_seq, COALESCE(s.rows, 0) AS rows, s.max_seq
          FROM wallets w
          LEFT JOIN (SELECT tenant_id, COUNT(*) AS rows, MAX(seq) AS max_seq
                       FROM ledger_entries GROUP BY tenant_id) s USING (tenant_id)
         WHERE w.ledger_seq <> COALESCE(s.rows, 0) OR COALESCE(s.max_seq, 0) <> COALESCE(s.rows, 0)
        """,
    ),
    Check(
        "arithmetic",
        "each row's balance_after is its balance_before plus its amount",
        "SELECT tenant_id, id, balance_before, amount, balance_after FROM ledger_entries"
        " WHERE balance_after <> balance_before + amount",
    ),
    Check(
        "negative_only_by_adjustment",
        "no debit takes a balance below zero except an admin adjustment that says so, or a forced refund "
        "(and the bonus share it takes back): a refund that was not forced had its money held",
        """
        SELECT e.tenant_id, e.id, e.type, e.amount, e.balance_after, e.reference_id FROM ledger_entries e
          LEFT JOIN topup_refunds r
            ON r.tenant_id = e.tenant_id AND r.id = e.reference_id AND e.reference_type = 'topup_refund'
         WHERE e.amount < 0 AND e.balance_after < 0
           AND NOT ((e.type = 'adjustment' AND e.allow_negative)
                 OR (e.type IN ('topup_refund', 'bonus') AND e.reference_type = 'topup_refund'
                     AND COALESCE(r.forced, false)))
        """,
    ),
    Check(
        "currency_matches_wallet",
        "each ledger row is in its wallet's currency",
        """
        SELECT e.tenant_id, e.id, e.currency, w.currency AS wallet_currency
          FROM ledger_entries e JOIN wallets w USING (tenant_id)
         WHERE e.currency <> w.currency
        """,
    ),
    Check(
        "ledger_rows_have_wallets",
        "each ledger row belongs to a wallet that exists",
        """
        SELECT e.tenant_id, COUNT(*) AS rows FROM ledger_entries e
         WHERE NOT EXISTS (SELECT 1 FROM wallets w WHERE w.tenant_id = e.tenant_id)
         GROUP BY e.tenant_id
        """,
    ),
    Check(
        "topup_credited_once",
        "each succeeded top-up has exactly one credit row, for what the provider confirmed; others none",
        """
        SELECT t.tenant_id, t.id AS topup_id, t.status, t.credited_amount,
               COUNT(e.id) AS credit_rows, COALESCE(SUM(e.amount), 0) AS credited_in_ledger
          FROM topups t
          LEFT JOIN ledger_entries e
            ON e.tenant_id = t.tenant_id AND e.type = 'topup'
           AND e.reference_type = 'topup' AND e.reference_id = t.id
         GROUP BY t.tenant_id, t.id, t.status, t.credited_amount
        HAVING (t.status = 'succeeded' AND (COUNT(e.id) <> 1 OR SUM(e.amount) <> t.credited_amount))
            OR (t.status <> 'succeeded' AND COUNT(e.id) <> 0)
        """,
    ),
    Check(
        "bonus_credited_once",
        "each top-up's bonus is one row of exactly the recorded bonus, and only for a succeeded top-up",
        """
        SELECT t.tenant_id, t.id AS topup_id, t.bonus_amount, COUNT(e.id) AS bonus_rows,
               COALESCE(SUM(e.amount), 0) AS bonus_in_ledger
          FROM topups t
          LEFT JOIN ledger_entries e
            ON e.tenant_id = t.tenant_id AND e.type = 'bonus'
           AND e.reference_type = 'topup' AND e.reference_id = t.id
         GROUP BY t.tenant_id, t.id, t.bonus_amount
        HAVING COUNT(e.id) <> (CASE WHEN t.bonus_amount IS NULL THEN 0 ELSE 1 END)
            OR COALESCE(SUM(e.amount), 0) <> COALESCE(t.bonus_amount, 0)
        """,
    ),
    Check(
        "bonus_follows_refunds",
        "each refunded top-up has given back exactly its refunded share of the bonus",
        """
        SELECT t.tenant_id, t.id AS topup_id, t.bonus_amount, t.credited_amount, t.refunded_amount,
               COALESCE(SUM(e.amount), 0) AS bonus_taken_back
          FROM topups t
          LEFT JOIN topup_refunds r ON r.tenant_id = t.tenant_id AND r.topup_id = t.id
          LEFT JOIN ledger_entries e
            ON e.tenant_id = t.tenant_id AND e.type = 'bonus' AND e.reference_id = r.id
           AND e.reference_type IN ('topup_refund', 'topup_refund_reversal')
         WHERE t.bonus_amount IS NOT NULL
         GROUP BY t.tenant_id, t.id, t.bonus_amount, t.credited_amount, t.refunded_amount
        HAVING COALESCE(SUM(e.amount), 0) <> -(t.bonus_amount * t.refunded_amount / t.credited_amount)
        """,
    ),
    Check(
        "refunds_debited_once",
        "each refund is debited once when accepted, and nets to zero if the provider later failed it",
        """
        SELECT r.tenant_id, r.id AS refund_id, r.status, r.debited, r.amount,
               COUNT(e.id) FILTER (WHERE e.reference_type = 'topup_refund') AS debit_rows,
               COALESCE(SUM(e.amount), 0) AS net_in_ledger
          FROM topup_refunds r
          LEFT JOIN ledger_entries e
            ON e.tenant_id = r.tenant_id AND e.type = 'topup_refund' AND e.reference_id = r.id
         GROUP BY r.tenant_id, r.id, r.status, r.debited, r.amount
        HAVING NOT (
               (r.status <> 'failed' AND r.debited
                    AND COUNT(e.id) FILTER (WHERE e.reference_type = 'topup_refund') = 1
                    AND COALESCE(SUM(e.amount), 0) = -r.amount)
            OR (r.status <> 'failed' AND NOT r.debited AND COUNT(e.id) = 0)
            OR (r.status = 'failed' AND COALESCE(SUM(e.amount), 0) = 0
                    AND COUNT(e.id) FILTER (WHERE e.reference_type = 'topup_refund') <= 1))
        """,
    ),
    Check(
        "provider_money_matches",
        "per provider, what the ledger moved against it equals what it confirmed minus what it refunded",
        """
        WITH confirmed AS (
            SELECT 'provider:' || provider AS account,
                   SUM(COALESCE(credited_amount, 0) - refunded_amount) AS net
              FROM topups GROUP BY provider
        ), moved AS (
            SELECT counter_account AS account, SUM(amount) AS net
              FROM ledger_entries WHERE counter_account LIKE 'provider:%' GROUP BY counter_account
        )
        SELECT COALESCE(c.account, m.account) AS account, COALESCE(c.net, 0) AS confirmed_net,
               COALESCE(m.net, 0) AS ledger_net
          FROM confirmed c FULL JOIN moved m USING (account)
         WHERE COALESCE(c.net, 0) <> COALESCE(m.net, 0)
        """,
    ),
    Check(
        "usage_charged_once",
        "each usage charge's ledger rows add up to exactly what the wallet paid of it",
        """
        SELECT c.tenant_id, c.id AS charge_id, c.charged, COALESCE(-SUM(e.amount), 0) AS paid_in_ledger
          FROM usage_charges c
          LEFT JOIN ledger_entries e
            ON e.tenant_id = c.tenant_id AND e.type = 'usage_charge'
           AND e.reference_type = 'usage_charge' AND e.reference_id = c.id::text
         GROUP BY c.tenant_id, c.id, c.charged
        HAVING COALESCE(-SUM(e.amount), 0) <> c.charged
        """,
    ),
    Check(
        "charge_refunds_credited_once",
        "each charge refund credits the wallet exactly its to_wallet part",
        """
        SELECT r.tenant_id, r.id AS refund_id, r.to_wallet, COALESCE(SUM(e.amount), 0) AS credited_in_ledger
          FROM charge_refunds r
          LEFT JOIN ledger_entries e
            ON e.tenant_id = r.tenant_id AND e.type = 'usage_refund'
           AND e.reference_type = 'charge_refund' AND e.reference_id = r.id
         GROUP BY r.tenant_id, r.id, r.to_wallet
        HAVING COALESCE(SUM(e.amount), 0) <> r.to_wallet
        """,
    ),
    Check(
        "owed_matches_charges",
        "each wallet's owed figure is what its usage charges and its closed periods' plan fees still owe",
        """
        SELECT w.tenant_id, w.owed, COALESCE(s.owed, 0) AS owed_by_charges,
               COALESCE(p.owed, 0) AS owed_by_fees
          FROM wallets w
          LEFT JOIN (SELECT tenant_id, SUM(owed) AS owed FROM usage_charges GROUP BY tenant_id) s USING (tenant_id)
          LEFT JOIN (SELECT tenant_id, SUM(owed) AS owed FROM plan_periods GROUP BY tenant_id) p USING (tenant_id)
         WHERE w.owed <> COALESCE(s.owed, 0) + COALESCE(p.owed, 0)
        """,
    ),
    Check(
        "plan_fee_once_per_period",
        "each closed period's plan_fee rows add up to exactly what the wallet paid of its fee (fee = paid + "
        "owed), every plan_fee row belongs to a closed period, and no two closed periods of a tenant overlap",
        """
        SELECT p.tenant_id, p.id AS period_id, p.period_start, p.fee, p.charged, p.owed,
               COALESCE(-SUM(e.amount), 0) AS paid_in_ledger, NULL AS problem
          FROM plan_periods p
          LEFT JOIN ledger_entries e
            ON e.tenant_id = p.tenant_id AND e.type = 'plan_fee'
           AND e.reference_type = 'plan_period' AND e.reference_id = p.id
         GROUP BY p.tenant_id, p.id, p.period_start, p.fee, p.charged, p.owed
        HAVING COALESCE(-SUM(e.amount), 0) <> p.charged OR p.fee <> p.charged + p.owed
        UNION ALL
        SELECT e.tenant_id, e.reference_id, NULL, NULL, NULL, NULL, -e.amount, 'plan_fee row without a period'
          FROM ledger_entries e
         WHERE e.type = 'plan_fee' AND NOT EXISTS (
               SELECT 1 FROM plan_periods p
                WHERE p.tenant_id = e.tenant_id AND e.reference_type = 'plan_period' AND p.id = e.reference_id)
        UNION ALL
        SELECT a.tenant_id, a.id, a.period_start, a.fee, a.charged, a.owed, NULL, 'overlaps period ' || b.id
          FROM plan_periods a JOIN plan_periods b
            ON b.tenant_id = a.tenant_id AND b.id <> a.id
           AND b.period_start < a.period_end AND a.period_start < b.period_end
        """,
    ),
    Check(
        "reserved_matches_holds",
        "each wallet's reserve is the sum of its active call holds and the holds of its open refunds",
        """
        SELECT w.tenant_id, w.reserved, COALESCE(s.held, 0) AS call_holds, COALESCE(f.held, 0) AS refund_holds
          FROM wallets w
          LEFT JOIN (SELECT tenant_id, SUM(amount) AS held FROM holds WHERE status = 'active'
                      GROUP BY tenant_id) s USING (tenant_id)
          LEFT JOIN (SELECT tenant_id, SUM(held) AS held FROM topup_refunds GROUP BY tenant_id) f
            USING (tenant_id)
         WHERE w.reserved <> COALESCE(s.held, 0) + COALESCE(f.held, 0)
        """,
    ),
    Check(
        "refund_holds_only_while_open",
        "a refund holds money only while it waits for the provider (pending or flagged, not debited, not forced)",
        """
        SELECT tenant_id, id AS refund_id, status, debited, forced, held FROM topup_refunds
         WHERE held > 0 AND (debited OR forced OR status NOT IN ('pending', 'flagged'))
        """,
    ),
    Check(
        "refunds_within_confirmed",
        "per top-up, what was refunded (and what is promised to open refunds) never exceeds what the "
        "provider confirmed, and the refunded figure is the sum of the debited refunds",
        """
        SELECT t.tenant_id, t.id AS topup_id, t.credited_amount, t.refunded_amount,
               COALESCE(SUM(r.amount) FILTER (WHERE r.debited AND r.status <> 'failed'), 0) AS debited_refunds,
               COALESCE(SUM(r.amount) FILTER (WHERE r.status <> 'failed'), 0) AS promised
          FROM topups t
          LEFT JOIN topup_refunds r ON r.tenant_id = t.tenant_id AND r.topup_id = t.id
         GROUP BY t.tenant_id, t.id, t.credited_amount, t.refunded_amount
        HAVING t.refunded_amount < 0
            OR t.refunded_amount > COALESCE(t.credited_amount, 0)
            OR COALESCE(SUM(r.amount) FILTER (WHERE r.status <> 'failed'), 0) > COALESCE(t.credited_amount, 0)
            OR t.refunded_amount
               <> COALESCE(SUM(r.amount) FILTER (WHERE r.debited AND r.status <> 'failed'), 0)
        """,
    ),
    Check(
        "provider_refund_maps_once",
        "each provider refund is exactly one walletsvc refund",
        """
        SELECT t.provider, r.provider_refund_id, COUNT(*) AS refunds
          FROM topup_refunds r JOIN topups t ON t.tenant_id = r.tenant_id AND t.id = r.topup_id
         WHERE r.provider_refund_id IS NOT NULL
         GROUP BY t.provider, r.provider_refund_id
        HAVING COUNT(*) > 1
        """,
    ),
    # --- documents (migration 0010): invoices, credit notes, statements against the ledger ---
    Check(
        "invoice_per_topup",
        "each top-up that succeeded since invoicing began has exactly one invoice, for the money the ledger "
        "credited; no other top-up has one",
        """
        SELECT t.tenant_id, t.id AS topup_id, t.status, COUNT(d.id) AS invoices,
               MIN(d.ledger_amount) AS invoiced, MAX(l.credited) AS credited_in_ledger
          FROM topups t
          LEFT JOIN documents d
            ON d.tenant_id = t.tenant_id AND d.kind = 'invoice' AND d.source_type = 'topup' AND d.source_id = t.id
          LEFT JOIN (SELECT tenant_id, reference_id, SUM(amount) AS credited FROM ledger_entries
                      WHERE type = 'topup' AND reference_type = 'topup' GROUP BY tenant_id, reference_id) l
            ON l.tenant_id = t.tenant_id AND l.reference_id = t.id
         GROUP BY t.tenant_id, t.id, t.status, t.succeeded_at
        HAVING (t.status = 'succeeded' AND t.succeeded_at >= (SELECT started_at FROM documents_epoch)
                    AND COUNT(d.id) <> 1)
            OR (COUNT(d.id) > 0 AND (t.status <> 'succeeded' OR COUNT(d.id) > 1
                    OR MIN(d.ledger_amount) <> COALESCE(MAX(l.credited), 0)))
        """,
    ),
    Check(
        "credit_note_per_refund",
        "each refund debited since invoicing began has exactly one credit note, for the money the ledger "
        "debited; no other refund has one",
        """
        SELECT r.tenant_id, r.id AS refund_id, r.debited, COUNT(d.id) AS credit_notes,
               MIN(d.ledger_amount) AS credited, MAX(l.debited) AS debited_in_ledger
          FROM topup_refunds r
          LEFT JOIN documents d
            ON d.tenant_id = r.tenant_id AND d.kind = 'credit_note' AND d.source_type = 'topup_refund'
           AND d.source_id = r.id
          LEFT JOIN (SELECT tenant_id, reference_id, -SUM(amount) AS debited, MIN(created_at) AS debited_at
                       FROM ledger_entries WHERE type = 'topup_refund' AND reference_type = 'topup_refund'
                      GROUP BY tenant_id, reference_id) l
            ON l.tenant_id = r.tenant_id AND l.reference_id = r.id
         GROUP BY r.tenant_id, r.id, r.debited
        HAVING (r.debited AND MIN(l.debited_at) >= (SELECT started_at FROM documents_epoch) AND COUNT(d.id) <> 1)
            OR (COUNT(d.id) > 0 AND (NOT r.debited OR COUNT(d.id) > 1
                    OR MIN(d.ledger_amount) <> COALESCE(MAX(l.debited), 0)))
        """,
    ),
    Check(
        "statements_match_ledger",
        "each statement's opening and closing balances are the sums of its wallet's ledger rows before the "
        "month and before its end, and its net change is their difference",
        """
        SELECT d.tenant_id, d.id AS document_id, d.number, (d.details->>'opening_balance')::bigint AS opening,
               (d.details->>'closing_balance')::bigint AS closing, d.ledger_amount,
               COALESCE(SUM(e.amount) FILTER (WHERE e.created_at < d.period_start), 0) AS opening_in_ledger,
               COALESCE(SUM(e.amount), 0) AS closing_in_ledger
          FROM documents d
          LEFT JOIN ledger_entries e ON e.tenant_id = d.tenant_id AND e.created_at < d.period_end
         WHERE d.kind = 'statement'
         GROUP BY d.tenant_id, d.id, d.number, d.details, d.ledger_amount
        HAVING (d.details->>'opening_balance')::bigint
                   <> COALESCE(SUM(e.amount) FILTER (WHERE e.created_at < d.period_start), 0)
            OR (d.details->>'closing_balance')::bigint <> COALESCE(SUM(e.amount), 0)
            OR d.ledger_amount <> COALESCE(SUM(e.amount) FILTER (WHERE e.created_at >= d.period_start), 0)
        """,
    ),
    Check(
        "documents_add_up",
        "each document's lines add up to its subtotal and its tax lines to its tax (total = subtotal + tax is "
        "a constraint); an invoice's amount paid is what the ledger credited",
        """
        SELECT d.tenant_id, d.id AS document_id, d.number, d.subtotal, d.tax_total,
               (SELECT COALESCE(SUM((x->>'amount')::bigint), 0) FROM jsonb_array_elements(d.lines) x) AS lines_sum,
               (SELECT COALESCE(SUM((x->>'amount')::bigint), 0) FROM jsonb_array_elements(d.taxes) x) AS taxes_sum
          FROM documents d
         WHERE d.subtotal <> (SELECT COALESCE(SUM((x->>'amount')::bigint), 0) FROM jsonb_array_elements(d.lines) x)
            OR d.tax_total <> (SELECT COALESCE(SUM((x->>'amount')::bigint), 0) FROM jsonb_array_elements(d.taxes) x)
            OR (d.kind = 'invoice' AND (d.details->>'amount_paid')::bigint <> d.ledger_amount)
            OR (d.kind <> 'statement' AND d.details->'tax_rule'->>'inclusive' = 'true' AND d.total <> d.ledger_amount)
        """,
    ),
    Check(
        "document_numbers_gap_free",
        "each numbering series runs 1..n with no gap and no number twice, and n is its counter",
        """
        SELECT c.series, c.year, c.last_seq, COUNT(d.seq) AS documents, COUNT(DISTINCT d.seq) AS numbers,
               MAX(d.seq) AS max_seq
          FROM document_counters c
          LEFT JOIN documents d ON d.series = c.series AND d.year = c.year
         GROUP BY c.series, c.year, c.last_seq
        HAVING COUNT(d.seq) <> c.last_seq OR COUNT(DISTINCT d.seq) <> c.last_seq
            OR COALESCE(MAX(d.seq), 0) <> c.last_seq
        """,
    ),
    Check(
        "reserved_within_bounds",
        "no wallet holds a negative reserve",
        "SELECT tenant_id, reserved FROM wallets WHERE reserved < 0",
    ),
)

MAX_REPORTED_ROWS = 50
LONG_RUN_ROWS = 100_000  # from this many ledger rows on, each check reports its time as it ends

# What the checks read (and so what is analysed before them).
VERIFIED_TABLES = (
    "wallets",
    "ledger_entries",
    "topups",
    "topup_refunds",
    "usage_charges",
    "charge_refunds",
    "holds",
    "plan_periods",
    "documents",
    "document_counters",
)

Progress = Callable[[str], None]


async def refresh_statistics(connection: AsyncConnection) -> str:
    """ANALYZE the tables the checks read, in a transaction of its own (committed; the connection must
    not have begun one). A sample of each table: about a second for a million ledger rows. Answers a
    line saying what was done; a read-only server (a standby) cannot analyse, and then the checks run
    on the statistics it has."""
    started = time.perf_counter()
    try:
        await connection.execute(text("ANALYZE " + ", ".join(VERIFIED_TABLES)))
        await connection.commit()
    except DBAPIError as exc:
        await connection.rollback()
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        return f"statistics not refreshed ({reason})"
    return f"statistics refreshed: {time.perf_counter() - started:.1f} s"


# For the checks' transaction: every check joins whole tables, where a nested loop is never the right
# plan and, on a misestimate, is a quadratic one.
PLANNER_SETTINGS = {"enable_nestloop": "off"}


def check_statement(check: Check) -> str:
    """The check as run: planned for its whole result (with the LIMIT inside, the planner optimises for
    the first rows), of which the first MAX_REPORTED_ROWS are read."""
    return f"WITH offending AS MATERIALIZED ({check.sql}) SELECT * FROM offending LIMIT {MAX_REPORTED_ROWS}"  # noqa: S608 - our own constant SQL


async def _set_planner(connection: AsyncConnection, settings: dict[str, str]) -> dict[str, str]:
    """Set these planner settings for the current transaction; answers what they were."""
    before = {}
    for name, value in settings.items():
        before[name] = (await connection.execute(text(f"SELECT current_setting('{name}')"))).scalar_one()
        await connection.execute(
            text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
        )
    return before


async def verify_ledger(
    connection: AsyncConnection,
    *,
    snapshot: bool = True,
    progress: Progress | None = None,
    long_run_rows: int = LONG_RUN_ROWS,
) -> tuple[list[CheckResult], dict[str, int]]:
    """Run every check; with `snapshot`, first refresh the statistics, then check in one REPEATABLE READ
    snapshot so that writes landing while it runs cannot fake a failure (the connection must not have
    begun a transaction yet). Without it, the checks run inside the caller's transaction as it stands.

    On long runs (`long_run_rows` ledger rows or more) `progress` is told of each step as it ends."""
    analysed = await refresh_statistics(connection) if snapshot else None
    if snapshot:
        await connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    planner_before = await _set_planner(connection, PLANNER_SETTINGS)
    row = (
        await connection.execute(
            text("SELECT (SELECT COUNT(*) FROM wallets), (SELECT COUNT(*) FROM ledger_entries)")
        )
    ).one()
    counts = {"wallets": int(row[0]), "ledger_entries": int(row[1])}
    report = progress if progress is not None and counts["ledger_entries"] >= long_run_rows else None
    if report is not None and analysed is not None:
        report(analysed)
    results = []
    try:
        for check in CHECKS:
            started = time.perf_counter()
            rows = (await connection.execute(text(check_statement(check)))).mappings().all()
            results.append(CheckResult(check, [dict(r) for r in rows]))
            if report is not None:
                report(f"check {check.name}: {time.perf_counter() - started:.1f} s")
    finally:
        if not snapshot:  # the caller's transaction goes on: give it back its planner settings
            await _set_planner(connection, planner_before)
    return results, counts
