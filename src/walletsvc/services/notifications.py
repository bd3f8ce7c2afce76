"""E-mail notifications to a tenant's billing contacts, sent by the worker over SMTP (docs/email.md).

`fan_out` (called by the event's dispatch, in its transaction) writes one `email_notifications` row per
(event, billing contact) for the e-mailed event types, unique, so a dispatch run twice adds nothing, and
queues one `send_email` job per row. The job sends the row's message and records what happened: `sent`
(with its time) only once the server accepted it; a temporary failure is recorded (`retrying`, with the
error) and retried with backoff; a permanent refusal of the recipient or the message (a 5xx) is `refused`
and not retried; `failed` after MAX_ATTEMPTS; `skipped` when no SMTP server is configured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from enum import StrEnum
from typing import Protocol

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.billing_contacts import BillingContactRepository, EmailNotificationRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.billing_contacts import EmailNotification
from walletsvc.domain.errors import NotFound
from walletsvc.domain.events import EventType
from walletsvc.services.documents import invoice_for_topup, render_invoice_pdf
from walletsvc.services.email_messages import (
    EMAILED_TYPES,
    SMTP_POLICY,
    build_message,
    message_id_for,
    render,
)
from walletsvc.services.events import Event, get_event
from walletsvc.services.queue import enqueue

log = logging.getLogger("walletsvc.notifications")

SEND_EMAIL = "send_email"
# Sends of one e-mail before it is given up (`failed`); with the worker's backoff (1 s doubling, at most
# 30 min) the last is about 2.5 hours after the first.
MAX_ATTEMPTS = 12
_MAX_ERROR = 500


class EmailStatus(StrEnum):
    QUEUED = "queued"
    RETRYING = "retrying"
    SENT = "sent"
    REFUSED = "refused"
    FAILED = "failed"
    SKIPPED = "skipped"


FINAL = frozenset({EmailStatus.SENT, EmailStatus.REFUSED, EmailStatus.FAILED, EmailStatus.SKIPPED})


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how the worker sends (SMTP_*), built once per worker (service_config.smtp_config)."""

    host: str
    port: int
    sender: str
    username: str | None
    password: str | None = field(repr=False)
    starttls: bool
    tls: bool
    timeout: float
    ca_file: str | None = None  # trust these CA certificates (PEM) instead of the system's


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """One SMTP connection per message: e-mails are few (a handful per event), and a fresh connection
    never carries a previous failure's state."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    async def send(self, message: EmailMessage) -> None:
        c = self.config
        # Flattened here, not by aiosmtplib (whose policy folds headers at 78 characters: a folded
        # Message-ID reads back with a leading space).
        await aiosmtplib.send(
            message.as_bytes(policy=SMTP_POLICY),
            sender=parseaddr(str(message["From"]))[1],
            recipients=[str(message["To"])],
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            use_tls=c.tls,
            start_tls=c.starttls,  # True: STARTTLS is required; a server without it is an error
            timeout=c.timeout,
            cert_bundle=c.ca_file,  # the server's certificate is always verified
        )


class EmailRetry(Exception):
    """A temporary failure, recorded on the row: raised after the commit so that the job runs again."""


async def fan_out(session: AsyncSession, event: Event) -> int:
    """Queue the e-mails this event calls for, in the caller's transaction; answer how many."""
    if event.type not in EMAILED_TYPES:
        return 0
    contacts = await BillingContactRepository(session).get(event.tenant_id)
    if not contacts.emails:
        return 0
    ids = await EmailNotificationRepository(session).add(
        tenant_id=event.tenant_id, event_id=event.id, event_type=event.type, recipients=list(contacts.emails)
    )
    for email_id in ids:
        await enqueue(session, SEND_EMAIL, {"email_id": email_id})
    return len(ids)


def _permanent(exc: Exception) -> bool:
    """A 5xx refusal of the recipient or of the message itself: sending it again would be refused again.
    (A refused sender or AUTH is a setup problem an operator fixes: those are retried.)"""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError)):
        return exc.code >= 500
    return False


def describe_error(exc: BaseException, config: SmtpConfig) -> str:
    """The failure for the row and the log: its kind and the server's answer, never the password."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"
    else:
        text = str(exc) or "no detail"
    described = f"{type(exc).__name__}: {' '.join(text.split())}"
    if config.password:
        described = described.replace(config.password, "[redacted]")
    return described[:_MAX_ERROR]


async def _message(session: AsyncSession, row: EmailNotification, config: SmtpConfig) -> EmailMessage | str:
    """The row's message, or why there is none."""
    event = await get_event(session, row.event_id)
    if event is None:
        return f"event {row.event_id} not found"
    try:
        tenant_name = (await TenantRepository(session).get(row.tenant_id)).name
    except NotFound:
        tenant_name = row.tenant_id
    rendered = render(
        event.type, event.payload, tenant_name=tenant_name, event_id=event.id, created_at=event.created_at
    )
    if rendered is None:
        return f"{event.type} is not e-mailed"
    message_id = row.message_id or message_id_for(event.id, row.recipient, config.sender)
    message = build_message(
        rendered,
        sender=config.sender,
        recipient=row.recipient,
        message_id=message_id,
        date=event.created_at,
        event_id=event.id,
    )
    await _attach_invoice(session, event, message)
    return message


async def _attach_invoice(session: AsyncSession, event: Event, message: EmailMessage) -> None:
    """A receipt carries the top-up's invoice as a PDF (issued in the credit's transaction, so it is there
    whenever the receipt is; the PDF is the same bytes on every render, so a resend attaches the same)."""
    topup_id = event.payload.get("topup_id")
    if event.type != EventType.TOPUP_SUCCEEDED.value or not isinstance(topup_id, str):
        return
    invoice = await invoice_for_topup(session, event.tenant_id, topup_id)
    if invoice is None:
        return
    pdf = await render_invoice_pdf(session, event.tenant_id, invoice.id)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=invoice.file_name)


async def send_email(
    db: Database, email_id: int, *, config: SmtpConfig | None, mailer: Mailer | None = None
) -> EmailStatus | None:
    """The `send_email` job's effect: send the row's message once. Answers the row's status (None for a
    row that does not exist); raises EmailRetry after recording a temporary failure."""
    retry: str | None = None
    async with unit_of_work(db) as session:
        emails = EmailNotificationRepository(session)
        row = await emails.lock(email_id)
        if row is None:
            return None
        if EmailStatus(row.status) in FINAL:
            return EmailStatus(row.status)  # a job run twice never sends a row already done
        if config is None:
            await emails.record(
                email_id, status=EmailStatus.SKIPPED, attempted=False, error="SMTP is not configured"
            )
            return EmailStatus.SKIPPED
        message = await _message(session, row, config)
        if isinstance(message, str):
            await emails.record(email_id, status=EmailStatus.FAILED, attempted=False, error=message)
            return EmailStatus.FAILED
        subject, message_id = str(message["Subject"]), str(message["Message-ID"])
        try:
            await (mailer or SmtpMailer(config)).send(message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            error = describe_error(exc, config)
            if _permanent(exc):
                status = EmailStatus.REFUSED
            elif row.attempts + 1 >= MAX_ATTEMPTS:
                status = EmailStatus.FAILED
            else:
                status, retry = EmailStatus.RETRYING, error
            done = await emails.record(
                email_id, status=status, attempted=True, subject=subject, message_id=message_id, error=error
            )
            log.warning(
                "e-mail not sent",
                extra={"email_id": email_id, "event_id": row.event_id, "status": status, "error": error},
            )
            if retry is None:
                return EmailStatus(done.status)
        else:
            await emails.record(
                email_id, status=EmailStatus.SENT, attempted=True, subject=subject, message_id=message_id
            )
            log.info("e-mail sent", extra={"email_id": email_id, "event_id": row.event_id})
            return EmailStatus.SENT
    raise EmailRetry(retry)


async def list_notifications(
    session: AsyncSession, tenant_id: str, *, event_id: str | None, before_id: int | None, limit: int
) -> tuple[list[EmailNotification], int | None]:
    await TenantRepository(session).get(tenant_id)
    return await EmailNotificationRepository(session).page(
        tenant_id, event_id=event_id, before_id=before_id, limit=limit
    )
