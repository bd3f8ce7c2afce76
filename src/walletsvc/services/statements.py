"""Monthly statements: a calendar month (UTC) of a wallet's ledger, issued once the month has ended.

A statement is built from the ledger alone, so it reconciles with it by construction: the opening balance
is the sum of the wallet's ledger rows before the month, the closing balance the sum of those before its
end, and the lines (top-ups, bonuses, refunds, plan fees, usage by kind, charge refunds, adjustments) are
the month's rows grouped, which add up to closing - opening exactly. A row belongs to the month its
`created_at` falls in. Usage quantities (calls, minutes, messages, pages, files) count the usage charges
recorded in the month; their money is what the ledger took for them in the month (quota-covered usage
costs nothing; owed usage paid later shows in the month it is paid).

The worker issues last month's statement for every tenant a little after the month ends
(STATEMENT_DELAY_SECONDS: a transaction that began before midnight has committed by then); a tenant can
also ask for any ended month, which issues it then. Issued statements are stored and never change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.documents import DocumentRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.documents import Document, DocumentKind, Line, Period
from walletsvc.domain.errors import NotFound, PeriodNotEnded
from walletsvc.services.documents import buyer_of, config_of, issue, new_document_id

log = logging.getLogger(__name__)

ISSUE_STATEMENTS_JOB = "issue_statements"

_TOTALS = text(
    """
    SELECT COALESCE(SUM(amount) FILTER (WHERE created_at < :start), 0) AS opening,
           COALESCE(SUM(amount), 0) AS closing,
           COUNT(*) FILTER (WHERE created_at >= :start) AS rows
      FROM ledger_entries
     WHERE tenant_id = :tenant_id AND created_at < :end
    """
)
# The month's rows grouped: by type and direction, usage charges by their kind.
_GROUPS = text(
    """
    SELECT e.type, COALESCE(c.kind, '') AS kind, e.amount > 0 AS credit,
           SUM(e.amount) AS amount, COUNT(*) AS rows
      FROM ledger_entries e
      LEFT JOIN usage_charges c
        ON e.type = 'usage_charge' AND e.reference_type = 'usage_charge'
       AND c.tenant_id = e.tenant_id AND c.id::text = e.reference_id
     WHERE e.tenant_id = :tenant_id AND e.created_at >= :start AND e.created_at < :end
     GROUP BY 1, 2, 3
    """
)
_USAGE = text(
    """
    SELECT kind, COUNT(*) AS records, SUM(quantity) AS quantity,
           COALESCE(SUM(duration_seconds), 0) AS seconds, SUM(billable_seconds) AS billable_seconds,
           SUM(quota_seconds) AS quota_seconds
      FROM usage_charges
     WHERE tenant_id = :tenant_id AND created_at >= :start AND created_at < :end
     GROUP BY kind
    """
)
_OWED = text("SELECT currency, owed FROM wallets WHERE tenant_id = :tenant_id")
# Tenants opened before the month ended that have no statement for it yet.
_DUE = text(
    """
    SELECT t.id FROM tenants t
     WHERE t.created_at < :end
       AND NOT EXISTS (SELECT 1 FROM documents d
                        WHERE d.tenant_id = t.id AND d.kind = 'statement' AND d.source_type = 'period'
                          AND d.source_id = :period)
     ORDER BY t.id
    """
)

USAGE_LABELS = {
    "call": "Calls",
    "sms": "SMS",
    "email": "E-mail",
    "fax": "Fax",
    "file_transfer": "File transfers",
}
# The order a statement lists its lines in, and what each is called.
_SECTIONS: tuple[tuple[str, str, bool | None, str], ...] = (
    ("topup", "", None, "Top-ups"),
    ("bonus", "", True, "Bonus credit"),
    ("bonus", "", False, "Bonus credit withdrawn"),
    ("topup_refund", "", None, "Top-up refunds"),
    ("plan_fee", "", None, "Plan fees"),
    *(("usage_charge", kind, None, f"Usage: {label}") for kind, label in USAGE_LABELS.items()),
    ("usage_refund", "", None, "Charge refunds"),
    ("adjustment", "", True, "Adjustments (credits)"),
    ("adjustment", "", False, "Adjustments (debits)"),
)


@dataclass(frozen=True, slots=True)
class StatementFigures:
    currency: str
    opening: int
    closing: int
    lines: tuple[Line, ...]
    usage: dict[str, dict[str, int]]
    owed: int

    @property
    def net_change(self) -> int:
        return self.closing - self.opening


def _usage_note(kind: str, usage: dict[str, int]) -> str:
    if kind == "call":
        seconds, billable, quota = usage["seconds"], usage["billable_seconds"], usage["quota_seconds"]
        return (
            f"{usage['records']} calls, {seconds // 60} min {seconds % 60:02d} s talked,"
            f" {billable // 60} min {billable % 60:02d} s billable ({quota // 60} min from the plan's quota)"
        )
    unit = {"fax": "pages", "file_transfer": "files", "sms": "messages", "email": "e-mails"}.get(
        kind, "units"
    )
    return f"{usage['quantity']} {unit}"


async def statement_figures(
    session: AsyncSession, tenant_id: str, start: datetime, end: datetime
) -> StatementFigures:
    """The ledger's figures for [start, end): opening, closing and the lines between, which add up."""
    params = {"tenant_id": tenant_id, "start": start, "end": end}
    totals = (await session.execute(_TOTALS, params)).one()
    groups = {
        (r.type, r.kind, r.credit): (int(r.amount), int(r.rows))
        for r in await session.execute(_GROUPS, params)
    }
    usage = {
        r.kind: {
            "records": int(r.records),
            "quantity": int(r.quantity),
            "seconds": int(r.seconds),
            "billable_seconds": int(r.billable_seconds),
            "quota_seconds": int(r.quota_seconds),
        }
        for r in await session.execute(_USAGE, params)
    }
    wallet = (await session.execute(_OWED, {"tenant_id": tenant_id})).one_or_none()
    if wallet is None:
        raise NotFound("tenant", tenant_id)
    lines: list[Line] = []
    taken: set[tuple[str, str, bool]] = set()
    for entry_type, kind, credit, label in _SECTIONS:
        keys = [
            k for k in groups if k[0] == entry_type and k[1] == kind and (credit is None or k[2] == credit)
        ]
        taken.update(keys)
        amount = sum(groups[k][0] for k in keys)
        rows = sum(groups[k][1] for k in keys)
        note = _usage_note(kind, usage[kind]) if entry_type == "usage_charge" and kind in usage else None
        if rows or note:
            lines.append(
                Line(
                    description=label,
                    amount=amount,
                    note=note or f"{rows} ledger row{'' if rows == 1 else 's'}",
                )
            )
    # A type added after this was written still lands on the statement, so the lines always add up.
    for key in sorted(set(groups) - taken):
        lines.append(Line(description=f"Other: {key[0]} {key[1]}".strip(), amount=groups[key][0], note=None))
    return StatementFigures(
        currency=str(wallet.currency),
        opening=int(totals.opening),
        closing=int(totals.closing),
        lines=tuple(lines),
        usage=usage,
        owed=int(wallet.owed),
    )


def statement_ready_at(period: Period, delay_seconds: int) -> datetime:
    return period.end + timedelta(seconds=delay_seconds)


async def issue_statement(session: AsyncSession, tenant_id: str, period: Period) -> Document:
    """The tenant's statement for `period`: the one issued before, or issued now if the month has ended
    (PeriodNotEnded otherwise). Concurrent callers queue on a lock; the second finds the first's."""
    repo = DocumentRepository(session)
    found = await repo.find_by_source(tenant_id, DocumentKind.STATEMENT, "period", str(period))
    if found is not None:
        return found
    config = config_of(session)
    ready_at = statement_ready_at(period, config.statement_delay_seconds)
    if await repo.now() < ready_at:
        raise PeriodNotEnded(f"the statement for {period} can be issued from {ready_at.isoformat()} on")
    tenant = await TenantRepository(session).get(tenant_id)
    if tenant.created_at >= period.end:
        raise NotFound("statement", f"{tenant_id}/{period}")
    await repo.lock_source(tenant_id, DocumentKind.STATEMENT, str(period))
    found = await repo.find_by_source(tenant_id, DocumentKind.STATEMENT, "period", str(period))
    if found is not None:
        return found
    figures = await statement_figures(session, tenant_id, period.start, period.end)
    draft = Document(
        tenant_id=tenant_id,
        id=new_document_id(),
        kind=DocumentKind.STATEMENT,
        number="",
        issued_at=period.end,
        currency=figures.currency,
        seller=config.seller,
        buyer=await buyer_of(session, tenant_id),
        subtotal=figures.net_change,
        tax_total=0,
        total=figures.net_change,
        ledger_amount=figures.net_change,
        source_type="period",
        source_id=str(period),
        lines=figures.lines,
        taxes=(),
        details=statement_details(period, figures),
        period_start=period.start,
        period_end=period.end,
    )
    return await issue(session, draft, prefix=config.number_prefix, yearly_reset=config.yearly_reset)


def statement_details(period: Period, figures: StatementFigures) -> dict[str, Any]:
    return {
        "period": str(period),
        "opening_balance": figures.opening,
        "closing_balance": figures.closing,
        "owed_at_issue": figures.owed,
        "usage": figures.usage,
    }


@dataclass(frozen=True, slots=True)
class StatementRun:
    period: str
    issued: int
    failed: int


async def issue_due_statements(db: Database, *, now: datetime) -> StatementRun:
    """The worker's schedule: last month's statement for every tenant that has none yet, one transaction
    each (one tenant's failure does not hold back the others; the next run tries it again)."""
    period = Period.of(now).previous()
    async with unit_of_work(db) as session:
        if await DocumentRepository(session).now() < statement_ready_at(
            period, config_of(session).statement_delay_seconds
        ):
            return StatementRun(str(period), 0, 0)
        due = [
            str(r)
            for r in (await session.execute(_DUE, {"end": period.end, "period": str(period)})).scalars()
        ]
    issued = failed = 0
    for tenant_id in due:
        try:
            async with unit_of_work(db) as session:
                await issue_statement(session, tenant_id, period)
            issued += 1
        except Exception:
            failed += 1
            log.exception("statement not issued", extra={"tenant_id": tenant_id, "period": str(period)})
    return StatementRun(str(period), issued, failed)
