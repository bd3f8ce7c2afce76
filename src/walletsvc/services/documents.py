"""Issuing documents: a top-up invoice in the transaction that credits the top-up, a credit note in the one
that debits its refund, a statement for a month once it has ended (services/statements.py). Each takes its
number from its series in that same transaction, so a rollback leaves no gap and none is issued twice.

Which seller and tax rule a document names comes from the settings (SELLER_*, TAX_*, INVOICE_NUMBER_*):
the app, the worker and `walletsvc reconcile` attach them to their sessions (`configure_documents` with
service_config.document_config); a session without them (a test's own) issues under the defaults.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from walletsvc.db.repositories.documents import BillingDetailsRepository, DocumentRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.documents import (
    Document,
    DocumentKind,
    Line,
    Party,
    counter_year,
    format_number,
    series_name,
)
from walletsvc.domain.events import EventType, money
from walletsvc.domain.money_format import format_amount
from walletsvc.domain.tax import TaxBreakdown, TaxRule, break_down
from walletsvc.domain.topups import Topup, TopupRefund
from walletsvc.services.events import record_event

CONFIG_KEY = "walletsvc.documents"


@dataclass(frozen=True, slots=True)
class DocumentConfig:
    """Who issues the documents, how they are numbered and taxed."""

    seller: Party = field(default_factory=lambda: Party(legal_name=""))
    tax: TaxRule = field(default_factory=TaxRule)
    number_prefix: str = "WS"
    yearly_reset: bool = True
    statement_delay_seconds: int = 900


def configure_documents(sessionmaker: async_sessionmaker[AsyncSession], config: DocumentConfig) -> None:
    """Every session this sessionmaker opens issues documents under this configuration."""
    sessionmaker.configure(info={CONFIG_KEY: config})


def config_of(session: AsyncSession) -> DocumentConfig:
    found = session.info.get(CONFIG_KEY)
    return found if isinstance(found, DocumentConfig) else DocumentConfig()


def new_document_id() -> str:
    return f"doc_{uuid.uuid4().hex}"


def rule_to_json(rule: TaxRule) -> dict[str, Any]:
    return {
        "rate_percent": str(rule.rate_percent),
        "inclusive": rule.inclusive,
        "label": rule.label,
        "indian_gst": rule.indian_gst,
        "seller_country": rule.seller_country,
        "seller_state": rule.seller_state,
    }


def rule_from_json(data: dict[str, Any]) -> TaxRule:
    return TaxRule(
        rate_percent=Decimal(data["rate_percent"]),
        inclusive=bool(data["inclusive"]),
        label=str(data["label"]),
        indian_gst=bool(data["indian_gst"]),
        seller_country=data.get("seller_country"),
        seller_state=data.get("seller_state"),
    )


def taxes_to_json(breakdown: TaxBreakdown) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"label": t.label, "rate_percent": str(t.rate_percent.normalize()), "amount": t.amount}
        for t in breakdown.taxes
    )


async def buyer_of(session: AsyncSession, tenant_id: str) -> Party:
    """The tenant's billing details as they are now, or its name and country when none are set."""
    details = await BillingDetailsRepository(session).get(tenant_id)
    if details is not None:
        return details.party
    tenant = await TenantRepository(session).get(tenant_id)
    return Party(legal_name=tenant.name, country=tenant.country)


async def issue(session: AsyncSession, draft: Document, *, prefix: str, yearly_reset: bool) -> Document:
    """Number the draft (its number and issue time are filled here), store it, record invoice.issued."""
    repo = DocumentRepository(session)
    series = series_name(prefix, draft.kind)
    # The year comes from the transaction's time; the issue time is read after the number is taken, while
    # the counter row is held, so that issue times run in the order of the numbers.
    year = counter_year(await repo.now(), yearly_reset=yearly_reset)
    seq = await repo.take_number(series, year)
    issued_at = await repo.clock()
    numbered = replace(draft, number=format_number(series, year, seq), issued_at=issued_at)
    stored = await repo.add(numbered, series=series, year=year, seq=seq)
    await record_event(
        session,
        EventType.INVOICE_ISSUED,
        stored.tenant_id,
        {
            "document_id": stored.id,
            "kind": stored.kind.value,
            "number": stored.number,
            "source_type": stored.source_type,
            "source_id": stored.source_id,
            "total": money(stored.total, stored.currency),
            "issued_at": stored.issued_at.isoformat(),
        },
    )
    return stored


def _payment_reference(topup: Topup) -> dict[str, Any]:
    return {
        "provider": topup.provider.value,
        "payment_id": topup.provider_payment_id,
        "checkout_id": topup.provider_checkout_id,
        "topup_id": topup.id,
    }


async def _issue_taxed(
    session: AsyncSession,
    config: DocumentConfig,
    taxed: TaxBreakdown,
    *,
    kind: DocumentKind,
    tenant_id: str,
    issued_at: datetime,
    currency: str,
    buyer: Party,
    ledger_amount: int,
    source_type: str,
    source_id: str,
    lines: list[Line],
    details: dict[str, Any],
    corrects: Document | None = None,
) -> Document:
    """Issue an invoice or a credit note from the configured seller: its totals and tax lines are
    `taxed`'s; `corrects` is the invoice a credit note corrects."""
    draft = Document(
        tenant_id=tenant_id,
        id=new_document_id(),
        kind=kind,
        number="",
        issued_at=issued_at,
        currency=currency,
        seller=config.seller,
        buyer=buyer,
        subtotal=taxed.net,
        tax_total=taxed.tax,
        total=taxed.gross,
        ledger_amount=ledger_amount,
        source_type=source_type,
        source_id=source_id,
        lines=tuple(lines),
        taxes=taxes_to_json(taxed),
        details=details,
        corrects_id=corrects.id if corrects else None,
        corrects_number=corrects.number if corrects else None,
    )
    return await issue(session, draft, prefix=config.number_prefix, yearly_reset=config.yearly_reset)


async def issue_topup_invoice(session: AsyncSession, topup: Topup) -> Document:
    """The prepayment invoice of a succeeded top-up (`topup` as marked succeeded), once: called in the
    transaction that credits it, which holds the top-up's row lock."""
    repo = DocumentRepository(session)
    found = await repo.find_by_source(topup.tenant_id, DocumentKind.INVOICE, "topup", topup.id)
    if found is not None:
        return found
    if topup.credited is None:
        raise ValueError("an invoice is issued for a credited top-up")
    config = config_of(session)
    buyer = await buyer_of(session, topup.tenant_id)
    paid = topup.credited
    taxed = break_down(paid.amount, config.tax, buyer_country=buyer.country, buyer_state=buyer.state)
    lines = [Line(description="Prepaid wallet credit (advance payment)", amount=taxed.net)]
    if topup.bonus is not None:
        lines.append(
            Line(
                description="Bonus credit (promotion, not charged)",
                amount=0,
                note=f"{format_amount(topup.bonus.amount, topup.bonus.currency)} added to the wallet free of charge",
            )
        )
    credited_total = paid.amount + (topup.bonus.amount if topup.bonus else 0)
    return await _issue_taxed(
        session,
        config,
        taxed,
        kind=DocumentKind.INVOICE,
        tenant_id=topup.tenant_id,
        issued_at=topup.updated_at,
        currency=paid.currency,
        buyer=buyer,
        ledger_amount=paid.amount,
        source_type="topup",
        source_id=topup.id,
        lines=lines,
        details={
            "payment": _payment_reference(topup),
            "amount_paid": paid.amount,
            "balance_due": taxed.gross - paid.amount,
            "bonus": topup.bonus.amount if topup.bonus else 0,
            "wallet_credited": credited_total,
            "tax_rule": rule_to_json(config.tax),
        },
    )


_BONUS_TAKEN_BACK = text(
    """
    SELECT COALESCE(SUM(amount), 0) FROM ledger_entries
     WHERE tenant_id = :tenant_id AND type = 'bonus' AND reference_type = 'topup_refund'
       AND reference_id = :refund_id
    """
)


async def issue_credit_note(session: AsyncSession, topup: Topup, refund: TopupRefund) -> Document:
    """The credit note of a refund, once, for the refunded amount, correcting the top-up's invoice (its
    buyer and tax rule are the invoice's, so the correction mirrors what it corrects). Called in the
    transaction that debits the refund."""
    repo = DocumentRepository(session)
    found = await repo.find_by_source(refund.tenant_id, DocumentKind.CREDIT_NOTE, "topup_refund", refund.id)
    if found is not None:
        return found
    config = config_of(session)
    invoice = await repo.find_by_source(refund.tenant_id, DocumentKind.INVOICE, "topup", topup.id)
    if invoice is not None:
        buyer, rule = invoice.buyer, rule_from_json(invoice.details["tax_rule"])
    else:  # a top-up credited before walletsvc issued invoices
        buyer, rule = await buyer_of(session, refund.tenant_id), config.tax
    amount = refund.amount
    taxed = break_down(amount.amount, rule, buyer_country=buyer.country, buyer_state=buyer.state)
    lines = [Line(description=f"Refund of prepaid wallet credit: {refund.reason}", amount=taxed.net)]
    bonus_back = -int(
        (
            await session.execute(_BONUS_TAKEN_BACK, {"tenant_id": refund.tenant_id, "refund_id": refund.id})
        ).scalar_one()
    )
    if bonus_back:
        lines.append(
            Line(
                description="Bonus credit withdrawn (not charged)",
                amount=0,
                note=f"{format_amount(bonus_back, amount.currency)} of bonus taken back from the wallet",
            )
        )
    return await _issue_taxed(
        session,
        config,
        taxed,
        kind=DocumentKind.CREDIT_NOTE,
        tenant_id=refund.tenant_id,
        issued_at=refund.updated_at,
        currency=amount.currency,
        buyer=buyer,
        ledger_amount=amount.amount,
        source_type="topup_refund",
        source_id=refund.id,
        lines=lines,
        details={
            "payment": {
                **_payment_reference(topup),
                "refund_id": refund.id,
                "provider_refund_id": refund.provider_refund_id,
            },
            "amount_refunded": amount.amount,
            "bonus_withdrawn": bonus_back,
            "corrects_number": invoice.number if invoice else None,
            "tax_rule": rule_to_json(rule),
        },
        corrects=invoice,
    )


async def invoice_for_topup(session: AsyncSession, tenant_id: str, topup_id: str) -> Document | None:
    """The invoice of a top-up (None before it succeeded): what a receipt e-mail attaches."""
    return await DocumentRepository(session).find_by_source(
        tenant_id, DocumentKind.INVOICE, "topup", topup_id
    )


async def render_invoice_pdf(session: AsyncSession, tenant_id: str, invoice_id: str) -> bytes:
    """A document of the tenant's as PDF bytes (NotFound for another tenant's): the same bytes every time."""
    return await document_pdf(await DocumentRepository(session).get(tenant_id, invoice_id))


async def document_pdf(document: Document) -> bytes:
    """The PDF of a document. fpdf2 (about 40 MB in memory) is loaded only once a PDF is made, and it is
    synchronous: rendered off the event loop (a few hundred milliseconds at most: bounded lines)."""
    from walletsvc.documents.render import render_pdf

    return await asyncio.to_thread(render_pdf, document)
