"""The payment gateways this process can use, built once from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from walletsvc.config import Settings
from walletsvc.domain.errors import ProviderNotConfigured
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind
from walletsvc.providers.base import PaymentGateway
from walletsvc.providers.circuit import CircuitBreaker
from walletsvc.providers.razorpay_gateway import RazorpayGateway
from walletsvc.providers.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else ""


# What each setting holds, as the operator writes it in the environment (.env.example explains each).
_FORMATS = {
    "STRIPE_SECRET_KEY": "sk_test_... or sk_live_...",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_... or pk_live_...",
    "STRIPE_WEBHOOK_SECRET": "whsec_..., the endpoint's signing secret",
    "RAZORPAY_KEY_ID": "rzp_test_... or rzp_live_...",
    "RAZORPAY_KEY_SECRET": "the key id's secret",
    "RAZORPAY_WEBHOOK_SECRET": "the secret typed in when the webhook was added",
}


def not_configured(what: str, missing: tuple[str, ...]) -> ProviderNotConfigured:
    """The 503 that names what to set: `what` is not configured here; set A (format) and B (format)."""
    names = " and ".join(f"{name} ({_FORMATS[name]})" for name in missing)
    return ProviderNotConfigured(f"{what} not configured here: set {names}", settings=missing)


@dataclass(slots=True)
class Gateways:
    stripe: StripeGateway | None
    razorpay: RazorpayGateway | None
    razorpay_key_secret: str
    stripe_webhook_secrets: list[str]
    razorpay_webhook_secret: str
    # The settings a provider lacks (empty when it is configured).
    stripe_missing: tuple[str, ...] = ()
    razorpay_missing: tuple[str, ...] = ()

    def get(self, name: ProviderName) -> PaymentGateway:
        if name is ProviderName.STRIPE:
            return self.stripe_or_refuse()
        return self.razorpay_or_refuse()

    def checkout_gateway(self, name: ProviderName, kind: CheckoutKind) -> PaymentGateway:
        """The gateway for a checkout of this kind, refused before anything is written or asked of the
        provider when a setting it needs is missing (a client_secret checkout needs the publishable key
        the portal opens Stripe Elements with)."""
        gateway = self.get(name)
        if kind is CheckoutKind.CLIENT_SECRET and self.stripe is not None and not self.stripe.publishable_key:
            raise not_configured("Stripe client_secret checkouts are", ("STRIPE_PUBLISHABLE_KEY",))
        return gateway

    def stripe_or_refuse(self) -> StripeGateway:
        if self.stripe is None:
            raise not_configured("Stripe is", self.stripe_missing or ("STRIPE_SECRET_KEY",))
        return self.stripe

    def razorpay_or_refuse(self) -> RazorpayGateway:
        if self.razorpay is None:
            raise not_configured(
                "Razorpay is", self.razorpay_missing or ("RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET")
            )
        return self.razorpay

    def stripe_webhook_secrets_or_refuse(self) -> list[str]:
        """The secrets to check Stripe-Signature with; none configured answers 503 naming the setting
        (Stripe retries a 503 for days, so events wait until it is set rather than being lost)."""
        if not self.stripe_webhook_secrets:
            raise not_configured("Stripe webhooks are", ("STRIPE_WEBHOOK_SECRET",))
        return self.stripe_webhook_secrets

    def razorpay_webhook_secret_or_refuse(self) -> str:
        if not self.razorpay_webhook_secret:
            raise not_configured("Razorpay webhooks are", ("RAZORPAY_WEBHOOK_SECRET",))
        return self.razorpay_webhook_secret

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
        stripe_missing=() if stripe_key else ("STRIPE_SECRET_KEY",),
        razorpay_missing=tuple(
            name
            for name, value in (
                ("RAZORPAY_KEY_ID", settings.razorpay_key_id),
                ("RAZORPAY_KEY_SECRET", razorpay_secret),
            )
            if not value
        ),
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


def setting_warnings(settings: Settings) -> list[str]:
    """Provider settings that look wrong, or half set: each says what will be refused and what to set.
    Names the settings, never their values."""
    warnings: list[str] = []
    stripe_key = _secret(settings.stripe_secret_key)
    shapes = [
        ("STRIPE_SECRET_KEY", stripe_key, ("sk_test_", "sk_live_", "rk_test_", "rk_live_")),
        ("STRIPE_PUBLISHABLE_KEY", settings.stripe_publishable_key or "", ("pk_test_", "pk_live_")),
        ("RAZORPAY_KEY_ID", settings.razorpay_key_id or "", ("rzp_test_", "rzp_live_")),
    ]
    shapes += [
        ("STRIPE_WEBHOOK_SECRET", secret.strip(), ("whsec_",))
        for secret in _secret(settings.stripe_webhook_secret).split(",")
    ]
    for name, value, prefixes in shapes:
        if value and not value.startswith(prefixes):
            warnings.append(f"{name} does not look like one ({_FORMATS[name]}); check it")
    if stripe_key:
        if not settings.stripe_publishable_key:
            warnings.append(
                "STRIPE_PUBLISHABLE_KEY is not set: client_secret (Stripe Elements) top-ups answer 503"
            )
        if not _secret(settings.stripe_webhook_secret).strip(" ,"):
            warnings.append("STRIPE_WEBHOOK_SECRET is not set: POST /v1/webhooks/stripe answers 503")
    if settings.razorpay_key_id and _secret(settings.razorpay_key_secret):
        if not _secret(settings.razorpay_webhook_secret):
            warnings.append("RAZORPAY_WEBHOOK_SECRET is not set: POST /v1/webhooks/razorpay answers 503")
    elif settings.razorpay_key_id or _secret(settings.razorpay_key_secret):
        missing = "RAZORPAY_KEY_SECRET" if settings.razorpay_key_id else "RAZORPAY_KEY_ID"
        warnings.append(f"{missing} is not set, so Razorpay is off: INR top-ups answer 503")
    return warnings


def _mode(value: str | None, live: str, test: str) -> str | None:
    if not value:
        return None
    return "live" if value.startswith(live) else "test" if value.startswith(test) else None
