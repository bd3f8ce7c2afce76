"""Turning a bearer credential into a Principal: portal JWTs and hashed, scoped API keys."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.repositories.api_keys import ApiKeyRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.domain.access import ROLE_SCOPES, ApiKeyRecord, Principal, Role, Scope, validate_key_scopes
from walletsvc.domain.errors import Unauthorized

API_KEY_PREFIX = "wsk_"
# What create_api_key makes: 16 hex digits of id, then token_urlsafe(32). Anything else is refused before
# the database is asked (a NUL in the id would make PostgreSQL fail, not answer "no such key").
_API_KEY = re.compile(r"wsk_([0-9a-f]{16})_([A-Za-z0-9_-]{1,128})")
# A claim is copied into ledger rows, audit fields and queries: text PostgreSQL can hold, of a sane size.
_MAX_SUBJECT = 255
_MAX_TENANT_ID = 64


def hash_secret(secret: str) -> bytes:
    # The secret is 256 random bits: a fast digest is enough, a slow KDF would only slow every request.
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class NewApiKey:
    record: ApiKeyRecord
    key: str  # shown once, never stored


async def create_api_key(
    session: AsyncSession, *, scopes: frozenset[Scope], tenant_id: str | None, name: str, created_by: str
) -> NewApiKey:
    validate_key_scopes(scopes, tenant_id)
    if tenant_id is not None:
        await TenantRepository(session).get(tenant_id)  # NotFound for an unknown tenant
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = await ApiKeyRepository(session).add(
        key_id=key_id,
        tenant_id=tenant_id,
        name=name,
        secret_hash=hash_secret(secret),
        scopes=scopes,
        created_by=created_by,
    )
    return NewApiKey(record=record, key=f"{API_KEY_PREFIX}{key_id}_{secret}")


async def revoke_api_key(session: AsyncSession, key_id: str) -> ApiKeyRecord:
    """Revoke a key (again: no change). Callers also `Authenticator.forget` it in their process."""
    return await ApiKeyRepository(session).revoke(key_id)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """What authentication reads from the settings (JWT_*, API_KEY_CACHE_SECONDS), built once per process
    (service_config.auth_config)."""

    jwt_algorithm: str | None  # "HS256" (JWT_SECRET), "RS256" (JWT_PUBLIC_KEY), None: no portal tokens
    jwt_key: str | None = field(repr=False)  # the HS256 secret or the RS256 public key (PEM)
    jwt_audience: str | None
    jwt_issuer: str | None
    jwt_leeway_seconds: int
    jwt_max_lifetime_seconds: int
    api_key_cache_seconds: float


class Authenticator:
    def __init__(self, config: AuthConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        # Telephony sends every charge with the same key: remember a verified key for a few seconds
        # instead of reading it from the database on every request. A revocation reaches this process
        # at once (forget) and other processes within API_KEY_CACHE_SECONDS.
        self._keys: dict[bytes, tuple[Principal, float]] = {}
        # A key being read now, by digest: the requests that arrive meanwhile (every in-flight charge,
        # when a busy key's cache entry runs out) wait for that one read instead of each taking a
        # pooled connection for the same row.
        self._reading: dict[bytes, asyncio.Future[Principal]] = {}
        self._algorithms = [config.jwt_algorithm] if config.jwt_algorithm is not None else []

    @property
    def jwt_algorithm(self) -> str | None:
        """HS256, RS256, or None when portal tokens are not accepted at all."""
        return self.config.jwt_algorithm

    def describe(self) -> str:
        """The auth modes that are on, for the start-up log: never a secret or a key."""
        c = self.config
        if self.jwt_algorithm is None:
            portal = "none (neither JWT_SECRET nor JWT_PUBLIC_KEY is set: every portal token is refused)"
        else:
            source = "JWT_SECRET" if self.jwt_algorithm == "HS256" else "JWT_PUBLIC_KEY"
            checks = [
                f"aud must be {c.jwt_audience!r}" if c.jwt_audience else "tokens naming an aud refused",
                f"iss must be {c.jwt_issuer!r}" if c.jwt_issuer else "iss not checked",
                f"lifetime at most {c.jwt_max_lifetime_seconds} s",
                f"leeway {c.jwt_leeway_seconds} s",
            ]
            portal = f"{self.jwt_algorithm} JWT ({source}; {', '.join(checks)})"
        return f"portal tokens: {portal}; API keys (wsk_...): on"

    async def authenticate(self, session: AsyncSession, token: str) -> Principal:
        if token.startswith(API_KEY_PREFIX):
            return await self._cached_api_key(session, token)
        return self._jwt(token)

    def known(self, token: str) -> Principal | None:
        """The principal, if it can be told without the database: a JWT, or an API key verified within
        API_KEY_CACHE_SECONDS. None means: call authenticate with a session."""
        if not token.startswith(API_KEY_PREFIX):
            return self._jwt(token)
        cached = self._keys.get(hash_secret(token))
        return cached[0] if cached is not None and cached[1] > self.clock() else None

    async def _cached_api_key(self, session: AsyncSession, token: str) -> Principal:
        digest = hash_secret(token)
        cached = self._keys.get(digest)
        if cached is not None and cached[1] > self.clock():
            return cached[0]
        reading = self._reading.get(digest)
        if reading is not None:
            try:
                return await asyncio.shield(reading)  # its answer, or its refusal, is ours too
            except asyncio.CancelledError:
                if not reading.cancelled():
                    raise  # this request was cancelled
                # The request reading it was cancelled: read it here.
        now = self.clock()
        future = asyncio.get_running_loop().create_future()
        self._reading[digest] = future
        try:
            principal = await self._api_key(session, token)
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            else:
                future.cancel()
            raise
        finally:
            if self._reading.get(digest) is future:
                del self._reading[digest]
        future.set_result(principal)
        ttl = self.config.api_key_cache_seconds
        if ttl > 0:
            if len(self._keys) > 10_000:  # bounded: drop everything rather than grow without end
                self._keys.clear()
            self._keys[digest] = (principal, now + ttl)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache at once (it was revoked here)."""
        for digest, (principal, _) in list(self._keys.items()):
            if principal.subject == key_id:
                del self._keys[digest]

    def _jwt(self, token: str) -> Principal:
        config = self.config
        if config.jwt_key is None:
            raise Unauthorized("portal tokens are not accepted: neither JWT_SECRET nor JWT_PUBLIC_KEY is set")
        try:
            # The algorithm list is ours, never the token's: `alg: none` and HS/RS confusion are refused.
            # With no JWT_AUDIENCE, PyJWT refuses a token that names an audience: it is for someone else.
            claims = jwt.decode(
                token,
                config.jwt_key,
                algorithms=self._algorithms,
                audience=config.jwt_audience or None,
                issuer=config.jwt_issuer or None,
                leeway=config.jwt_leeway_seconds,
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the token has no {exc.claim} claim") from exc
        except jwt.InvalidAudienceError as exc:
            if config.jwt_audience:
                raise Unauthorized("the token's audience (aud) is not this service") from exc
            raise Unauthorized(
                "the token names an audience (aud) and this service expects none (JWT_AUDIENCE is unset)"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized("the token's issuer (iss) is not the one this service trusts") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized("the token is not valid yet (iat or nbf is in the future)") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("the token is not valid") from exc
        self._check_lifetime(claims)
        subject = _text_claim(claims, "sub", _MAX_SUBJECT)
        try:
            role = Role(_text_claim(claims, "role", _MAX_SUBJECT))
        except ValueError as exc:
            raise Unauthorized("the token's role is not one walletsvc knows") from exc
        tenant_id = None
        if claims.get("tenant_id") not in (None, ""):
            tenant_id = _text_claim(claims, "tenant_id", _MAX_TENANT_ID)
        if role is not Role.SUPER_ADMIN and not tenant_id:
            raise Unauthorized("the token names no tenant_id")
        return Principal(
            kind="user",
            subject=subject,
            tenant_id=tenant_id,
            scopes=ROLE_SCOPES[role],
            role=role,
        )

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """Refuse a token that lives longer than JWT_MAX_LIFETIME_SECONDS: exp - iat, or, with no iat,
        exp - now (give or take the leeway for the issuer's clock)."""
        limit = self.config.jwt_max_lifetime_seconds
        expires = _numeric_claim(claims, "exp")
        if claims.get("iat") is not None:
            lifetime = expires - _numeric_claim(claims, "iat")
        else:
            lifetime = expires - time.time() - self.config.jwt_leeway_seconds
        if lifetime > limit:
            raise Unauthorized(
                f"the token lives longer than {limit} s (JWT_MAX_LIFETIME_SECONDS); ask for one that expires sooner"
            )

    @staticmethod
    async def _api_key(session: AsyncSession, token: str) -> Principal:
        shape = _API_KEY.fullmatch(token)
        key_id, secret = shape.groups() if shape is not None else ("", "")
        record = await ApiKeyRepository(session).find(key_id) if key_id else None
        # Compare a digest even when the key is unknown, so timing does not tell which ids exist.
        expected = record.secret_hash if record is not None else hash_secret("")
        if not hmac.compare_digest(expected, hash_secret(secret)) or record is None:
            raise Unauthorized("the API key is not valid")
        if record.revoked_at is not None:
            raise Unauthorized("the API key has been revoked")
        return Principal(kind="api_key", subject=record.id, tenant_id=record.tenant_id, scopes=record.scopes)


def _numeric_claim(claims: dict[str, Any], name: str) -> float:
    """A NumericDate claim (RFC 7519): a JSON number of seconds. PyJWT lets a string of digits through."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"the token's {name} must be a number of seconds since the epoch")
    return float(value)


def _text_claim(claims: dict[str, Any], name: str, max_length: int) -> str:
    """A claim that must be printable text: not empty, no NUL or other control character, not absurdly long."""
    value = claims.get(name)
    if not isinstance(value, str) or not value or not value.isprintable() or len(value) > max_length:
        raise Unauthorized(f"the token's {name} must be printable text of at most {max_length} characters")
    return value
