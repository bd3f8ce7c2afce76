"""A document as a PDF (fpdf2), from the stored document alone: the same document gives the same bytes.

What makes it deterministic: the creation date is the document's issue time, the fonts are the ones
shipped beside this file (never the machine's), and nothing else varies (fpdf2's file id is a hash of the
content). A document has a bounded number of lines (an invoice two, a statement about fifteen), so a
render takes a bounded time (a few hundred milliseconds, mostly parsing and subsetting the fonts).
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from walletsvc.domain.documents import Document, DocumentKind, Party
from walletsvc.domain.money_format import format_amount
from walletsvc.domain.tax import gst_state_code

FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVu"
FALLBACK = "NotoDevanagari"

TITLES = {
    DocumentKind.INVOICE: "Invoice (advance payment)",
    DocumentKind.CREDIT_NOTE: "Credit note",
    DocumentKind.STATEMENT: "Statement of account",
}
CURRENCY_NAMES = {
    "INR": "Indian rupees (INR, ₹)",
    "USD": "US dollars (USD, $)",
    "EUR": "euros (EUR, €)",
    "GBP": "pounds sterling (GBP, £)",
    "JPY": "Japanese yen (JPY, ¥)",
    "KWD": "Kuwaiti dinars (KWD)",
}
GREY = (90, 90, 90)
RULE = (180, 180, 180)
WIDTH = 180  # the printable width of an A4 page with 15 mm margins


class _Page(FPDF):
    def __init__(self, document: Document) -> None:
        super().__init__(format="A4", unit="mm")
        self.document = document

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(FONT, "", 7.5)
        self.set_text_color(*GREY)
        self.cell(
            0,
            4,
            f"{self.document.number} · issued electronically by {self.document.seller.legal_name or 'walletsvc'}"
            f" · page {self.page_no()}/{{nb}}",
            align="C",
        )


def _money(amount: int, currency: str) -> str:
    return format_amount(amount, currency)


def _party_lines(party: Party) -> list[str]:
    lines = [*party.address_lines]
    if party.locality():
        lines.append(party.locality())
    if party.tax_id:
        lines.append(f"Tax id: {party.tax_id}")
    if party.email:
        lines.append(party.email)
    return lines


def _new_pdf(document: Document) -> _Page:
    pdf = _Page(document)
    pdf.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.add_font(FALLBACK, "", str(FONTS / "NotoSansDevanagari-Regular.ttf"))
    pdf.set_fallback_fonts([FALLBACK], exact_match=False)
    pdf.set_creation_date(document.issued_at.astimezone(UTC))
    pdf.set_title(f"{TITLES[document.kind]} {document.number}")
    pdf.set_author(document.seller.legal_name or "walletsvc")
    pdf.set_creator("walletsvc")
    pdf.set_producer("walletsvc")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.alias_nb_pages()
    pdf.add_page()
    return pdf


def _header(pdf: _Page, document: Document) -> None:
    pdf.set_font(FONT, "B", 17)
    pdf.cell(WIDTH * 0.6, 9, TITLES[document.kind])
    pdf.set_font(FONT, "B", 11)
    pdf.cell(WIDTH * 0.4, 9, document.number, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 9)
    pdf.set_text_color(*GREY)
    facts = [f"Issue date: {document.issued_at.astimezone(UTC):%d %b %Y, %H:%M} UTC"]
    if document.kind is DocumentKind.STATEMENT and document.period_start and document.period_end:
        start, end = document.period_start.astimezone(UTC), document.period_end.astimezone(UTC)
        facts.append(f"Period: {start:%B %Y}, from {start:%d %b %Y} 00:00 to {end:%d %b %Y} 00:00 UTC")
    if document.kind is DocumentKind.CREDIT_NOTE:
        facts.append(
            f"Corrects invoice: {document.corrects_number}"
            if document.corrects_number
            else "Corrects: a top-up credited before invoices were issued"
        )
    if document.details.get("tax_rule", {}).get("indian_gst"):
        code = gst_state_code(document.buyer.state)
        place = f"{document.buyer.state} (state code {code})" if code else "not given (IGST applies)"
        facts.append(f"Place of supply: {place}")
    facts.append(f"Currency: {CURRENCY_NAMES.get(document.currency, document.currency)}")
    for fact in facts:
        pdf.cell(0, 5, fact, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.ln(4)


def _parties(pdf: _Page, document: Document) -> None:
    top = pdf.get_y()
    column = WIDTH / 2 - 4
    for index, (heading, party) in enumerate((("From", document.seller), ("Bill to", document.buyer))):
        x = pdf.l_margin + index * (WIDTH / 2 + 4)
        pdf.set_xy(x, top)
        pdf.set_font(FONT, "B", 8)
        pdf.set_text_color(*GREY)
        pdf.cell(column, 5, heading.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)
        pdf.set_font(FONT, "B", 10.5)
        pdf.multi_cell(
            column, 5.5, party.legal_name or "(seller name not configured)", new_x=XPos.LEFT, new_y=YPos.NEXT
        )
        pdf.set_font(FONT, "", 9)
        for line in _party_lines(party):
            pdf.multi_cell(column, 4.6, line, new_x=XPos.LEFT, new_y=YPos.NEXT)
        if index == 0:
            bottom = pdf.get_y()
    pdf.set_y(max(bottom, pdf.get_y()) + 6)


def _table(pdf: _Page, document: Document) -> None:
    pdf.set_draw_color(*RULE)
    pdf.set_font(FONT, "B", 9)
    pdf.cell(WIDTH - 45, 7, "Description", border="B")
    pdf.cell(45, 7, "Amount", border="B", align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for line in document.lines:
        pdf.set_font(FONT, "", 9.5)
        y = pdf.get_y() + 1.5
        pdf.set_xy(pdf.l_margin + WIDTH - 45, y)
        pdf.cell(45, 5.5, _money(line.amount, document.currency), align="R")
        pdf.set_xy(pdf.l_margin, y)
        pdf.multi_cell(WIDTH - 50, 5.5, line.description, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if line.note:
            pdf.set_font(FONT, "", 8)
            pdf.set_text_color(*GREY)
            pdf.multi_cell(WIDTH - 50, 4.2, line.note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_text_color(0, 0, 0)
        pdf.ln(1)
        pdf.cell(WIDTH, 0, "", border="T", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)


def _total_row(pdf: _Page, label: str, value: str, *, bold: bool = False) -> None:
    pdf.set_font(FONT, "B" if bold else "", 10 if bold else 9.5)
    pdf.set_x(pdf.l_margin + WIDTH - 110)
    pdf.cell(65, 6, label, align="R")
    pdf.cell(45, 6, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _totals(pdf: _Page, document: Document) -> None:
    c = document.currency
    if document.kind is DocumentKind.STATEMENT:
        d = document.details
        _total_row(pdf, "Opening balance", _money(int(d["opening_balance"]), c))
        _total_row(pdf, "Net change in the period", _money(document.total, c))
        _total_row(pdf, "Closing balance", _money(int(d["closing_balance"]), c), bold=True)
        _total_row(pdf, "Owed (unpaid usage and fees) at issue", _money(int(d.get("owed_at_issue", 0)), c))
        return
    _total_row(pdf, "Subtotal (net of tax)" if document.taxes else "Subtotal", _money(document.subtotal, c))
    for tax in document.taxes:
        _total_row(pdf, f"{tax['label']} {tax['rate_percent']}%", _money(int(tax["amount"]), c))
    _total_row(pdf, "Total", _money(document.total, c), bold=True)
    if document.kind is DocumentKind.INVOICE:
        _total_row(pdf, "Amount paid", _money(int(document.details["amount_paid"]), c))
        _total_row(pdf, "Balance due", _money(int(document.details["balance_due"]), c))
        _total_row(
            pdf, "Credited to the wallet (incl. bonus)", _money(int(document.details["wallet_credited"]), c)
        )
    else:
        _total_row(
            pdf, "Refunded to the original payment method", _money(document.ledger_amount, c), bold=False
        )


def _payment(pdf: _Page, document: Document) -> None:
    payment = document.details.get("payment")
    pdf.ln(4)
    pdf.set_font(FONT, "", 8.5)
    pdf.set_text_color(*GREY)
    notes: list[str] = []
    if payment:
        paid = f"Payment: {payment['provider']}, payment id {payment.get('payment_id') or '-'}, top-up {payment['topup_id']}"
        notes.append(paid)
        if payment.get("refund_id"):
            notes.append(
                f"Refund: {payment['refund_id']}, provider refund id {payment.get('provider_refund_id') or '-'}"
            )
    if document.kind is DocumentKind.INVOICE:
        notes.append(
            "An advance payment for services: the amount is held as prepaid credit in the wallet and used for "
            "calls, messages and plan fees as they are charged. Bonus credit is a promotion and not charged."
        )
    if document.kind is DocumentKind.STATEMENT:
        notes.append(
            "Built from the wallet's ledger: the opening balance plus the lines above equals the closing "
            "balance. Quota-covered usage costs nothing; owed usage shows in the month it is paid."
        )
    if not document.taxes and document.kind is not DocumentKind.STATEMENT:
        notes.append("No tax is charged on this document.")
    for note in notes:
        pdf.multi_cell(WIDTH, 4.4, note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)


def render_pdf(document: Document) -> bytes:
    pdf = _new_pdf(document)
    _header(pdf, document)
    _parties(pdf, document)
    _table(pdf, document)
    _totals(pdf, document)
    _payment(pdf, document)
    return bytes(pdf.output())
