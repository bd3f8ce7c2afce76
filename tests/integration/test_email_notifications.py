"""E-mails to billing contacts, sent to a real SMTP server (aiosmtpd) and read back: who gets what, both
parts, amounts for people, a deterministic Message-ID, once per row, retried when refused for now, not
retried when refused for good, AUTH, and nothing sent when SMTP is not configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from tests.fixtures.cli_processes import free_port
from tests.fixtures.documents import credited_topup, gst_config, pdf_text, use_config
from tests.fixtures.notifications import (
    SENDER,
    email_rows,
    emailed_event,
    send_email_jobs,
    smtp_config,
    tenant_with_contacts,
)
from tests.fixtures.smtp import self_signed_certificate, smtp_server
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.domain.events import EventType, money
from walletsvc.services import notifications
from walletsvc.services.documents import invoice_for_topup
from walletsvc.services.email_messages import message_id_for
from walletsvc.services.events import get_event
from walletsvc.services.notifications import MAX_ATTEMPTS, EmailRetry, EmailStatus, send_email


async def test_a_receipt_reaches_every_billing_contact_with_both_parts(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["billing@acme.example", "CFO@Acme.Example"])
    payload = {
        "topup_id": "top_1",
        "provider": "razorpay",
        "amount": money(1_50_000_00, "INR"),
        "bonus": money(5000, "INR"),
    }
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_SUCCEEDED, payload)
    rows = await email_rows(db, event_id)
    assert [r["recipient"] for r in rows] == ["billing@acme.example", "CFO@acme.example"]
    assert [r["status"] for r in rows] == ["queued", "queued"]
    assert len(await send_email_jobs(db, [r["id"] for r in rows])) == 2  # one job per e-mail

    with smtp_server() as sink:
        for row in rows:
            assert await send_email(db, row["id"], config=smtp_config(sink)) is EmailStatus.SENT
        received = sink.messages()

    assert [m.rcpt_tos for m in received] == [["billing@acme.example"], ["CFO@acme.example"]]
    first = received[0]
    assert first.mail_from == "billing@walletsvc.example"
    assert first.message["From"] == SENDER
    assert first.message["To"] == "billing@acme.example"
    assert first.message["Subject"] == "Receipt: Rs 1,50,000.00 added to the Acme Calls wallet"
    assert first.message["Message-ID"] == message_id_for(event_id, "billing@acme.example", SENDER)
    assert first.message["Message-ID"].endswith("@walletsvc.example>")
    assert "billing@acme.example" not in first.message["Message-ID"]  # the recipient is hashed
    assert first.message["Auto-Submitted"] == "auto-generated"
    assert first.message.get_content_type() == "multipart/alternative"
    plain, html = first.part("plain"), first.part("html")
    for part in (plain, html):
        assert "Rs 1,50,000.00" in part
        assert "Rs 50.00" in part
        assert "Razorpay" in part
        assert "top_1" in part
        assert event_id in part
        assert "Acme Calls" in part
    assert "<table>" in html
    assert "<" not in plain
    assert received[1].message["Message-ID"] != first.message["Message-ID"]

    after = await email_rows(db, event_id)
    assert [r["status"] for r in after] == ["sent", "sent"]
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in after)
    assert after[0]["message_id"] == first.message["Message-ID"]
    assert after[0]["subject"] == first.message["Subject"]


@pytest.mark.parametrize(
    ("currency", "country", "type", "payload", "subject", "amounts"),
    [
        (
            "JPY",
            "JPN",
            EventType.WALLET_LOW_BALANCE,
            {"available": money(500, "JPY"), "threshold": money(1000, "JPY")},
            "Low balance on Acme Calls: ¥500 available",
            ["¥500", "¥1,000"],
        ),
        (
            "KWD",
            "KWT",
            EventType.PLAN_FEE_OWED,
            {
                "plan_id": "pro",
                "fee": money(5000, "KWD"),
                "charged": money(3750, "KWD"),
                "owed": money(1250, "KWD"),
                "period_start": "2026-11-01",
                "period_end": "2026-12-01",
            },
            "Plan fee owed by Acme Calls: KD 1.250",
            ["KD 5.000", "KD 3.750", "KD 1.250", "2026-11-01 to 2026-12-01", "pro"],
        ),
        (
            "USD",
            "USA",
            EventType.TOPUP_FAILED,
            {"topup_id": "top_2", "amount": money(2500, "USD"), "reason": "card_declined"},
            "Payment failed: top-up of $25.00 for Acme Calls",
            ["$25.00", "card_declined"],
        ),
        (
            "EUR",
            "DEU",
            EventType.WALLET_LOW_BALANCE_RESOLVED,
            {"available": money(12_000_00, "EUR"), "threshold": money(500, "EUR")},
            "Balance restored on Acme Calls: €12,000.00 available",
            ["€12,000.00", "€5.00"],
        ),
    ],
)
async def test_each_emailed_event_says_its_amounts_in_the_tenants_currency(
    db: Database,
    currency: str,
    country: str,
    type: EventType,
    payload: dict[str, object],
    subject: str,
    amounts: list[str],
) -> None:
    tenant_id = await tenant_with_contacts(db, ["ops@acme.example"], currency=currency, country=country)
    event_id = await emailed_event(db, tenant_id, type, payload)
    [row] = await email_rows(db, event_id)
    with smtp_server() as sink:
        assert await send_email(db, row["id"], config=smtp_config(sink)) is EmailStatus.SENT
        [received] = sink.messages()
    assert received.message["Subject"] == subject
    for amount in amounts:
        assert amount in received.part("plain")
        assert amount in received.part("html")


async def test_a_job_run_twice_sends_once(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["once@acme.example"])
    event_id = await emailed_event(
        db,
        tenant_id,
        EventType.WALLET_LOW_BALANCE,
        {"available": money(100, "INR"), "threshold": money(1000, "INR")},
    )
    [row] = await email_rows(db, event_id)
    with smtp_server() as sink:
        config = smtp_config(sink)
        assert await send_email(db, row["id"], config=config) is EmailStatus.SENT
        assert await send_email(db, row["id"], config=config) is EmailStatus.SENT
        assert len(sink.messages()) == 1
        assert len(sink.rcpt_answers) == 1  # the second run never spoke to the server
    [after] = await email_rows(db, event_id)
    assert after["attempts"] == 1


async def test_a_dispatch_run_twice_adds_no_email(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["a@acme.example", "b@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    async with unit_of_work(db) as session:
        event = await get_event(session, event_id)
        assert event is not None
        assert await notifications.fan_out(session, event) == 0
    assert len(await email_rows(db, event_id)) == 2


async def test_only_the_emailed_types_and_tenants_with_contacts_make_emails(db: Database) -> None:
    with_contacts = await tenant_with_contacts(db, ["a@acme.example"])
    without = await tenant_with_contacts(db, [])
    adjustment = await emailed_event(
        db, with_contacts, EventType.ADJUSTMENT_CREATED, {"amount": money(1, "INR")}
    )
    receipt = await emailed_event(db, without, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    assert await email_rows(db, adjustment) == []
    assert await email_rows(db, receipt) == []


async def test_a_temporary_refusal_is_recorded_then_retried_and_delivered(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["later@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    with smtp_server() as sink:
        sink.refuse_next.append("451 4.3.0 Mailbox busy, try again later")
        config = smtp_config(sink)
        with pytest.raises(EmailRetry):
            await send_email(db, row["id"], config=config)
        [failed] = await email_rows(db, event_id)
        assert failed["status"] == "retrying"
        assert failed["attempts"] == 1
        assert failed["sent_at"] is None
        assert "451" in failed["last_error"]
        assert "try again later" in failed["last_error"]
        assert sink.messages() == []

        assert await send_email(db, row["id"], config=config) is EmailStatus.SENT
        [received] = sink.messages()
    [sent] = await email_rows(db, event_id)
    assert sent["status"] == "sent"
    assert sent["attempts"] == 2
    assert sent["sent_at"] is not None
    assert sent["last_error"] == failed["last_error"]  # the failure it took stays on record
    assert received.message["Message-ID"] == failed["message_id"] == sent["message_id"]


async def test_a_permanent_refusal_is_not_retried(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["gone@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_FAILED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    with smtp_server() as sink:
        sink.refuse_always["gone@acme.example"] = "550 5.1.1 No such user"
        config = smtp_config(sink)
        assert await send_email(db, row["id"], config=config) is EmailStatus.REFUSED
        assert await send_email(db, row["id"], config=config) is EmailStatus.REFUSED
        assert len(sink.rcpt_answers) == 1
    [refused] = await email_rows(db, event_id)
    assert refused["status"] == "refused"
    assert "550" in refused["last_error"]
    assert refused["sent_at"] is None


async def test_the_last_attempt_gives_up(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["busy@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_FAILED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    async with unit_of_work(db) as session:
        await session.execute(
            text("UPDATE email_notifications SET attempts = :n, status = 'retrying' WHERE id = :id"),
            {"n": MAX_ATTEMPTS - 1, "id": row["id"]},
        )
    with smtp_server() as sink:
        sink.refuse_next.append("421 4.7.0 Too many connections")
        assert await send_email(db, row["id"], config=smtp_config(sink)) is EmailStatus.FAILED
    [failed] = await email_rows(db, event_id)
    assert (failed["status"], failed["attempts"]) == ("failed", MAX_ATTEMPTS)


async def test_a_server_that_cannot_be_reached_is_retried(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["a@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_FAILED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    config = notifications.SmtpConfig(
        host="127.0.0.1",
        port=free_port(),  # nothing listens there
        sender=SENDER,
        username=None,
        password=None,
        starttls=False,
        tls=False,
        timeout=5.0,
    )
    with pytest.raises(EmailRetry):
        await send_email(db, row["id"], config=config)
    [failed] = await email_rows(db, event_id)
    assert failed["status"] == "retrying"
    assert failed["last_error"].startswith("SMTPConnectError")


# The test server has no certificate, so AUTH is allowed over plain SMTP (docs/email.md: STARTTLS).
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_auth_with_username_and_password(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["auth@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    password = "s3cret-smtp-Passw0rd"
    with smtp_server(username="walletsvc", password=password) as sink:
        wrong = smtp_config(sink, password="not-the-password-x")
        with pytest.raises(EmailRetry):
            await send_email(db, row["id"], config=wrong)
        [refused] = await email_rows(db, event_id)
        assert refused["last_error"].startswith("SMTPAuthenticationError: 535")
        assert "not-the-password-x" not in refused["last_error"]

        assert await send_email(db, row["id"], config=smtp_config(sink)) is EmailStatus.SENT
        *refused_logins, accepted = sink.logins  # aiosmtplib tries each mechanism the server offers
        assert refused_logins
        assert set(refused_logins) == {"walletsvc:refused"}
        assert accepted == "walletsvc:ok"
        [received] = sink.messages()
    assert received.rcpt_tos == ["auth@acme.example"]
    [sent] = await email_rows(db, event_id)
    assert password not in str(sent)


async def test_without_smtp_the_email_is_skipped(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["a@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    assert await send_email(db, row["id"], config=None) is EmailStatus.SKIPPED
    [skipped] = await email_rows(db, event_id)
    assert (skipped["status"], skipped["attempts"], skipped["sent_at"]) == ("skipped", 0, None)
    with smtp_server() as sink:  # configured later: a skipped e-mail stays skipped
        assert await send_email(db, row["id"], config=smtp_config(sink)) is EmailStatus.SKIPPED
        assert sink.messages() == []


async def test_data_is_escaped_and_a_missing_field_is_left_out(db: Database) -> None:
    name = 'Evil <script>alert("x")</script> & Co\r\nBcc: victim@example.com'
    tenant_id = await tenant_with_contacts(db, ["a@acme.example"], name=name)
    event_id = await emailed_event(
        db, tenant_id, EventType.TOPUP_FAILED, {"amount": "lots", "reason": "<b>declined</b>", "bonus": 3.5}
    )
    [row] = await email_rows(db, event_id)
    with smtp_server() as sink:
        assert await send_email(db, row["id"], config=smtp_config(sink)) is EmailStatus.SENT
        [received] = sink.messages()
    subject = received.message["Subject"]
    assert subject == 'Payment failed for Evil <script>alert("x")</script> & Co Bcc: victim@example.com'
    assert received.message["Bcc"] is None
    assert received.rcpt_tos == ["a@acme.example"]
    html = received.part("html")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "&lt;b&gt;declined&lt;/b&gt;" in html
    assert "Amount" not in received.part("plain")  # not money: left out
    assert "<b>declined</b>" in received.part("plain")


async def test_starttls_then_auth_with_a_verified_certificate(db: Database, tmp_path: Path) -> None:
    cert = self_signed_certificate(tmp_path)
    tenant_id = await tenant_with_contacts(db, ["tls@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    with smtp_server(username="walletsvc", password="tls-Passw0rd-x1", starttls_cert=cert) as sink:
        config = smtp_config(sink, starttls=True, ca_file=str(cert[0]))
        assert await send_email(db, row["id"], config=config) is EmailStatus.SENT
        [received] = sink.messages()
        assert sink.logins[-1] == "walletsvc:ok"
    assert received.tls
    assert received.rcpt_tos == ["tls@acme.example"]


async def test_a_certificate_that_does_not_verify_sends_nothing_and_no_password(
    db: Database, tmp_path: Path
) -> None:
    cert = self_signed_certificate(tmp_path)
    tenant_id = await tenant_with_contacts(db, ["tls@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    with smtp_server(username="walletsvc", password="tls-Passw0rd-x1", starttls_cert=cert) as sink:
        with pytest.raises(EmailRetry):  # the system's trust store does not know the test's CA
            await send_email(db, row["id"], config=smtp_config(sink, starttls=True))
        assert sink.logins == []
        assert sink.messages() == []
    [failed] = await email_rows(db, event_id)
    assert failed["status"] == "retrying"
    assert "CERTIFICATE_VERIFY_FAILED" in failed["last_error"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_starttls_required_but_not_offered_sends_no_password(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["tls@acme.example"])
    event_id = await emailed_event(db, tenant_id, EventType.TOPUP_SUCCEEDED, {"amount": money(50000, "INR")})
    [row] = await email_rows(db, event_id)
    with smtp_server(username="walletsvc", password="plain-Passw0rd-x1") as sink:
        with pytest.raises(EmailRetry):
            await send_email(db, row["id"], config=smtp_config(sink, starttls=True))
        assert sink.logins == []
        assert sink.messages() == []
    [failed] = await email_rows(db, event_id)
    assert "STARTTLS" in failed["last_error"]


async def test_a_receipt_carries_the_topups_invoice_as_a_pdf(db: Database) -> None:
    tenant_id = await tenant_with_contacts(db, ["billing@acme.example"])
    async with unit_of_work(db) as session:
        use_config(session, gst_config())
        topup = await credited_topup(session, tenant_id, 50_000)
        invoice = await invoice_for_topup(session, tenant_id, topup.id)
    assert invoice is not None
    async with db.engine.connect() as conn:
        event_id = await conn.scalar(
            text("SELECT id FROM events WHERE tenant_id = :t AND type = 'topup.succeeded'"), {"t": tenant_id}
        )
    async with unit_of_work(db) as session:
        event = await get_event(session, str(event_id))
        assert event is not None
        await notifications.fan_out(session, event)
    [row] = await email_rows(db, str(event_id))

    with smtp_server() as sink:
        assert await send_email(db, row["id"], config=smtp_config(sink)) is EmailStatus.SENT
        [received] = sink.messages()

    assert received.message.get_content_type() == "multipart/mixed"
    assert "Rs 500.00" in received.part("plain")  # the receipt itself is still there, both parts
    [attachment] = list(received.message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{invoice.number}.pdf"
    body = attachment.get_content()
    assert body.startswith(b"%PDF")
    assert invoice.number in pdf_text(body)
