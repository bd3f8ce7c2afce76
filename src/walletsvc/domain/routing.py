"""Which payment provider takes a top-up: DESIGN.md's five rules, in their order."""

from __future__ import annotations

from dataclasses import dataclass

from walletsvc.domain.tenants import ProviderName


@dataclass(frozen=True, slots=True)
class Route:
    provider: ProviderName
    rule: str  # which rule decided, for logs and support


def is_india_region(region: str) -> bool:
    """`ap-south` itself or `ap-south-N` (AWS Mumbai ap-south-1, Hyderabad ap-south-2); `ap-southeast-*`
    (Singapore, Sydney, Jakarta, ...) is not India."""
    return region == "ap-south" or region.startswith("ap-south-")


def choose_provider(
    *,
    currency: str,
    country: str,
    data_residency_region: str | None = None,
    tenant_setting: ProviderName | None = None,
    override: ProviderName | None = None,
) -> Route:
    if override is not None:
        return Route(override, "admin override")
    if tenant_setting is not None:
        return Route(tenant_setting, "tenant setting")
    if currency == "INR" or country == "IND":
        return Route(ProviderName.RAZORPAY, "INR or India")
    if data_residency_region is not None and is_india_region(data_residency_region):
        return Route(ProviderName.RAZORPAY, "ap-south data residency")
    return Route(ProviderName.STRIPE, "default")
