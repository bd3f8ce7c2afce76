"""A tenant's billing contacts (one row, its addresses in order) and the e-mails sent to them."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db import tables as t
from walletsvc.domain.billing_contacts import BillingContacts, EmailNotification


class BillingContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str) -> BillingContacts:
        """The tenant's contacts; none (an empty list) when they were never set."""
        row = (
            await self.session.execute(
                select(t.billing_contacts).where(t.billing_contacts.c.tenant_id == tenant_id)
            )
        ).first()
        if row is None:
            return BillingContacts(tenant_id=tenant_id, emails=(), updated_by=None, updated_at=None)
        return BillingContacts(
            tenant_id=tenant_id,
            emails=tuple(row.emails),
            updated_by=row.updated_by,
            updated_at=row.updated_at,
        )

    async def put(self, tenant_id: str, emails: list[str], *, actor: str) -> BillingContacts:
        upsert = insert(t.billing_contacts).values(tenant_id=tenant_id, emails=emails, updated_by=actor)
        statement = upsert.on_conflict_do_update(
            index_elements=[t.billing_contacts.c.tenant_id],
            set_={"emails": emails, "updated_by": actor, "updated_at": text("now()")},
        ).returning(*t.billing_contacts.c)
        row = (await self.session.execute(statement)).one()
        return BillingContacts(
            tenant_id=tenant_id,
            emails=tuple(row.emails),
            updated_by=row.updated_by,
            updated_at=row.updated_at,
        )


# Unique on (event, recipient): a dispatch run again adds nothing, and answers only the rows it added.
_ADD = text(
    """
    INSERT INTO email_notifications (tenant_id, event_id, event_type, recipient)
    SELECT :tenant_id, :event_id, :event_type, r.recipient FROM unnest(CAST(:recipients AS text[])) AS r(recipient)
    ON CONFLICT ON CONSTRAINT email_notifications_once_per_recipient DO NOTHING
    RETURNING id
    """
)
# The row is held while its message is sent: a second run of the job (a worker presumed dead, picked
# again) waits, then finds it sent and sends nothing.
_LOCK = text(
    "SELECT id, tenant_id, event_id, event_type, recipient, message_id, status, subject, attempts, last_error,"
    " created_at, last_attempt_at, sent_at FROM email_notifications WHERE id = :id FOR UPDATE"
)
_RECORD = text(
    """
    UPDATE email_notifications
       SET status = :status, subject = COALESCE(:subject, subject),
           last_error = COALESCE(:error, last_error),  -- kept after a later success: what it took
           message_id = COALESCE(message_id, :message_id),
           attempts = attempts + CAST(:attempted AS int),
           last_attempt_at = CASE WHEN CAST(:attempted AS int) > 0 THEN now() ELSE last_attempt_at END,
           sent_at = CASE WHEN CAST(:status AS text) = 'sent' THEN now() ELSE NULL END
     WHERE id = :id
    RETURNING id, tenant_id, event_id, event_type, recipient, message_id, status, subject, attempts, last_error,
              created_at, last_attempt_at, sent_at
    """
)
_PAGE = text(
    """
    SELECT id, tenant_id, event_id, event_type, recipient, message_id, status, subject, attempts, last_error,
           created_at, last_attempt_at, sent_at FROM email_notifications
     WHERE tenant_id = :tenant_id
       AND (CAST(:event_id AS text) IS NULL OR event_id = CAST(:event_id AS text))
       AND (CAST(:before AS bigint) IS NULL OR id < CAST(:before AS bigint))
     ORDER BY id DESC
     LIMIT :limit
    """
)


class EmailNotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, *, tenant_id: str, event_id: str, event_type: str, recipients: list[str]
    ) -> list[int]:
        """One row per recipient not already there for this event; answers the new rows' ids."""
        result = await self.session.execute(
            _ADD,
            {
                "tenant_id": tenant_id,
                "event_id": event_id,
                "event_type": event_type,
                "recipients": recipients,
            },
        )
        return [int(i) for i in result.scalars()]

    async def lock(self, email_id: int) -> EmailNotification | None:
        row = (await self.session.execute(_LOCK, {"id": email_id})).first()
        return EmailNotification(*row) if row is not None else None

    async def record(
        self,
        email_id: int,
        *,
        status: str,
        attempted: bool,
        subject: str | None = None,
        message_id: str | None = None,
        error: str | None = None,
    ) -> EmailNotification:
        params = {
            "id": email_id,
            "message_id": message_id,
            "status": status,
            "subject": subject,
            "error": error,
            "attempted": 1 if attempted else 0,
        }
        return EmailNotification(*(await self.session.execute(_RECORD, params)).one())

    async def page(
        self, tenant_id: str, *, event_id: str | None, before_id: int | None, limit: int
    ) -> tuple[list[EmailNotification], int | None]:
        """Newest first; answers a page and the id to continue before (None on the last page)."""
        params = {"tenant_id": tenant_id, "event_id": event_id, "before": before_id, "limit": limit + 1}
        rows = (await self.session.execute(_PAGE, params)).all()
        items = [EmailNotification(*row) for row in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)
