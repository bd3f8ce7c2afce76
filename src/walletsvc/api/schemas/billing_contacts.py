"""Billing contacts and the e-mails sent to them, as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from walletsvc.api.schemas.common import NO_NUL_PATTERN
from walletsvc.domain.billing_contacts import BillingContacts, EmailNotification
from walletsvc.services.billing_contacts import MAX_BILLING_CONTACTS

EmailText = Annotated[StrictStr, Field(min_length=1, max_length=320, pattern=NO_NUL_PATTERN)]


class BillingContactsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"emails": ["billing@acme.example", "cfo@acme.example"]}]},
    )
    emails: list[EmailText] = Field(
        max_length=MAX_BILLING_CONTACTS,
        description="Replaces the list. Checked (syntax, no DNS lookup), domains lower-cased, duplicates "
        "dropped, order kept; `[]` means no contacts (no e-mails are sent).",
    )


class BillingContactsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "acme",
                    "emails": ["billing@acme.example", "cfo@acme.example"],
                    "updated_by": "user:owner-1",
                    "updated_at": "2026-12-01T10:00:00Z",
                }
            ]
        }
    )
    tenant_id: str
    emails: list[str]
    updated_by: str | None = Field(description="Who set them last; null when they were never set")
    updated_at: datetime | None

    @classmethod
    def of(cls, contacts: BillingContacts) -> BillingContactsOut:
        return cls(
            tenant_id=contacts.tenant_id,
            emails=list(contacts.emails),
            updated_by=contacts.updated_by,
            updated_at=contacts.updated_at,
        )


class EmailNotificationOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "event_id": "evt_3f2a9c0d6b1e4a7f8c5d2e1b0a9f8e7d",
                    "event_type": "topup.succeeded",
                    "recipient": "billing@acme.example",
                    "status": "sent",
                    "subject": "Receipt: Rs 500.00 added to the Acme Calls wallet",
                    "message_id": "<evt_3f2a9c0d6b1e4a7f8c5d2e1b0a9f8e7d.5d41402abc4b2a76@acme.example>",
                    "attempts": 1,
                    "last_error": None,
                    "created_at": "2026-12-01T10:00:00Z",
                    "last_attempt_at": "2026-12-01T10:00:01Z",
                    "sent_at": "2026-12-01T10:00:01Z",
                }
            ]
        }
    )
    id: int
    event_id: str
    event_type: str
    recipient: str
    status: str = Field(
        description="`queued`, `retrying` (a temporary failure; sent again later), `sent` (the server "
        "accepted it), `refused` (the server refused the recipient or message for good), `failed` (gave up "
        "after the last attempt), `skipped` (no SMTP server was configured)"
    )
    subject: str | None
    message_id: str | None = Field(description="The Message-ID header: the same on every attempt")
    attempts: int
    last_error: str | None = Field(description="The last failure: its kind and the server's answer")
    created_at: datetime
    last_attempt_at: datetime | None
    sent_at: datetime | None

    @classmethod
    def of(cls, e: EmailNotification) -> EmailNotificationOut:
        return cls(
            id=e.id,
            event_id=e.event_id,
            event_type=e.event_type,
            recipient=e.recipient,
            status=e.status,
            subject=e.subject,
            message_id=e.message_id,
            attempts=e.attempts,
            last_error=e.last_error,
            created_at=e.created_at,
            last_attempt_at=e.last_attempt_at,
            sent_at=e.sent_at,
        )
