"""Tenants: the platform's customers, each with one wallet in one currency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ProviderName(StrEnum):
    STRIPE = "stripe"
    RAZORPAY = "razorpay"


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    country: str  # ISO 3166-1 alpha-3
    currency: str  # ISO 4217; the wallet's currency, fixed when opened
    data_residency_region: str | None
    payments_provider: ProviderName | None  # None: the geography default
    created_at: datetime
