"""Opening and reading tenants."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.tenants import TenantDirectory, TenantRepository
from walletsvc.domain.money import check_currency
from walletsvc.domain.tenants import ProviderName, Tenant


async def open_tenant(
    session: AsyncSession,
    *,
    tenant_id: str,
    name: str,
    country: str,
    currency: str,
    data_residency_region: str | None = None,
    payments_provider: ProviderName | None = None,
    low_balance_threshold: int = 0,
) -> Tenant:
    """A tenant and its wallet: balance 0 in the tenant's currency, which never changes afterwards."""
    check_currency(currency)
    return await TenantRepository(session).add(
        tenant_id=tenant_id,
        name=name,
        country=country,
        currency=currency,
        data_residency_region=data_residency_region,
        payments_provider=payments_provider,
        low_balance_threshold=low_balance_threshold,
    )


__all__ = ["TenantDirectory", "open_tenant"]
