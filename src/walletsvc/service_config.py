"""What each service reads from the settings, as a small frozen value built once where a process builds its
dependencies (create_app, the worker, the CLI). The services never see Settings: a test gives one exactly
what it reads, and a service's signature says which settings change what it does."""

from __future__ import annotations

from pydantic import SecretStr

from walletsvc.config import Settings, check_jwt_secret
from walletsvc.domain.documents import Party
from walletsvc.domain.tax import TaxRule
from walletsvc.domain.webhooks import parse_schedule
from walletsvc.services.auth import AuthConfig
from walletsvc.services.documents import DocumentConfig
from walletsvc.services.notifications import SmtpConfig
from walletsvc.services.webhook_delivery import DeliveryConfig
from walletsvc.services.webhook_endpoints import SecretBox, load_secret_box


def secret_value(value: SecretStr | None) -> str:
    """A secret setting's value, or "" when unset."""
    return value.get_secret_value() if value is not None else ""


def auth_config(settings: Settings) -> AuthConfig:
    """JWT_PUBLIC_KEY (RS256) or JWT_SECRET (HS256), never both (Settings refuses that), or neither."""
    algorithm, key = None, None
    if public_key := secret_value(settings.jwt_public_key):
        algorithm, key = "RS256", public_key
    elif secret := secret_value(settings.jwt_secret):
        # Settings refuses a weak secret; this catches one that bypassed validation (model_copy).
        problem = check_jwt_secret(secret)
        if problem is not None:
            raise ValueError(f"JWT_SECRET {problem}")
        algorithm, key = "HS256", secret
    return AuthConfig(
        jwt_algorithm=algorithm,
        jwt_key=key,
        jwt_audience=settings.jwt_audience,
        jwt_issuer=settings.jwt_issuer,
        jwt_leeway_seconds=settings.jwt_leeway_seconds,
        jwt_max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        api_key_cache_seconds=settings.api_key_cache_seconds,
    )


def document_config(settings: Settings) -> DocumentConfig:
    address = tuple(line.strip() for line in settings.seller_address.split("|") if line.strip())
    return DocumentConfig(
        seller=Party(
            legal_name=settings.seller_legal_name,
            address_lines=address,
            state=settings.seller_state,
            country=settings.seller_country,
            tax_id=settings.seller_tax_id,
            email=settings.seller_email,
        ),
        tax=TaxRule(
            rate_percent=settings.tax_rate_percent,
            inclusive=settings.tax_inclusive,
            label=settings.tax_label,
            indian_gst=settings.tax_indian_gst,
            seller_country=settings.seller_country,
            seller_state=settings.seller_state,
        ),
        number_prefix=settings.invoice_number_prefix,
        yearly_reset=settings.invoice_number_yearly_reset,
        statement_delay_seconds=settings.statement_delay_seconds,
    )


def smtp_off_reason(settings: Settings) -> str | None:
    """Why e-mails are off with these settings, or None when they are on."""
    if settings.smtp_host is None:
        return "SMTP_HOST is not set"
    if settings.smtp_from is None:
        return "SMTP_HOST is set but SMTP_FROM is not"
    return None


def smtp_config(settings: Settings) -> SmtpConfig | None:
    if settings.smtp_host is None or settings.smtp_from is None:  # off: see smtp_off_reason
        return None
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=secret_value(settings.smtp_password) or None,
        starttls=settings.smtp_starttls and not settings.smtp_tls,
        tls=settings.smtp_tls,
        timeout=settings.smtp_timeout_seconds,
        ca_file=str(settings.smtp_ca_file) if settings.smtp_ca_file is not None else None,
    )


def webhook_delivery_config(settings: Settings) -> DeliveryConfig:
    return DeliveryConfig(
        retry_schedule=parse_schedule(settings.webhook_retry_schedule_seconds),
        timeout_seconds=settings.webhook_timeout_seconds,
        allow_private_urls=settings.webhook_allow_private_urls,
        disable_after_seconds=settings.webhook_disable_after_seconds,
    )


def webhook_secret_box(settings: Settings) -> SecretBox | None:
    """WEBHOOK_SECRETS_KEY, or the embedded database's key file in DATA_DIR (see load_secret_box)."""
    return load_secret_box(
        secret_value(settings.webhook_secrets_key),
        database_url=secret_value(settings.database_url),
        data_dir=settings.data_dir,
    )
