"""Settings that cannot be weak: JWT secrets and keys refused at start with a line that says what to do,
token lifetime, audience and issuer checks, the provider settings a 503 names, the pinned Stripe API
version, and CORS parsing left as it was. No database: the Authenticator is asked directly."""

from __future__ import annotations

import secrets
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import stripe
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr, ValidationError

from walletsvc.cli_errors import settings_problem
from walletsvc.config import MIN_JWT_SECRET_BYTES, Settings, check_jwt_secret
from walletsvc.domain.access import Role
from walletsvc.domain.errors import ProviderNotConfigured, Unauthorized
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind
from walletsvc.gateway_config import build_gateways, setting_warnings
from walletsvc.providers.stripe_gateway import STRIPE_API_VERSION
from walletsvc.service_config import auth_config
from walletsvc.services.auth import Authenticator

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
GOOD_SECRET = secrets.token_hex(32)


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, **kw)


def refusal(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    """The one line the CLI prints for these settings."""
    return settings_problem(exc.value).message


# --- JWT_SECRET ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        pytest.param("x", "is 1 byte;", id="one-byte"),
        pytest.param(secrets.token_hex(15) + "a", "is 31 bytes;", id="31-bytes"),
        pytest.param("change-me", "placeholder (it contains 'change-me')", id="env-example"),
        pytest.param("CHANGE-ME", "placeholder", id="upper-case"),
        # README's first session used to export this one: long enough, still a placeholder.
        pytest.param("dev-secret-change-me-0123456789abcdef", "placeholder", id="long-placeholder"),
        pytest.param("changeme" + secrets.token_hex(16), "placeholder (it contains 'changeme')", id="prefix"),
        pytest.param("x" * 64, "only 1 distinct characters", id="repeated"),
        pytest.param("ab" * 20, "only 2 distinct characters", id="pattern"),
    ],
)
def test_weak_jwt_secrets_refuse_to_start_with_one_line_saying_what_to_do(secret: str, why: str) -> None:
    with pytest.raises(ValidationError) as exc:
        settings(jwt_secret=secret)
    message = refusal(exc)
    assert message.startswith("JWT_SECRET: "), message
    assert why in message
    assert "secrets.token_hex(32)" in message  # how to make a good one
    assert "\n" not in message
    if len(secret) > 10:  # the secret itself is never said (a short one is a substring of the advice)
        assert secret not in message
        assert secret not in str(exc.value)  # nor in the traceback of a process that did not catch it


def test_a_strong_secret_is_accepted_and_32_bytes_is_the_floor() -> None:
    assert settings(jwt_secret=GOOD_SECRET).jwt_secret == SecretStr(GOOD_SECRET)
    floor = secrets.token_hex(MIN_JWT_SECRET_BYTES // 2)  # 32 hex characters: 32 bytes, 128 bits
    assert len(floor.encode()) == MIN_JWT_SECRET_BYTES
    assert check_jwt_secret(floor) is None
    assert check_jwt_secret(floor[:-1]) is not None
    # Bytes, not characters: eleven 3-byte characters are 33 bytes, ten are 30.
    symbols = "€₹₩₽฿₫₴₦₲₱₡"
    assert check_jwt_secret(symbols) is None
    assert check_jwt_secret(symbols[:10]) == check_jwt_secret("x" * 30)


@pytest.mark.parametrize("empty", ["", None])
def test_no_jwt_secret_is_no_portal_tokens_not_a_refusal(empty: str | None) -> None:
    config = settings(jwt_secret=empty)
    assert config.jwt_secret is None
    authenticator = Authenticator(auth_config(config))
    assert authenticator.jwt_algorithm is None
    with pytest.raises(Unauthorized, match="neither JWT_SECRET nor JWT_PUBLIC_KEY"):
        authenticator.known(jwt.encode({"sub": "a", "role": "super_admin", "exp": 2**31}, GOOD_SECRET))


def test_a_weak_secret_that_skipped_validation_still_cannot_sign_tokens() -> None:
    bypassed = settings(jwt_secret=GOOD_SECRET).model_copy(update={"jwt_secret": SecretStr("x")})
    with pytest.raises(ValueError, match="JWT_SECRET is 1 byte"):
        Authenticator(auth_config(bypassed))


def test_weak_secret_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "change-me")
    with pytest.raises(ValidationError) as exc:
        Settings(_env_file=None)
    assert refusal(exc).startswith("JWT_SECRET: is a placeholder")


# --- JWT_PUBLIC_KEY --------------------------------------------------------------------------------


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_an_rsa_public_key_is_accepted_also_on_one_line(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = _pem(rsa_key)
    assert settings(jwt_public_key=pem).jwt_public_key == SecretStr(pem.strip())
    one_line = settings(jwt_public_key=pem.strip().replace("\n", "\\n"))  # as an env file may hold it
    assert one_line.jwt_public_key == SecretStr(pem.strip())
    token = jwt.encode(
        {"sub": "u-1", "role": "super_admin", "exp": int(time.time()) + 60}, rsa_key, algorithm="RS256"
    )
    principal = Authenticator(auth_config(one_line)).known(token)
    assert principal is not None
    assert principal.role is Role.SUPER_ADMIN


@pytest.mark.parametrize(
    ("make", "why"),
    [
        pytest.param(lambda: "-----BEGIN PUBLIC KEY-----", "is not a PEM public key", id="truncated"),
        pytest.param(lambda: "ssh-rsa AAAAB3NzaC1yc2E", "is not a PEM public key", id="ssh-key"),
        pytest.param(lambda: _pem(ec.generate_private_key(ec.SECP256R1())), "is not an RSA key", id="ec-key"),
        pytest.param(
            lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 - the weak key refused
            "is a 1024-bit RSA key; RS256 needs at least 2048 bits",
            id="1024-bits",
        ),
    ],
)
def test_an_unusable_public_key_refuses_to_start(make: Any, why: str) -> None:
    with pytest.raises(ValidationError) as exc:
        settings(jwt_public_key=make())
    message = refusal(exc)
    assert message.startswith("JWT_PUBLIC_KEY: "), message
    assert why in message
    assert "RS256" in message


def test_secret_and_public_key_together_refuse_to_start(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValidationError) as exc:
        settings(jwt_secret=GOOD_SECRET, jwt_public_key=_pem(rsa_key))
    message = refusal(exc)
    assert message.startswith("JWT_PUBLIC_KEY: JWT_SECRET is set too"), message
    assert "unset one of them" in message
    assert GOOD_SECRET not in message


# --- token lifetime, audience, issuer --------------------------------------------------------------


def token(**claims: Any) -> str:
    payload: dict[str, Any] = {"sub": "u-1", "role": "owner", "tenant_id": "acme"}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, GOOD_SECRET, algorithm="HS256")


def accepts(config: Settings, encoded: str) -> bool:
    try:
        Authenticator(auth_config(config)).known(encoded)
    except Unauthorized:
        return False
    return True


def test_the_default_maximum_lifetime_is_a_day() -> None:
    assert settings().jwt_max_lifetime_seconds == 24 * 3600
    with pytest.raises(ValidationError):
        settings(jwt_max_lifetime_seconds=0)


def test_a_token_living_longer_than_the_maximum_is_refused_by_exp_minus_iat() -> None:
    config = settings(jwt_secret=GOOD_SECRET, jwt_max_lifetime_seconds=3600)
    now = int(time.time())
    assert accepts(config, token(iat=now, exp=now + 3600))
    assert not accepts(config, token(iat=now, exp=now + 3601))
    # Issued long ago for a year: refused, however much of it is left.
    assert not accepts(config, token(iat=now - 300 * 86400, exp=now + 65 * 86400))
    with pytest.raises(Unauthorized, match=r"longer than 3600 s \(JWT_MAX_LIFETIME_SECONDS\)"):
        Authenticator(auth_config(config)).known(token(iat=now, exp=now + 7200))


def test_without_iat_the_lifetime_is_what_is_left_give_or_take_the_leeway() -> None:
    config = settings(jwt_secret=GOOD_SECRET, jwt_max_lifetime_seconds=3600, jwt_leeway_seconds=30)
    now = int(time.time())
    assert accepts(config, token(exp=now + 3600))
    assert accepts(config, token(exp=now + 3620))  # the issuer's clock a little ahead
    assert not accepts(config, token(exp=now + 3700))
    assert not accepts(config, token(exp=now + 10 * 365 * 86400))


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_a_time_claim_must_be_a_number(claim: str) -> None:
    config = settings(jwt_secret=GOOD_SECRET)
    now = int(time.time())
    claims: dict[str, Any] = {"iat": now, "exp": now + 60}
    claims[claim] = str(claims[claim])  # PyJWT itself lets a string of digits through
    with pytest.raises(Unauthorized, match=f"the token's {claim} must be a number"):
        Authenticator(auth_config(config)).known(token(**claims))


def test_audience_and_issuer_are_checked_when_set() -> None:
    config = settings(jwt_secret=GOOD_SECRET, jwt_audience="walletsvc", jwt_issuer="https://id.example")
    exp = int(time.time()) + 600
    good: dict[str, Any] = {"aud": "walletsvc", "iss": "https://id.example", "exp": exp}
    assert accepts(config, token(**good))
    assert accepts(config, token(**{**good, "aud": ["other", "walletsvc"]}))
    cases = [
        ({**good, "aud": "billing"}, r"audience \(aud\) is not this service"),
        ({**good, "aud": None}, "has no aud claim"),
        ({**good, "iss": "https://evil.example"}, r"issuer \(iss\) is not the one"),
        ({**good, "iss": None}, "has no iss claim"),
    ]
    for claims, why in cases:
        with pytest.raises(Unauthorized, match=why):
            Authenticator(auth_config(config)).known(token(**claims))


def test_without_an_audience_set_a_token_for_another_audience_is_refused() -> None:
    config = settings(jwt_secret=GOOD_SECRET)
    exp = int(time.time()) + 600
    assert accepts(config, token(exp=exp))
    assert accepts(config, token(exp=exp, iss="anyone"))  # no JWT_ISSUER: not checked
    with pytest.raises(Unauthorized, match=r"names an audience \(aud\).*JWT_AUDIENCE is unset"):
        Authenticator(auth_config(config)).known(token(exp=exp, aud="some-other-api"))


@pytest.mark.parametrize("field", ["jwt_audience", "jwt_issuer"])
def test_an_empty_audience_or_issuer_is_not_checked(field: str) -> None:
    assert getattr(settings(**{field: "  "}), field) is None
    assert getattr(settings(**{field: " walletsvc "}), field) == "walletsvc"


def test_the_leeway_is_bounded() -> None:
    with pytest.raises(ValidationError):
        settings(jwt_leeway_seconds=3600)


# --- what the start-up line says -------------------------------------------------------------------


def test_the_startup_line_names_the_auth_mode_and_its_checks_never_the_secret(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    hs = Authenticator(auth_config(settings(jwt_secret=GOOD_SECRET, jwt_audience="walletsvc"))).describe()
    assert hs.startswith("portal tokens: HS256 JWT (JWT_SECRET; aud must be 'walletsvc', iss not checked")
    assert "lifetime at most 86400 s" in hs
    assert hs.endswith("API keys (wsk_...): on")
    assert GOOD_SECRET not in hs

    rs = Authenticator(
        auth_config(settings(jwt_public_key=_pem(rsa_key), jwt_issuer="https://id.example"))
    ).describe()
    assert rs.startswith("portal tokens: RS256 JWT (JWT_PUBLIC_KEY; tokens naming an aud refused")
    assert "iss must be 'https://id.example'" in rs
    assert "BEGIN PUBLIC KEY" not in rs

    none = Authenticator(auth_config(settings())).describe()
    assert none.startswith("portal tokens: none (neither JWT_SECRET nor JWT_PUBLIC_KEY is set")
    assert none.endswith("API keys (wsk_...): on")


# --- providers: what a 503 names, what the start-up warns about -------------------------------------


def test_unconfigured_providers_name_the_settings_to_set() -> None:
    gateways = build_gateways(settings(razorpay_key_id="rzp_test_abc"))
    with pytest.raises(ProviderNotConfigured) as stripe_refusal:
        gateways.get(ProviderName.STRIPE)
    assert stripe_refusal.value.settings == ("STRIPE_SECRET_KEY",)
    assert "set STRIPE_SECRET_KEY (sk_test_... or sk_live_...)" in stripe_refusal.value.detail
    with pytest.raises(ProviderNotConfigured) as razorpay_refusal:
        gateways.get(ProviderName.RAZORPAY)
    assert razorpay_refusal.value.settings == ("RAZORPAY_KEY_SECRET",)  # the key id is set
    with pytest.raises(ProviderNotConfigured) as hook:
        gateways.stripe_webhook_secrets_or_refuse()
    assert hook.value.settings == ("STRIPE_WEBHOOK_SECRET",)
    assert "whsec_" in hook.value.detail
    with pytest.raises(ProviderNotConfigured) as razorpay_hook:
        gateways.razorpay_webhook_secret_or_refuse()
    assert razorpay_hook.value.settings == ("RAZORPAY_WEBHOOK_SECRET",)
    nothing = build_gateways(settings())
    with pytest.raises(ProviderNotConfigured) as both:
        nothing.razorpay_or_refuse()
    assert both.value.settings == ("RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET")
    assert "set RAZORPAY_KEY_ID (rzp_test_... or rzp_live_...) and RAZORPAY_KEY_SECRET" in both.value.detail


def test_a_client_secret_checkout_is_refused_up_front_without_the_publishable_key() -> None:
    gateways = build_gateways(settings(stripe_secret_key="sk_test_" + uuid.uuid4().hex))
    assert gateways.checkout_gateway(ProviderName.STRIPE, CheckoutKind.REDIRECT) is gateways.stripe
    with pytest.raises(ProviderNotConfigured) as refused:
        gateways.checkout_gateway(ProviderName.STRIPE, CheckoutKind.CLIENT_SECRET)
    assert refused.value.settings == ("STRIPE_PUBLISHABLE_KEY",)
    assert "pk_test_... or pk_live_..." in refused.value.detail


def test_start_up_warns_of_half_set_or_misshapen_provider_settings() -> None:
    secret_value = "pk_test_" + uuid.uuid4().hex  # a publishable key pasted as the secret key
    warnings = setting_warnings(
        settings(
            stripe_secret_key=secret_value,
            stripe_webhook_secret="not-a-whsec",
            razorpay_key_id="rzp_test_abc",
        )
    )
    text = "\n".join(warnings)
    assert "STRIPE_SECRET_KEY does not look like one (sk_test_... or sk_live_...)" in text
    assert "STRIPE_WEBHOOK_SECRET does not look like one" in text
    assert "STRIPE_PUBLISHABLE_KEY is not set: client_secret (Stripe Elements) top-ups answer 503" in text
    assert "RAZORPAY_KEY_SECRET is not set, so Razorpay is off" in text
    assert secret_value not in text
    assert "not-a-whsec" not in text
    configured = settings(
        stripe_secret_key="sk_test_" + uuid.uuid4().hex,
        stripe_publishable_key="pk_test_" + uuid.uuid4().hex,
        stripe_webhook_secret="whsec_a,whsec_b",
        razorpay_key_id="rzp_test_abc",
        razorpay_key_secret=uuid.uuid4().hex,
        razorpay_webhook_secret=uuid.uuid4().hex,
    )
    assert setting_warnings(configured) == []


# --- Stripe API version ----------------------------------------------------------------------------


def test_the_pinned_stripe_api_version_is_the_one_the_installed_sdk_is_made_for() -> None:
    # Fails when the SDK is upgraded: bump STRIPE_API_VERSION (and the webhook endpoint) deliberately.
    assert stripe._api_version._ApiVersion.CURRENT == STRIPE_API_VERSION
    gateways = build_gateways(settings(stripe_secret_key="sk_test_" + uuid.uuid4().hex))
    assert gateways.stripe is not None
    assert gateways.stripe.client._requestor._options.stripe_version == STRIPE_API_VERSION


def test_env_example_parses_and_names_the_pinned_stripe_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_AUDIENCE", "JWT_ISSUER", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, env_file)
    config = Settings(_env_file=env_file)
    # Copied as is: API keys only.
    assert config.jwt_secret is None
    assert config.jwt_public_key is None
    assert config.jwt_max_lifetime_seconds == 24 * 3600
    text = ENV_EXAMPLE.read_text()
    assert STRIPE_API_VERSION in text
    for route in ("/v1/webhooks/stripe", "/v1/webhooks/razorpay"):
        assert f"<PUBLIC_BASE_URL>{route}" in text
    # The placeholder a user would type over it is refused, as the file says.
    env_file.write_text(text.replace("\nJWT_SECRET=\n", "\nJWT_SECRET=change-me\n"))
    with pytest.raises(ValidationError):
        Settings(_env_file=env_file)


# --- CORS: untouched by all this -------------------------------------------------------------------


def test_cors_origins_are_parsed_as_before() -> None:
    config = settings(
        jwt_secret=GOOD_SECRET, cors_allowed_origins="https://Portal.example:443, http://localhost:3000"
    )
    assert config.cors_allowed_origins == ["https://portal.example", "http://localhost:3000"]
    with pytest.raises(ValidationError, match=r"may not contain `\*`"):
        settings(jwt_secret=GOOD_SECRET, cors_allowed_origins="*")
