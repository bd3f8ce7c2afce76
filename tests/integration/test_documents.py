"""Documents in the database: issued once with the credit, numbered without gaps (a rollback gives the
number back), append-only, and checked by `ledger verify` (each check broken on purpose). Each test runs in
a rolled-back transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.documents import credited_topup, gst_config, use_config
from tests.fixtures.ledger_entries import adjustment
from walletsvc.db.repositories.documents import DocumentRepository
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.documents import DocumentKind, Party, Period
from walletsvc.domain.errors import NotFound, PeriodNotEnded
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import Tenant
from walletsvc.services.billing_details import set_billing_details
from walletsvc.services.documents import invoice_for_topup
from walletsvc.services.ledger_verify import verify_ledger
from walletsvc.services.statements import issue_statement, statement_figures
from walletsvc.services.topups import credit_topup


@pytest.fixture(autouse=True)
def own_series(db_session: AsyncSession) -> str:
    """A series of this test's own: numbers are global, so other tests' documents never interleave."""
    prefix = "T" + uuid.uuid4().hex[:8].upper()
    use_config(db_session, gst_config(prefix))
    return prefix


async def _broken(
    session: AsyncSession, tenant_id: str | None = None, series: str | None = None
) -> dict[str, Any]:
    conn = await session.connection()
    results, _ = await verify_ledger(conn, snapshot=False)
    return {
        r.check.name: rows
        for r in results
        if (
            rows := [
                row
                for row in r.offending
                if (tenant_id is not None and row.get("tenant_id") == tenant_id)
                or (series is not None and str(row.get("series", "")).startswith(series))
            ]
        )
    }


async def test_a_credited_topup_gets_one_invoice_with_its_payment_reference(
    db_session: AsyncSession, tenant: Tenant, own_series: str
) -> None:
    topup = await credited_topup(db_session, tenant.id, 50_000)
    invoice = await invoice_for_topup(db_session, tenant.id, topup.id)
    assert invoice is not None
    year = datetime.now(UTC).year
    assert invoice.number == f"{own_series}-{year}-000001"
    assert invoice.kind is DocumentKind.INVOICE
    assert invoice.ledger_amount == 50_000
    assert invoice.total == 50_000
    assert invoice.details["payment"] == {
        "provider": "razorpay",
        "payment_id": topup.provider_payment_id,
        "checkout_id": None,
        "topup_id": topup.id,
    }
    # The buyer has no billing details: the tenant's name and country; no state, so IGST (another state).
    assert invoice.buyer == Party(legal_name="Integration", country="IND")
    assert [(t["label"], t["amount"]) for t in invoice.taxes] == [("IGST", 7627)]
    assert invoice.subtotal == 42_373
    # A second confirmation (webhook after verify) changes nothing and issues nothing.
    again = await credit_topup(
        db_session, tenant.id, topup.id, confirmed=Money(50_000, "INR"), payment_id="pay_x", source="webhook"
    )
    assert again.status == topup.status
    count = await db_session.execute(
        text("SELECT COUNT(*) FROM documents WHERE tenant_id = :t"), {"t": tenant.id}
    )
    assert count.scalar_one() == 1
    events = await db_session.execute(
        text("SELECT payload FROM events WHERE tenant_id = :t AND type = 'invoice.issued'"), {"t": tenant.id}
    )
    payloads = list(events.scalars())
    assert [p["number"] for p in payloads] == [invoice.number]
    assert payloads[0]["total"] == {"amount": 50_000, "currency": "INR"}
    assert await _broken(db_session, tenant.id) == {}


async def test_a_buyer_in_the_sellers_state_pays_cgst_and_sgst(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    await set_billing_details(
        db_session,
        tenant.id,
        Party(
            legal_name="Acme Calls Pvt Ltd",
            city="Mysuru",
            state="ka",
            country="IND",
            tax_id="29ABCDE1234F1ZW",
        ),
        actor="user:owner",
    )
    topup = await credited_topup(db_session, tenant.id, 100_001)
    invoice = await invoice_for_topup(db_session, tenant.id, topup.id)
    assert invoice is not None
    assert invoice.buyer.tax_id == "29ABCDE1234F1ZW"
    assert invoice.buyer.state == "KA"
    # 100001 * 18 / 118 = 15254.39 -> 15254; halves 7627 + 7627.
    assert [(t["label"], t["rate_percent"], t["amount"]) for t in invoice.taxes] == [
        ("CGST", "9", 7627),
        ("SGST", "9", 7627),
    ]
    assert invoice.subtotal + invoice.tax_total == invoice.total == 100_001


async def test_billing_details_changed_later_leave_an_issued_invoice_as_it_was(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    await set_billing_details(
        db_session, tenant.id, Party(legal_name="Old Name Ltd", country="IND"), actor="u"
    )
    topup = await credited_topup(db_session, tenant.id, 20_000)
    await set_billing_details(
        db_session, tenant.id, Party(legal_name="New Name Ltd", country="IND"), actor="u"
    )
    invoice = await invoice_for_topup(db_session, tenant.id, topup.id)
    assert invoice is not None
    assert invoice.buyer.legal_name == "Old Name Ltd"


async def test_a_rolled_back_issue_gives_its_number_back(
    db_session: AsyncSession, tenant: Tenant, own_series: str
) -> None:
    first = await credited_topup(db_session, tenant.id, 10_000)

    class Abandoned(Exception):
        pass

    async def abandoned_credit() -> None:
        async with db_session.begin_nested():
            lost = await credited_topup(db_session, tenant.id, 20_000)
            assert (await invoice_for_topup(db_session, tenant.id, lost.id)) is not None
            raise Abandoned  # the credit, its invoice and the number it took are rolled back together

    with pytest.raises(Abandoned):
        await abandoned_credit()
    third = await credited_topup(db_session, tenant.id, 30_000)
    numbers = [
        (await invoice_for_topup(db_session, tenant.id, t.id)).number  # type: ignore[union-attr]
        for t in (first, third)
    ]
    year = datetime.now(UTC).year
    assert numbers == [f"{own_series}-{year}-000001", f"{own_series}-{year}-000002"]
    assert await _broken(db_session, series=own_series) == {}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE documents SET total = total + 1, subtotal = subtotal + 1 WHERE tenant_id = :t",
        "DELETE FROM documents WHERE tenant_id = :t",
        "TRUNCATE documents",
    ],
)
async def test_documents_are_append_only(db_session: AsyncSession, tenant: Tenant, statement: str) -> None:
    await credited_topup(db_session, tenant.id, 10_000)
    with pytest.raises(DBAPIError, match="documents is append-only"):
        async with db_session.begin_nested():
            await db_session.execute(text(statement), {"t": tenant.id})


async def test_a_succeeded_topup_without_an_invoice_is_found(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    await db_session.execute(
        text(
            "INSERT INTO topups (tenant_id, id, provider, status, amount, currency, checkout_kind, created_by,"
            " credited_amount, succeeded_at) VALUES (:t, 'tu_forged', 'razorpay', 'succeeded', 500, 'INR',"
            " 'razorpay_modal', 'x', 500, now())"
        ),
        {"t": tenant.id},
    )
    broken = await _broken(db_session, tenant.id)
    assert broken["invoice_per_topup"][0]["topup_id"] == "tu_forged"
    assert broken["invoice_per_topup"][0]["invoices"] == 0


async def test_an_invoice_for_another_amount_than_the_ledger_credited_is_found(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    topup = await credited_topup(db_session, tenant.id, 10_000)
    invoice = await invoice_for_topup(db_session, tenant.id, topup.id)
    assert invoice is not None
    # A second "invoice" for the same top-up cannot even be stored (one per source) ...
    with pytest.raises(DBAPIError):
        async with db_session.begin_nested():
            await db_session.execute(
                _COPY, {"t": tenant.id, "id": invoice.id, "source": topup.id, "amount": 1}
            )
    # ... and one whose amount is not what the ledger credited is reported.
    await db_session.execute(
        text(
            "INSERT INTO topups (tenant_id, id, provider, status, amount, currency, checkout_kind, created_by)"
            " VALUES (:t, 'tu_pending', 'razorpay', 'pending', 500, 'INR', 'razorpay_modal', 'x')"
        ),
        {"t": tenant.id},
    )
    await db_session.execute(
        _COPY, {"t": tenant.id, "id": invoice.id, "source": "tu_pending", "amount": 10_000}
    )
    broken = await _broken(db_session, tenant.id)
    assert [row["topup_id"] for row in broken["invoice_per_topup"]] == ["tu_pending"]


# A copy of a document under another id, number and source (the number taken from a counter of its own).
_COPY = text(
    """
    INSERT INTO documents (tenant_id, id, kind, series, year, seq, number, issued_at, currency, subtotal,
                           tax_total, total, ledger_amount, source_type, source_id, seller, buyer, lines, taxes,
                           details)
    SELECT tenant_id, 'doc_copy', kind, 'FORGED-' || :t, 0, 1, 'FORGED-' || :t, issued_at, currency, subtotal,
           tax_total, total, :amount, source_type, :source, seller, buyer, lines, taxes, details
      FROM documents WHERE tenant_id = :t AND id = :id
    """
)


async def test_a_debited_refund_without_a_credit_note_is_found(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    topup = await credited_topup(db_session, tenant.id, 10_000)
    await db_session.execute(
        text(
            "INSERT INTO topup_refunds (tenant_id, id, topup_id, amount, currency, status, reason, debited,"
            " created_by) VALUES (:t, 'rf_forged', :topup, 400, 'INR', 'succeeded', 'x', true, 'x')"
        ),
        {"t": tenant.id, "topup": topup.id},
    )
    wallet = await WalletRepository(db_session).get(tenant.id)
    await db_session.execute(
        text(
            "INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,"
            " counter_account, reference_type, reference_id, description, actor)"
            " VALUES (:t, 2, 'topup_refund', -400, 'INR', :before, :after, 'provider:razorpay', 'topup_refund',"
            " 'rf_forged', 'forged', 'x')"
        ),
        {"t": tenant.id, "before": wallet.balance, "after": wallet.balance - 400},
    )
    broken = await _broken(db_session, tenant.id)
    assert broken["credit_note_per_refund"][0]["refund_id"] == "rf_forged"


async def test_a_document_whose_lines_do_not_add_up_is_found(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    topup = await credited_topup(db_session, tenant.id, 10_000)
    invoice = await invoice_for_topup(db_session, tenant.id, topup.id)
    assert invoice is not None
    await db_session.execute(
        text(
            "INSERT INTO topups (tenant_id, id, provider, status, amount, currency, checkout_kind, created_by,"
            " credited_amount, succeeded_at) VALUES (:t, 'tu_other', 'razorpay', 'failed', 500, 'INR',"
            " 'razorpay_modal', 'x', NULL, NULL)"
        ),
        {"t": tenant.id},
    )
    await db_session.execute(
        text(
            "INSERT INTO documents (tenant_id, id, kind, series, year, seq, number, issued_at, currency,"
            " subtotal, tax_total, total, ledger_amount, source_type, source_id, seller, buyer, lines, taxes,"
            " details) SELECT tenant_id, 'doc_sum', 'credit_note', 'SUM-' || :t, 0, 1, 'SUM-' || :t, issued_at,"
            " currency, subtotal + 1, tax_total - 1, total, ledger_amount, 'manual', 'x', seller, buyer, lines,"
            " taxes, details FROM documents WHERE tenant_id = :t AND id = :id"
        ),
        {"t": tenant.id, "id": invoice.id},
    )
    broken = await _broken(db_session, tenant.id)
    assert [row["document_id"] for row in broken["documents_add_up"]] == ["doc_sum"]


async def test_a_gap_in_a_series_is_found(db_session: AsyncSession, tenant: Tenant, own_series: str) -> None:
    await credited_topup(db_session, tenant.id, 10_000)
    await db_session.execute(
        text("UPDATE document_counters SET last_seq = last_seq + 1 WHERE series = :s"), {"s": own_series}
    )
    broken = await _broken(db_session, series=own_series)
    assert broken["document_numbers_gap_free"][0]["last_seq"] == 2
    assert broken["document_numbers_gap_free"][0]["documents"] == 1


async def _backdate(session: AsyncSession, tenant_id: str) -> None:
    await session.execute(
        text("UPDATE tenants SET created_at = '2020-01-01T00:00:00Z' WHERE id = :t"), {"t": tenant_id}
    )


async def test_an_ended_month_gets_one_statement_that_matches_the_ledger(
    db_session: AsyncSession, tenant: Tenant, own_series: str
) -> None:
    await _backdate(db_session, tenant.id)
    await WalletRepository(db_session).apply(adjustment(tenant.id, 700))
    period = Period.of(datetime.now(UTC)).previous().previous()  # ended, whatever the statement delay
    statement = await issue_statement(db_session, tenant.id, period)
    assert statement.kind is DocumentKind.STATEMENT
    assert statement.number.startswith(f"{own_series}-ST-")
    # Everything this test wrote is dated now, after the month: the month saw nothing.
    assert statement.details["opening_balance"] == statement.details["closing_balance"] == 0
    assert statement.lines == ()
    assert statement.total == 0
    assert (await issue_statement(db_session, tenant.id, period)).id == statement.id
    assert await _broken(db_session, tenant.id) == {}
    # A forged statement whose figures are not the ledger's is reported.
    await db_session.execute(
        text(
            "INSERT INTO documents (tenant_id, id, kind, series, year, seq, number, issued_at, currency,"
            " subtotal, tax_total, total, ledger_amount, source_type, source_id, period_start, period_end,"
            " seller, buyer, lines, taxes, details) SELECT tenant_id, 'doc_st', kind, 'ST-' || :t, 0, 1,"
            " 'ST-' || :t, issued_at, currency, 0, 0, 0, 0, source_type, 'forged', now() - interval '1 day',"
            " now() + interval '1 day', seller, buyer, lines, taxes, details FROM documents"
            " WHERE tenant_id = :t AND id = :id"
        ),
        {"t": tenant.id, "id": statement.id},
    )
    broken = await _broken(db_session, tenant.id)
    assert [row["document_id"] for row in broken["statements_match_ledger"]] == ["doc_st"]
    assert broken["statements_match_ledger"][0]["closing_in_ledger"] == 700


async def test_a_month_not_ended_or_before_the_tenant_has_no_statement(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    with pytest.raises(PeriodNotEnded):
        await issue_statement(db_session, tenant.id, Period.of(datetime.now(UTC)))
    with pytest.raises(NotFound):
        await issue_statement(db_session, tenant.id, Period.of(datetime.now(UTC)).previous().previous())


async def test_statement_figures_add_up_from_opening_to_closing(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    wallets = WalletRepository(db_session)
    for amount in (10_000, -2_500, 1, -1, 333):
        await wallets.apply(adjustment(tenant.id, amount))
    await credited_topup(db_session, tenant.id, 50_000)
    moment = await DocumentRepository(db_session).now()  # every row here is dated at the transaction's start
    figures = await statement_figures(db_session, tenant.id, moment, datetime(9999, 1, 1, tzinfo=UTC))
    assert figures.opening == 0
    assert figures.closing == (await wallets.get(tenant.id)).balance  # 57_833, plus any bonus rule on
    assert figures.opening + sum(line.amount for line in figures.lines) == figures.closing
    by_label = {line.description: line.amount for line in figures.lines}
    assert by_label["Adjustments (credits)"] == 10_334
    assert by_label["Adjustments (debits)"] == -2_501
    assert by_label["Top-ups"] == 50_000
    before = await statement_figures(
        db_session, tenant.id, datetime(9999, 1, 1, tzinfo=UTC), datetime(9999, 2, 1, tzinfo=UTC)
    )
    assert before.opening == before.closing == figures.closing
    assert before.lines == ()
