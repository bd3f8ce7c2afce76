"""Webhook endpoints, managed by admins: register (the signing secret is answered once), change, rotate the
secret (the previous one keeps signing for WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS), disable, delete.

Secrets are encrypted at rest with Fernet under WEBHOOK_SECRETS_KEY (see `load_secret_box`)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from walletsvc.db.embedded import is_embedded_url
from walletsvc.db.repositories.webhook_endpoints import WebhookDeliveryRepository, WebhookEndpointRepository
from walletsvc.domain import webhooks as rules
from walletsvc.domain.errors import NotFound, WebhookSecretsNotConfigured, WebhookUrlNotAllowed
from walletsvc.domain.webhooks import EndpointRecord

log = logging.getLogger(__name__)

KEY_FILE_NAME = "webhook-secrets.key"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
_SECRET_BYTES = 32
_RESOLVE_TIMEOUT = 3.0


class SecretBox:
    """Encrypts and decrypts endpoint signing secrets (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, key: bytes, *, source: str) -> None:
        self._fernet = Fernet(key)
        self.source = source

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, ciphertext: bytes) -> str:
        """The secret, or WebhookSecretsNotConfigured when this key did not encrypt it."""
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise WebhookSecretsNotConfigured(
                "an endpoint's signing secret cannot be decrypted with WEBHOOK_SECRETS_KEY (was the key changed?)"
            ) from exc


def load_secret_box(key: str, *, database_url: str, data_dir: Path) -> SecretBox | None:
    """The key from WEBHOOK_SECRETS_KEY; with the embedded database (no DATABASE_URL, or the embedded
    server's own URL as `serve` hands it to its worker) and no key, one made once in DATA_DIR (mode 0600)
    and shared by the API and the worker; else None (endpoints answer 503). Empty strings mean unset."""
    if key.strip():
        return SecretBox(key.strip().encode(), source="WEBHOOK_SECRETS_KEY")
    if database_url and not is_embedded_url(database_url, data_dir):
        return None
    path = data_dir / KEY_FILE_NAME
    return SecretBox(_key_file(path), source=str(path))


def _key_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name, then linked into place: two processes starting together
        # (serve --with-worker) end up with the same key, never a half-written one.
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, Fernet.generate_key() + b"\n")
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    return path.read_bytes().strip()


def require_box(box: SecretBox | None) -> SecretBox:
    if box is None:
        raise WebhookSecretsNotConfigured(
            "webhook endpoint secrets are encrypted at rest, and WEBHOOK_SECRETS_KEY is not set; make one "
            "with: python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    return box


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def new_endpoint_id() -> str:
    # Sortable by creation (the list is paged by id): milliseconds, then randomness.
    return f"whe_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses ([] when it does not resolve)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=_RESOLVE_TIMEOUT
        )
    except (OSError, TimeoutError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, or WebhookUrlNotAllowed. A host name must resolve, and only to public addresses (every
    delivery resolves and checks it again: what it resolves to may change)."""
    try:
        parsed = rules.parse_endpoint_url(url, allow_private=allow_private)
    except ValueError as exc:
        raise WebhookUrlNotAllowed(str(exc)) from exc
    if not allow_private and rules.blocked_address(parsed.host) is not None:
        reason = rules.blocked_resolution(await resolve(parsed.host, parsed.port))
        if reason is not None:
            raise WebhookUrlNotAllowed(f"the URL's host {parsed.host} {reason}")
    return url


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    record: EndpointRecord
    secret: str


class WebhookEndpoints:
    def __init__(
        self,
        session: AsyncSession,
        box: SecretBox | None,
        *,
        allow_private_urls: bool,
        rotation_overlap_seconds: int,
    ) -> None:
        self.session = session
        self.box = box
        self.allow_private_urls = allow_private_urls  # WEBHOOK_ALLOW_PRIVATE_URLS
        self.rotation_overlap_seconds = rotation_overlap_seconds  # WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS
        self.repo = WebhookEndpointRepository(session)

    async def create(
        self,
        *,
        url: str,
        event_types: list[str],
        tenant_id: str | None,
        description: str,
        enabled: bool,
        created_by: str,
    ) -> CreatedEndpoint:
        box = require_box(self.box)
        await check_url(url, allow_private=self.allow_private_urls)
        secret = new_secret()
        record = await self.repo.insert(
            id=new_endpoint_id(),
            tenant_id=tenant_id,
            url=url,
            description=description,
            event_types=sorted(set(event_types)),
            enabled=enabled,
            secret_ciphertext=box.seal(secret),
            created_by=created_by,
        )
        log.info("webhook endpoint created", extra={"endpoint_id": record.id})
        return CreatedEndpoint(record=record, secret=secret)

    async def get(self, endpoint_id: str, *, for_update: bool = False) -> EndpointRecord:
        record = await self.repo.get(endpoint_id, for_update=for_update)
        if record is None:
            raise NotFound("webhook endpoint", endpoint_id)
        return record

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: list[str] | None = None,
        tenant_id: str | None = None,
        set_tenant: bool = False,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> EndpointRecord:
        current = await self.get(endpoint_id, for_update=True)
        changes: dict[str, object] = {}
        if url is not None:
            changes["url"] = await check_url(url, allow_private=self.allow_private_urls)
        if event_types is not None:
            changes["event_types"] = sorted(set(event_types))
        if set_tenant:
            changes["tenant_id"] = tenant_id
        if description is not None:
            changes["description"] = description
        if enabled is True and not current.enabled:
            changes.update(enabled=True, disabled_reason=None, disabled_at=None, failing_since=None)
        elif enabled is False and current.enabled:
            changes.update(
                enabled=False, disabled_reason="disabled by an admin", disabled_at=datetime.now(UTC)
            )
            await WebhookDeliveryRepository(self.session).cancel_pending_of(endpoint_id)
        if not changes:
            return current
        return await self.repo.update(endpoint_id, **changes)

    async def rotate_secret(self, endpoint_id: str) -> CreatedEndpoint:
        box = require_box(self.box)
        current = await self.get(endpoint_id, for_update=True)
        overlap = self.rotation_overlap_seconds
        secret = new_secret()
        record = await self.repo.update(
            endpoint_id,
            secret_ciphertext=box.seal(secret),
            previous_secret_ciphertext=current.secret_ciphertext if overlap > 0 else None,
            previous_secret_expires_at=datetime.now(UTC) + timedelta(seconds=overlap)
            if overlap > 0
            else None,
        )
        log.info("webhook endpoint secret rotated", extra={"endpoint_id": endpoint_id})
        return CreatedEndpoint(record=record, secret=secret)

    async def delete(self, endpoint_id: str) -> EndpointRecord:
        record = await self.get(endpoint_id, for_update=True)
        await WebhookDeliveryRepository(self.session).cancel_pending_of(endpoint_id)
        await self.repo.delete(endpoint_id)
        log.info("webhook endpoint deleted", extra={"endpoint_id": endpoint_id})
        return record

    async def page(
        self, *, tenant_id: str | None, after: str | None, limit: int
    ) -> tuple[list[EndpointRecord], str | None]:
        return await self.repo.page(tenant_id=tenant_id, after=after, limit=limit)


def signing_secrets(record: EndpointRecord, box: SecretBox, *, now: datetime) -> list[str]:
    """The secrets a delivery is signed with: the current one, and the previous one during its overlap."""
    found = [box.open(record.secret_ciphertext)]
    if (
        record.previous_secret_ciphertext
        and record.previous_secret_expires_at is not None
        and record.previous_secret_expires_at > now
    ):
        found.append(box.open(record.previous_secret_ciphertext))
    return found
