"""PDFs of issued documents: read back with pypdf (numbers, names, ₹, totals), byte-identical when rendered
again, and a page rendered to an image by poppler's pdftoppm that is not blank."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.documents import credited_topup, gst_config, pdf_text, use_config
from tests.fixtures.ledger_entries import adjustment
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.documents.render import render_pdf
from walletsvc.domain.documents import Party, Period
from walletsvc.domain.tenants import Tenant
from walletsvc.services.billing_details import set_billing_details
from walletsvc.services.documents import invoice_for_topup, render_invoice_pdf
from walletsvc.services.statements import issue_statement

UNICODE_NAME = "Zoë Café Communications — श्री गणेश"


@pytest.fixture(autouse=True)
def _gst(db_session: AsyncSession) -> None:
    use_config(db_session, gst_config("R" + datetime.now(UTC).strftime("%H%M%S%f")[:9]))


async def _invoice_pdf(session: AsyncSession, tenant: Tenant, amount: int) -> tuple[str, bytes]:
    await set_billing_details(
        session,
        tenant.id,
        Party(
            legal_name=UNICODE_NAME,
            address_lines=("Plot 4, MIDC Bhosari",),
            city="Pune",
            state="MH",
            postal_code="411026",
            country="IND",
            tax_id="27AAPFU0939F1ZV",
        ),
        actor="user:owner",
    )
    topup = await credited_topup(session, tenant.id, amount)
    invoice = await invoice_for_topup(session, tenant.id, topup.id)
    assert invoice is not None
    return invoice.id, await render_invoice_pdf(session, tenant.id, invoice.id)


async def test_an_invoice_pdf_reads_back_with_its_number_names_and_totals(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    invoice_id, body = await _invoice_pdf(db_session, tenant, 50_000)
    assert body.startswith(b"%PDF-")
    found = pdf_text(body)
    number = (
        await db_session.execute(text("SELECT number FROM documents WHERE id = :i"), {"i": invoice_id})
    ).scalar_one()
    for expected in (
        "Invoice (advance payment)",
        number,
        "Walletsvc Telecom Private Limited",  # the seller
        "29AAPFU0939F1ZR",
        "Zoë Café Communications",  # the buyer, in Unicode
        "27AAPFU0939F1ZV",
        "Indian rupees (INR, ₹)",
        "Rs 423.73",  # net
        "IGST 18%",  # Pune (MH) buys from Bengaluru (KA): another state
        "Place of supply: MH (state code 27)",
        "Rs 76.27",
        "Rs 500.00",  # total and amount paid
        "pay_",  # the payment reference
    ):
        assert expected in found, f"{expected!r} not in the PDF's text:\n{found}"
    assert "गणेश" in found or "श्री" in found  # the Devanagari part comes from the fallback font


async def test_rendering_again_gives_the_same_bytes(db_session: AsyncSession, tenant: Tenant) -> None:
    invoice_id, first = await _invoice_pdf(db_session, tenant, 12_345)
    await asyncio.sleep(0)  # nothing about the time of the render may enter the file
    second = await render_invoice_pdf(db_session, tenant.id, invoice_id)
    assert first == second
    issued = (
        await db_session.execute(text("SELECT issued_at FROM documents WHERE id = :i"), {"i": invoice_id})
    ).scalar_one()
    assert f"D:{issued.astimezone(UTC):%Y%m%d%H%M%S}".encode() in first  # the creation date is the issue time


async def test_a_statement_pdf_shows_its_balances(db_session: AsyncSession, tenant: Tenant) -> None:
    await db_session.execute(
        text("UPDATE tenants SET created_at = '2020-01-01T00:00:00Z' WHERE id = :t"), {"t": tenant.id}
    )
    await WalletRepository(db_session).apply(adjustment(tenant.id, 900))
    period = Period.of(datetime.now(UTC)).previous().previous()
    statement = await issue_statement(db_session, tenant.id, period)
    found = pdf_text(render_pdf(statement))
    for expected in (
        "Statement of account",
        statement.number,
        "Opening balance",
        "Closing balance",
        "Rs 0.00",
    ):
        assert expected in found, f"{expected!r} not in the PDF's text:\n{found}"


async def test_a_rendered_page_is_an_invoice_not_a_blank_page(
    db_session: AsyncSession, tenant: Tenant, tmp_path: Path
) -> None:
    if shutil.which("pdftoppm") is None:  # .ci/run installs it; a failure, not a skip, says how
        pytest.fail("this test renders with poppler's pdftoppm: apt-get install -y poppler-utils")
    _, body = await _invoice_pdf(db_session, tenant, 50_000)
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(body)
    render = await asyncio.create_subprocess_exec(
        "pdftoppm",
        "-png",
        "-r",
        "60",
        "-f",
        "1",
        "-l",
        "1",
        str(pdf),
        str(tmp_path / "page"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await asyncio.wait_for(render.communicate(), timeout=60)
    assert render.returncode == 0, errors
    if keep := os.environ.get("WALLETSVC_KEEP_RENDER"):  # to look at the page: a path for the PNG
        shutil.copy(tmp_path / "page-1.png", keep)
    page = Image.open(tmp_path / "page-1.png").convert("L")
    width, height = page.size
    assert height > width  # A4, portrait
    histogram = page.histogram()  # pixels per grey level, 0 (black) to 255 (white)
    inked = sum(histogram[:200]) / sum(histogram)
    assert 0.005 < inked < 0.2, f"{inked:.2%} of the page is ink: blank, or a black box"

    def darkest(box: tuple[int, int, int, int]) -> int:
        counts = page.crop(box).histogram()
        return next(level for level, count in enumerate(counts) if count)

    # Ink in the top third (title, seller, buyer) and the middle (lines and totals), none in the margin.
    assert darkest((0, 0, width, height // 3)) < 100
    assert darkest((0, height // 3, width, 2 * height // 3)) < 100
    assert darkest((0, 0, width // 30, height)) > 200
    buffer = io.BytesIO()
    page.save(buffer, "PNG")
    assert buffer.tell() > 1000
