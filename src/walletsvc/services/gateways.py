"""The payment gateways this process can use (built once from the settings by gateway_config.py), and the
503 that names the settings a missing one needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from walletsvc.domain.errors import ProviderNotConfigured
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind
from walletsvc.providers.base import PaymentGateway
from walletsvc.providers.razorpay_gateway import RazorpayGateway
from walletsvc.providers.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)


# What each setting holds, as the operator writes it in the environment (.env.example explains each).
SETTING_FORMATS = {
    "STRIPE_SECRET_KEY": "sk_test_... or sk_live_...",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_... or pk_live_...",
    "STRIPE_WEBHOOK_SECRET": "whsec_..., the endpoint's signing secret",
    "RAZORPAY_KEY_ID": "rzp_test_... or rzp_live_...",
    "RAZORPAY_KEY_SECRET": "the key id's secret",
    "RAZORPAY_WEBHOOK_SECRET": "the secret typed in when the webhook was added",
}


def not_configured(what: str, missing: tuple[str, ...]) -> ProviderNotConfigured:
    """The 503 that names what to set: `what` is not configured here; set A (format) and B (format)."""
    names = " and ".join(f"{name} ({SETTING_FORMATS[name]})" for name in missing)
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
