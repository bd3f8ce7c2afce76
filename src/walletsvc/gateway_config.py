"""The payment gateways and the startup warnings about their settings, built once from Settings where a
process builds its dependencies (create_app, the worker, `walletsvc reconcile`): the services take the
Gateways value, never the settings it was made from."""

from __future__ import annotations

from walletsvc.config import Settings
from walletsvc.providers.circuit import CircuitBreaker
from walletsvc.providers.razorpay_gateway import RazorpayGateway
from walletsvc.providers.stripe_gateway import StripeGateway
from walletsvc.service_config import secret_value
from walletsvc.services.gateways import SETTING_FORMATS, Gateways


def build_gateways(settings: Settings) -> Gateways:
    def breaker(name: str) -> CircuitBreaker:
        return CircuitBreaker(
            name,
            failure_threshold=settings.provider_circuit_failures,
            reset_after=settings.provider_circuit_reset_seconds,
        )

    stripe_key = secret_value(settings.stripe_secret_key)
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
    razorpay_secret = secret_value(settings.razorpay_key_secret)
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
            s.strip() for s in secret_value(settings.stripe_webhook_secret).split(",") if s.strip()
        ],
        razorpay_webhook_secret=secret_value(settings.razorpay_webhook_secret),
    )


def key_mode_warnings(settings: Settings) -> list[str]:
    """Test keys where the configuration looks live, or live keys where it looks like a test setup."""
    warnings: list[str] = []
    stripe_secret = secret_value(settings.stripe_secret_key)
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
    stripe_key = secret_value(settings.stripe_secret_key)
    shapes = [
        ("STRIPE_SECRET_KEY", stripe_key, ("sk_test_", "sk_live_", "rk_test_", "rk_live_")),
        ("STRIPE_PUBLISHABLE_KEY", settings.stripe_publishable_key or "", ("pk_test_", "pk_live_")),
        ("RAZORPAY_KEY_ID", settings.razorpay_key_id or "", ("rzp_test_", "rzp_live_")),
    ]
    shapes += [
        ("STRIPE_WEBHOOK_SECRET", secret.strip(), ("whsec_",))
        for secret in secret_value(settings.stripe_webhook_secret).split(",")
    ]
    for name, value, prefixes in shapes:
        if value and not value.startswith(prefixes):
            warnings.append(f"{name} does not look like one ({SETTING_FORMATS[name]}); check it")
    if stripe_key:
        if not settings.stripe_publishable_key:
            warnings.append(
                "STRIPE_PUBLISHABLE_KEY is not set: client_secret (Stripe Elements) top-ups answer 503"
            )
        if not secret_value(settings.stripe_webhook_secret).strip(" ,"):
            warnings.append("STRIPE_WEBHOOK_SECRET is not set: POST /v1/webhooks/stripe answers 503")
    if settings.razorpay_key_id and secret_value(settings.razorpay_key_secret):
        if not secret_value(settings.razorpay_webhook_secret):
            warnings.append("RAZORPAY_WEBHOOK_SECRET is not set: POST /v1/webhooks/razorpay answers 503")
    elif settings.razorpay_key_id or secret_value(settings.razorpay_key_secret):
        missing = "RAZORPAY_KEY_SECRET" if settings.razorpay_key_id else "RAZORPAY_KEY_ID"
        warnings.append(f"{missing} is not set, so Razorpay is off: INR top-ups answer 503")
    return warnings


def _mode(value: str | None, live: str, test: str) -> str | None:
    if not value:
        return None
    return "live" if value.startswith(live) else "test" if value.startswith(test) else None
