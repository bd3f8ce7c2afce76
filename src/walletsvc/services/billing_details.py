"""A tenant's billing details: the buyer its documents name. Owners and admins set them; members read them.
A document copies them when it is issued, so a later change never alters an issued document."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.documents import BillingDetailsRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.documents import BillingDetails, Party
from walletsvc.domain.errors import InvalidBillingDetails
from walletsvc.domain.tax import INDIA, gst_state_code
from walletsvc.domain.tax_ids import TaxIdInvalid, check_tax_id

_INDIAN_PIN = re.compile(r"^[1-9][0-9]{5}$")


def _text(value: str | None) -> str | None:
    return " ".join(value.split()) if value is not None and value.strip() else None


def normalise_billing_details(party: Party) -> Party:
    """Spaces tidied, codes upper-cased; an Indian state must be one (ISO code or GST code), an Indian
    postal code six digits, and the tax id must fit its country's shape (GSTIN, EU VAT, or generic)."""
    legal_name = _text(party.legal_name)
    if legal_name is None:
        raise InvalidBillingDetails(field="legal_name", reason="the legal name may not be blank")
    country = party.country.upper() if party.country else None
    if country is None:
        raise InvalidBillingDetails(field="country", reason="the country is required (ISO 3166-1 alpha-3)")
    state = _text(party.state)
    state = state.upper() if state else None
    if country == INDIA and state is not None and gst_state_code(state) is None:
        raise InvalidBillingDetails(
            field="state", reason=f"{state!r} is not an Indian state: give its ISO code (KA) or GST code (29)"
        )
    postal_code = _text(party.postal_code)
    if country == INDIA and postal_code is not None and not _INDIAN_PIN.match(postal_code):
        raise InvalidBillingDetails(field="postal_code", reason="an Indian PIN code is six digits")
    tax_id = _text(party.tax_id)
    if tax_id is not None:
        try:
            tax_id = check_tax_id(tax_id, country=country, state=state)
        except TaxIdInvalid as exc:
            raise InvalidBillingDetails(field="tax_id", reason=str(exc)) from exc
    return Party(
        legal_name=legal_name,
        address_lines=tuple(line for line in (_text(x) for x in party.address_lines) if line),
        city=_text(party.city),
        state=state,
        postal_code=postal_code,
        country=country,
        tax_id=tax_id,
    )


async def get_billing_details(session: AsyncSession, tenant_id: str) -> BillingDetails:
    """The tenant's billing details, or (never set) its name and country as its documents name it."""
    tenant = await TenantRepository(session).get(tenant_id)  # NotFound for a tenant that does not exist
    found = await BillingDetailsRepository(session).get(tenant_id)
    if found is not None:
        return found
    return BillingDetails(
        tenant_id=tenant_id,
        party=Party(legal_name=tenant.name, country=tenant.country),
        updated_by=None,
        updated_at=None,
    )


async def set_billing_details(
    session: AsyncSession, tenant_id: str, party: Party, *, actor: str
) -> BillingDetails:
    checked = normalise_billing_details(party)
    await TenantRepository(session).get(tenant_id)
    return await BillingDetailsRepository(session).put(tenant_id, checked, actor=actor)
