"""A tenant's billing contacts: the addresses its e-mail notifications go to (admins and the tenant's
owner set them; members read them)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.billing_contacts import BillingContactRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.billing_contacts import BillingContacts
from walletsvc.domain.errors import InvalidEmailAddress, InvalidRequest

MAX_BILLING_CONTACTS = 10


def normalise_emails(emails: list[str]) -> list[str]:
    """Each address checked (syntax only: no DNS lookup), its domain lower-cased (an international domain
    in its ASCII form, so any SMTP server can deliver it), surrounding spaces dropped; duplicates (ignoring
    case) dropped, the first spelling kept, in the order given. An empty list means no contacts."""
    seen: set[str] = set()
    kept: list[str] = []
    for index, raw in enumerate(emails):
        try:
            checked = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
        except EmailNotValidError as exc:
            raise InvalidEmailAddress(index=index, reason=str(exc)) from exc
        address = checked.ascii_email or checked.normalized
        if address.lower() not in seen:
            seen.add(address.lower())
            kept.append(address)
    if len(kept) > MAX_BILLING_CONTACTS:
        raise InvalidRequest(
            f"a tenant has at most {MAX_BILLING_CONTACTS} billing contacts; {len(kept)} were given"
        )
    return kept


async def get_billing_contacts(session: AsyncSession, tenant_id: str) -> BillingContacts:
    await TenantRepository(session).get(tenant_id)  # NotFound for a tenant that does not exist
    return await BillingContactRepository(session).get(tenant_id)


async def set_billing_contacts(
    session: AsyncSession, tenant_id: str, emails: list[str], *, actor: str
) -> BillingContacts:
    """Replace the tenant's contacts with `emails` (normalised); answers what is stored."""
    normalised = normalise_emails(emails)
    await TenantRepository(session).get(tenant_id)
    return await BillingContactRepository(session).put(tenant_id, normalised, actor=actor)
