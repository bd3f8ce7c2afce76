"""Opening and reading tenants."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.tenants import TenantDirectory, TenantRepository
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.low_balance import threshold_for
from walletsvc.domain.money import check_currency
from walletsvc.domain.tenants import ProviderName, Tenant
from walletsvc.services.low_balance import set_threshold

_LIMITS = {"low_balance_threshold", "max_concurrent_calls", "daily_spend_cap"}


class Keep:
    """A change not asked for (where None means something)."""


KEEP = Keep()


async def open_tenant(
    session: AsyncSession,
    *,
    tenant_id: str,
    name: str,
    country: str,
    currency: str,
    data_residency_region: str | None = None,
    payments_provider: ProviderName | None = None,
    low_balance_threshold: int | None = None,
    default_thresholds: Mapping[str, int] | None = None,
) -> Tenant:
    """A tenant and its wallet: balance 0 in the tenant's currency, which never changes afterwards. No
    low_balance_threshold: the currency's default (LOW_BALANCE_THRESHOLDS); 0: no low-balance alerts."""
    check_currency(currency)
    return await TenantRepository(session).add(
        tenant_id=tenant_id,
        name=name,
        country=country,
        currency=currency,
        data_residency_region=data_residency_region,
        payments_provider=payments_provider,
        low_balance_threshold=threshold_for(currency, low_balance_threshold, default_thresholds or {}),
    )


async def change_tenant(
    session: AsyncSession,
    tenant_id: str,
    *,
    limits: dict[str, int | None],
    payments_provider: ProviderName | Keep | None = KEEP,
) -> None:
    """Change a tenant's limits (low_balance_threshold, max_concurrent_calls, daily_spend_cap: the ones
    given; None lifts a limit) and its payment provider (None: the geography default)."""
    await TenantDirectory(session).get(tenant_id)  # NotFound first
    unknown = set(limits) - _LIMITS
    if unknown:
        raise InvalidRequest(f"not a tenant limit: {', '.join(sorted(unknown))}")
    if "low_balance_threshold" in limits and limits["low_balance_threshold"] is None:
        raise InvalidRequest("low_balance_threshold is a number of minor units (0 for none)")
    if not isinstance(payments_provider, Keep):
        await TenantRepository(session).set_provider(tenant_id, payments_provider)
    limits = dict(limits)
    threshold = limits.pop("low_balance_threshold", None)
    if threshold is not None:  # evaluated at once: it may start or end a low-balance spell
        await set_threshold(session, tenant_id, threshold)
    await WalletRepository(session).set_limits(tenant_id, **limits)


__all__ = ["KEEP", "TenantDirectory", "change_tenant", "open_tenant"]
