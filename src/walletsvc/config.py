"""Settings, from the environment and `.env`. Every key and secret is a SecretStr."""

from __future__ import annotations

from decimal import Decimal
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, FilePath, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from walletsvc.domain.auto_topup import AutoTopupPolicy, parse_backoff

# Seeds: Rs 10 a minute (VoiceAI); $0.10 a connection, $0.05 a minute, $0.02 an SMS, $0.01 an email,
# $0.15 a fax page, $0.05 a file transfer (the Next.js prepaid system).
_DEFAULT_RATES: dict[str, dict[str, str | int]] = {
    "INR": {"per_minute_rate": "1000", "billing_increment_seconds": 60},
    "USD": {
        "per_minute_rate": "5",
        "billing_increment_seconds": 60,
        "connection_fee": "10",
        "sms_price": "2",
        "email_price": "1",
        "fax_page_price": "15",
        "file_transfer_price": "5",
    },
}


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting may be a secret; a traceback must not print it.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    # Empty: start the embedded PostgreSQL (pgserver) in DATA_DIR.
    database_url: SecretStr | None = None
    data_dir: Path = Path(".walletsvc-data")
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8000"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Portal tokens: HS256 with JWT_SECRET, or RS256 with JWT_PUBLIC_KEY (never both), or neither (API keys
    # only). A weak secret or an unusable key refuses to start: see check_jwt_secret / check_jwt_public_key.
    jwt_secret: SecretStr | None = None
    jwt_public_key: SecretStr | None = None
    # When set, a token must carry this `aud` (or `iss`); when unset, a token that names an audience is
    # refused (RFC 7519: a recipient that is not in `aud` must reject the token).
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # The longest a portal token may live: exp - iat (or exp - now when it has no iat). A leaked token
    # is good for at most this long.
    jwt_max_lifetime_seconds: int = Field(default=24 * 3600, ge=60)
    # How long a verified API key is remembered in a process; a revocation elsewhere takes this long.
    api_key_cache_seconds: float = Field(default=10.0, ge=0)

    # The largest request body read, on any route (413 beyond). 1 MiB is about 3x the largest valid
    # POST /v1/usage/batch (1,000 records with tenant_id and 200-character reference ids: ~355 KB).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)

    # Browser portals that may call the API from their own origin (CORS), comma-separated:
    # "https://portal.example,https://admin.example". None by default. `*` is refused: portals send
    # credentials (Authorization), so every allowed origin is named.
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        problem = check_jwt_secret(value.get_secret_value())
        if problem is not None:
            raise PydanticCustomError("weak_jwt_secret", problem)
        return value

    @field_validator("jwt_public_key")
    @classmethod
    def _jwt_public_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if info.data.get("jwt_secret") is not None:
            raise PydanticCustomError(
                "two_jwt_modes",
                "JWT_SECRET is set too: portal tokens are either HS256 (JWT_SECRET) or RS256 "
                "(JWT_PUBLIC_KEY), so unset one of them",
            )
        pem = value.get_secret_value().strip()
        if "\\n" in pem and "\n" not in pem:  # a PEM squeezed onto one line with literal \n
            pem = pem.replace("\\n", "\n")
        problem = check_jwt_public_key(pem)
        if problem is not None:
            raise PydanticCustomError("bad_jwt_public_key", problem)
        return SecretStr(pem)

    @field_validator("jwt_audience", "jwt_issuer")
    @classmethod
    def _optional_text(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # `JWT_AUDIENCE=` in .env: not checked
        return value.strip()

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: Any) -> list[str]:
        return parse_origins(value)

    idempotency_lock_seconds: int = Field(default=60, ge=1)
    idempotency_retention_hours: int = Field(default=72, ge=1)

    stripe_secret_key: SecretStr | None = None
    stripe_publishable_key: str | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str = "https://api.stripe.com"
    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = None
    razorpay_api_base: str = "https://api.razorpay.com"
    portal_success_url: str = "http://localhost:3000/billing?topup=success"
    portal_cancel_url: str = "http://localhost:3000/billing?topup=cancelled"
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    provider_max_retries: int = Field(default=2, ge=0, le=5)  # each retry carries the same idempotency key
    provider_circuit_failures: int = Field(default=5, ge=1)
    provider_circuit_reset_seconds: float = Field(default=30.0, gt=0)

    # Top-up limits per currency, in minor units, as JSON: {"INR": 1000} is Rs 10.00. A currency not
    # listed has a minimum of one major unit and a maximum of 100,000 major units.
    topup_minimums: dict[str, int] = Field(default_factory=lambda: {"INR": 1000, "USD": 500, "EUR": 500})
    topup_maximums: dict[str, int] = Field(default_factory=lambda: {"INR": 50_000_000, "USD": 1_000_000})
    # `walletsvc reconcile` asks the provider about top-ups pending longer than this.
    reconcile_after_seconds: int = Field(default=300, ge=0)
    # `walletsvc worker`: a job whose worker sent no heartbeat for this long (it died) is run again.
    worker_heartbeat_timeout_seconds: int = Field(default=30, ge=1, le=3600)
    # When the worker closes ended subscription periods (docs/periods.md): a cron expression in UTC;
    # empty: not scheduled (run `walletsvc periods close` some other way).
    period_close_schedule: str = "* * * * *"

    @field_validator("period_close_schedule")
    @classmethod
    def _period_close_schedule(cls, value: str) -> str:
        from croniter import croniter  # type: ignore[import-untyped]  # pgqueuer's own cron parser

        value = value.strip()
        if value and not croniter.is_valid(value):
            raise ValueError('PERIOD_CLOSE_SCHEDULE is not a cron expression: "* * * * *", or empty for none')
        return value

    # Rates for tenants with no plan, per currency, until an admin sets them (PUT
    # /v1/admin/billing-defaults/{currency}). Decimal strings of minor units: per minute, per call, per unit.
    default_rates: dict[str, dict[str, str | int]] = Field(default_factory=lambda: dict(_DEFAULT_RATES))
    # The available balance a call needs before it may start, per currency, in minor units.
    minimum_balances: dict[str, int] = Field(default_factory=lambda: {"INR": 1000, "USD": 100})
    hold_ttl_seconds: int = Field(default=4 * 3600, ge=60)  # an unsettled hold is released after this
    default_hold_seconds: int = Field(default=300, ge=1)  # what a call is expected to last, for its hold
    max_call_seconds: int = Field(default=4 * 3600, ge=60)
    # The charge writer (services/charging.py): at most this many records, and this many wallets, in one
    # transaction; at most this many such transactions at once in a process (each holds a connection).
    charge_batch_size: int = Field(default=1000, ge=1, le=5000)
    charge_batch_wallets: int = Field(default=1000, ge=1, le=5000)
    charge_writers: int = Field(default=4, ge=1, le=64)
    # The low-balance threshold of a tenant opened without one, per currency, in minor units:
    # "INR=50000,USD=500,EUR=500" (or JSON {"INR": 50000}). Unlisted currencies: 0, no alerts.
    low_balance_thresholds: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)

    @field_validator("low_balance_thresholds", mode="before")
    @classmethod
    def _low_balance_thresholds(cls, value: Any) -> dict[str, int]:
        from walletsvc.domain.low_balance import parse_low_balance_setting

        try:
            return parse_low_balance_setting(value)
        except ValueError as exc:
            raise PydanticCustomError(
                "bad_low_balance_thresholds", "LOW_BALANCE_THRESHOLDS: {problem}", {"problem": str(exc)}
            ) from exc

    # E-mail to billing contacts (docs/email.md). No SMTP_HOST (or no SMTP_FROM): e-mails are off.
    smtp_host: str | None = None  # the SMTP server (submission) the worker sends through
    smtp_port: int = Field(default=587, ge=1, le=65535)  # 587 with STARTTLS, 465 with SMTP_TLS
    smtp_username: str | None = None  # AUTH login; unset: no AUTH
    smtp_password: SecretStr | None = None  # AUTH password; never logged nor stored
    smtp_from: str | None = None  # the From address: "Acme Billing <billing@acme.example>"
    smtp_starttls: bool = True  # require STARTTLS before AUTH and the message (refuse a server without it)
    smtp_tls: bool = False  # implicit TLS from the first byte (port 465); wins over SMTP_STARTTLS
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600)  # connect and each command
    smtp_ca_file: FilePath | None = None  # a PEM bundle (must exist) to verify the server's certificate with

    @field_validator("smtp_host", "smtp_username", "smtp_from")
    @classmethod
    def _optional_smtp_text(cls, value: str | None) -> str | None:
        return value.strip() if value is not None and value.strip() else None  # `SMTP_HOST=`: unset

    @field_validator("smtp_from")
    @classmethod
    def _smtp_from(cls, value: str | None) -> str | None:
        if value is not None and "@" not in parseaddr(value)[1]:
            raise ValueError(
                'SMTP_FROM is not an e-mail address: write billing@acme.example or "Acme <billing@acme.example>"'
            )
        return value

    # Outbound webhooks (docs/webhooks.md). The Fernet key that encrypts endpoint signing secrets at rest;
    # unset: generated once into DATA_DIR with the embedded database, refused (503) with DATABASE_URL.
    webhook_secrets_key: SecretStr | None = None
    # Allow endpoint URLs on loopback / private / link-local addresses, and plain http (development only).
    webhook_allow_private_urls: bool = False
    # A delivery attempt that has no answer within this long has failed.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Delays before each retry of a failed delivery (+/-20% jitter), comma-separated: about three days.
    webhook_retry_schedule_seconds: str = "5,300,1800,7200,18000,36000,36000,36000,36000,36000,36000,36000"
    # How long a previous signing secret still signs deliveries after a rotation.
    webhook_secret_rotation_overlap_seconds: int = Field(default=24 * 3600, ge=0)
    # An endpoint whose deliveries have failed for this long with no success between is disabled.
    webhook_disable_after_seconds: int = Field(default=5 * 24 * 3600, ge=0)

    @field_validator("webhook_secrets_key")
    @classmethod
    def _webhook_secrets_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        from cryptography.fernet import Fernet

        try:
            Fernet(value.get_secret_value().strip().encode())
        except (ValueError, TypeError):
            raise PydanticCustomError(
                "bad_webhook_secrets_key",
                "is not a Fernet key (32 url-safe base64 bytes); make one with: python3 -c 'from "
                "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
            ) from None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("webhook_retry_schedule_seconds")
    @classmethod
    def _webhook_schedule(cls, value: str) -> str:
        try:
            steps = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            steps = [-1.0]
        if any(not 0 <= step <= 7 * 86400 for step in steps):
            raise PydanticCustomError(
                "bad_webhook_schedule", "is comma-separated seconds, each from 0 to 604800, e.g. 5,300,1800"
            )
        return value

    # Documents: invoices, credit notes, monthly statements (docs/invoices.md).
    invoice_number_prefix: str = Field(default="WS", pattern=r"^[A-Z0-9]{1,10}$")  # WS-2026-000123
    invoice_number_yearly_reset: bool = True  # numbers restart each calendar year (UTC) and carry the year
    seller_legal_name: str = ""  # the seller named on every document (unset: a warning at start)
    seller_address: str = ""  # the seller's address lines, separated by "|": "12 MG Road|Bengaluru 560001"
    seller_tax_id: str | None = None  # the seller's GSTIN, VAT number, EIN ... printed on every document
    seller_country: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")  # ISO 3166-1 alpha-3: IND
    seller_state: str | None = None  # for GST: ISO 3166-2:IN code (KA) or GST state code (29)
    seller_email: str | None = None  # printed as the seller's billing contact
    tax_rate_percent: Decimal = Field(default=Decimal(0), ge=0, lt=100, decimal_places=4)  # "18"; 0: no tax
    tax_inclusive: bool = True  # a top-up's amount includes the tax: net + tax = what was paid
    tax_label: str = Field(default="Tax", min_length=1, max_length=20)  # the tax line's name: GST, VAT
    tax_indian_gst: bool = False  # CGST+SGST within SELLER_STATE, IGST otherwise (needs SELLER_COUNTRY=IND)
    statement_delay_seconds: int = Field(default=900, ge=0, le=7 * 86400)  # a month's statement waits this

    @field_validator("seller_tax_id", "seller_state", "seller_email", "seller_country", mode="before")
    @classmethod
    def _optional_seller_text(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value  # `SELLER_TAX_ID=`: unset

    @field_validator("tax_indian_gst")
    @classmethod
    def _indian_gst(cls, value: bool, info: ValidationInfo) -> bool:
        from walletsvc.domain.tax import INDIA, gst_state_code

        if value and (
            info.data.get("seller_country") != INDIA or gst_state_code(info.data.get("seller_state")) is None
        ):
            raise PydanticCustomError(
                "bad_gst_setting",
                "TAX_INDIAN_GST needs SELLER_COUNTRY=IND and SELLER_STATE set to an Indian state (KA or 29)",
            )
        return value

    # Auto top-up (docs/auto-topup.md). Waits after a declined auto top-up, one per consecutive decline.
    auto_topup_retry_backoff_seconds: str = "3600,21600"
    # After this many declines in a row auto top-up switches itself off (auto_topup.disabled).
    auto_topup_max_consecutive_failures: int = Field(default=3, ge=1, le=20)
    # The runaway guard, whatever a tenant's settings say: more auto top-ups than this in an hour are refused.
    auto_topup_max_per_hour: int = Field(default=3, ge=1, le=100)
    # The portal page where a customer confirms a 3-D Secure auto top-up (unset: PORTAL_SUCCESS_URL).
    auto_topup_confirm_url: str | None = None
    # A 3-D Secure auto top-up the customer has not confirmed after this long is canceled (a failure).
    auto_topup_action_timeout_seconds: int = Field(default=48 * 3600, ge=600, le=30 * 24 * 3600)
    # INR tenants with no mandate get a Razorpay Payment Link instead; it expires after this long.
    auto_topup_payment_link_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=1800, le=180 * 24 * 3600)

    # INR auto top-up through a Razorpay recurring mandate (card or UPI AutoPay): the most one debit may
    # take (RBI's e-mandate limit without the customer's extra authentication is Rs 15,000), and what the
    # authorization payment charges (credited to the wallet like any top-up).
    razorpay_mandate_max_amount: int = Field(default=1_500_000, ge=100, le=10**12)
    razorpay_mandate_auth_amount: int = Field(default=100, ge=100, le=1_000_000)

    def auto_topup_policy(self) -> AutoTopupPolicy:
        """The decline path's limits, built once per process (app state, worker) and passed along."""
        return AutoTopupPolicy(
            max_consecutive_failures=self.auto_topup_max_consecutive_failures,
            retry_backoff=parse_backoff(self.auto_topup_retry_backoff_seconds),
        )

    @field_validator("auto_topup_retry_backoff_seconds")
    @classmethod
    def _auto_topup_backoff(cls, value: str) -> str:
        from walletsvc.domain.auto_topup import parse_backoff

        try:
            parse_backoff(value)
        except ValueError as exc:
            raise PydanticCustomError(
                "bad_auto_topup_backoff", "AUTO_TOPUP_RETRY_BACKOFF_SECONDS: {problem}", {"problem": str(exc)}
            ) from exc
        return value


# HS256 keys: RFC 7518 section 3.2 asks for a key at least as long as the hash output (256 bits).
MIN_JWT_SECRET_BYTES = 32
# Text found in example files and tutorials, never in a secret someone generated.
_PLACEHOLDERS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "replace_me", "your-secret")
_MAKE_ONE = "make one with: python3 -c 'import secrets; print(secrets.token_hex(32))'"
_MIN_RSA_BITS = 2048


def check_jwt_secret(secret: str) -> str | None:
    """Why this HS256 secret must not be used (anyone who guesses it can sign a super_admin token),
    or None. Never says the secret itself."""
    size = len(secret.encode())
    lowered = secret.lower()
    marker = next((p for p in _PLACEHOLDERS if p in lowered), None)
    if marker is not None:
        return f"is a placeholder (it contains {marker!r}), not a secret; {_MAKE_ONE}"
    if size < MIN_JWT_SECRET_BYTES:
        return (
            f"is {size} byte{'s' if size != 1 else ''}; an HS256 secret needs at least "
            f"{MIN_JWT_SECRET_BYTES} random bytes; {_MAKE_ONE}"
        )
    if len(set(secret)) < 8:
        return f"uses only {len(set(secret))} distinct characters, so it is easy to guess; {_MAKE_ONE}"
    return None


def check_jwt_public_key(pem: str) -> str | None:
    """Why this RS256 key cannot verify tokens, or None."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        return (
            "is not a PEM public key (RS256 verifies tokens with the identity provider's public key: "
            "-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----)"
        )
    if not isinstance(key, rsa.RSAPublicKey):
        return "is not an RSA key; RS256 tokens are verified with an RSA public key"
    if key.key_size < _MIN_RSA_BITS:
        return f"is a {key.key_size}-bit RSA key; RS256 needs at least {_MIN_RSA_BITS} bits"
    return None


def parse_origins(value: Any) -> list[str]:
    """CORS_ALLOWED_ORIGINS: each `scheme://host[:port]`, as a browser sends it in `Origin` (lower-case,
    no default port, no path). Anything that could never match, or would match everyone, is refused."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    origins: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if "*" in text:
            raise ValueError(
                "CORS_ALLOWED_ORIGINS may not contain `*`: browser portals send credentials, so name "
                "each origin, e.g. CORS_ALLOWED_ORIGINS=https://portal.example"
            )
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"CORS_ALLOWED_ORIGINS: {text!r} has an invalid port") from exc
        if (
            parts.scheme.lower() not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                f"CORS_ALLOWED_ORIGINS: {text!r} is not an origin; write scheme://host[:port], "
                "e.g. https://portal.example"
            )
        scheme, host = parts.scheme.lower(), parts.hostname.lower()
        host = f"[{host}]" if ":" in host else host
        default = {"http": 80, "https": 443}[scheme]
        origin = f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"
        if origin not in origins:
            origins.append(origin)
    return origins


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
