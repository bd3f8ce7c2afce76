"""A tenant's billing contacts (the addresses its e-mails go to, in order) and the e-mails sent to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BillingContacts:
    tenant_id: str
    emails: tuple[str, ...]
    updated_by: str | None  # None: never set
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class EmailNotification:
    """One e-mail of one event to one recipient, and how sending it went."""

    id: int
    tenant_id: str
    event_id: str
    event_type: str
    recipient: str
    message_id: str | None
    status: str
    subject: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    sent_at: datetime | None
