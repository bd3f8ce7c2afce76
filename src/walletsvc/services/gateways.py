"""The payment gateways this process can use, built once from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from walletsvc.config import Settings
from walletsvc.domain.errors import ProviderNotConfigured
from walletsvc.domain.tenants import ProviderName
from walletsvc.providers.base import PaymentGateway
from walletsvc.providers.circuit import CircuitBreaker
from walletsvc.providers.razorpay_gateway import RazorpayGateway
from walletsvc.providers.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else ""


@dataclass(slots=True)
class Gateways:
    stripe: StripeGateway | None
    razorpay: RazorpayGateway | None
    razorpay_key_secret: str
    stripe_webhook_secrets: list[str]
    razorpay_webhook_secret: str

    def get(self, name: ProviderName) -> PaymentGateway:
        gateway: PaymentGateway | None = self.stripe if name is ProviderName.STRIPE else self.razorpay
        if gateway is None:
            raise ProviderNotConfigured(f"{name.value} has no credentials configured here")
        return gateway

    def stripe_or_refuse(self) -> StripeGateway:
        if self.stripe is None:
            raise ProviderNotConfigured("stripe has no credentials configured here")
        return self.stripe

    def razorpay_or_refuse(self) -> RazorpayGateway:
        if self.razorpay is None:
            raise ProviderNotConfigured("razorpay has no credentials configured here")
        return self.razorpay

    async def aclose(self) -> None:
        if self.razorpay is not None:
            await self.razorpay.aclose()


def build_gateways(settings: Settings) -> Gateways:
    def breaker(name: str) -> CircuitBreaker:
        return CircuitBreaker(
            name,
            failure_threshold=settings.provider_circuit_failures,
            reset_after=settings.provider_circuit_reset_seconds,
        )

    stripe_key = _secret(settings.stripe_secret_key)
    stripe = (
        StripeGateway(
            secret_key=stripe_key,
            publishable_key=settings.stripe_publishable_key or None,
            api_base=settings.stripe_api_base,
            return_url=f"{settings.public_base_url.rstrip('/')}/v1/topups/stripe/return",
            cancel_url=settings.portal_cancel_url,
            timeout=settings.provider_timeout_seconds,
            breaker=breaker("stripe"),
            max_network_retries=settings.provider_max_retries,
        )
        if stripe_key
        else None
    )
    razorpay_secret = _secret(settings.razorpay_key_secret)
    razorpay = (
        RazorpayGateway(
            key_id=settings.razorpay_key_id or "",
            key_secret=razorpay_secret,
            api_base=settings.razorpay_api_base,
            timeout=settings.provider_timeout_seconds,
            breaker=breaker("razorpay"),
            attempts=settings.provider_max_retries + 1,
        )
        if settings.razorpay_key_id and razorpay_secret
        else None
    )
    return Gateways(
        stripe=stripe,
        razorpay=razorpay,
        razorpay_key_secret=razorpay_secret,
        stripe_webhook_secrets=[
            s.strip() for s in _secret(settings.stripe_webhook_secret).split(",") if s.strip()
        ],
        razorpay_webhook_secret=_secret(settings.razorpay_webhook_secret),
    )


def key_mode_warnings(settings: Settings) -> list[str]:
    """Test keys where the configuration looks live, or live keys where it looks like a test setup."""
    warnings: list[str] = []
    stripe_secret = _secret(settings.stripe_secret_key)
    public = settings.public_base_url
    local = any(host in public for host in ("localhost", "127.0.0.1", "0.0.0.0"))  # noqa: S104
    modes = {
        "STRIPE_SECRET_KEY": "live"
        if "_live_" in stripe_secret
        else "test"
        if "_test_" in stripe_secret
        else None,
        "STRIPE_PUBLISHABLE_KEY": _mode(settings.stripe_publishable_key, "pk_live_", "pk_test_"),
        "RAZORPAY_KEY_ID": _mode(settings.razorpay_key_id, "rzp_live_", "rzp_test_"),
    }
    known = {name: mode for name, mode in modes.items() if mode}
    if len(set(known.values())) > 1:
        warnings.append(
            "payment keys mix live and test modes: "
            + ", ".join(f"{name} is {mode}" for name, mode in sorted(known.items()))
        )
    if "live" in known.values() and (local or public.startswith("http://")):
        warnings.append(f"live payment keys with PUBLIC_BASE_URL {public!r}, which looks like a test setup")
    if "test" in known.values() and public.startswith("https://") and not local:
        warnings.append(f"test payment keys with PUBLIC_BASE_URL {public!r}, which looks like production")
    return warnings


def _mode(value: str | None, live: str, test: str) -> str | None:
    if not value:
        return None
    return "live" if value.startswith(live) else "test" if value.startswith(test) else None
