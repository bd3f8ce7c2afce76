"""Outbound webhooks, the pure rules: which URLs an endpoint may have, which addresses a delivery may reach,
which events an endpoint wants, and when the next attempt is due."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

# Where the platform events (webhook_endpoint.disabled) are filed: events.tenant_id is NOT NULL, and no
# tenant id can start with `_` (TENANT_ID_PATTERN), so no tenant ever reads them on GET /v1/events.
PLATFORM_TENANT = "_platform"

# CGNAT (RFC 6598) and the other shared or special ranges `ipaddress` does not call private everywhere.
_EXTRA_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("64:ff9b:1::/48"),
)


class DeliveryStatus(StrEnum):
    """A delivery of one event to one endpoint: waiting for its next attempt, received with a 2xx,
    given up after the retry schedule, or stopped because the endpoint was disabled or deleted."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELED = "canceled"


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"  # a 2xx
    FAILED = "failed"  # another status, a timeout, a refused connection
    REFUSED = "refused"  # not sent: the URL's address is not allowed, or the secret cannot be read


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """A webhook endpoint as stored: its signing secrets only as ciphertexts."""

    id: str
    tenant_id: str | None
    url: str
    description: str
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    secret_ciphertext: bytes
    previous_secret_ciphertext: bytes | None
    previous_secret_expires_at: datetime | None
    failing_since: datetime | None
    last_success_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One event on its way to one endpoint (`status`: a DeliveryStatus value)."""

    id: int
    tenant_id: str
    event_id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of a delivery (`outcome`: an AttemptOutcome value)."""

    delivery_id: int
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    response_body: str | None
    duration_ms: int
    started_at: datetime


@dataclass(frozen=True, slots=True)
class EndpointUrl:
    url: str
    scheme: str
    host: str  # without brackets for IPv6
    port: int


def blocked_address(address: str) -> str | None:
    """Why a delivery may not go to this IP address (loopback, private, ...), or None when it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            reason = blocked_address(str(mapped))
            return f"maps to {mapped}, which {reason}" if reason else None
    for name, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return f"is a {name} address"
    if any(ip in network for network in _EXTRA_BLOCKED if network.version == ip.version):
        return "is a shared or special-purpose address (CGNAT, benchmarking, ...)"
    if not ip.is_global:
        return "is not a public address"
    return None


def parse_endpoint_url(url: str, *, allow_private: bool) -> EndpointUrl:
    """The URL an endpoint may have, or ValueError saying why not. Only https (and http when private
    URLs are allowed, for development), no credentials, no fragment; a literal IP address must be
    public unless private URLs are allowed. A host name is resolved (and checked) by the caller."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("the URL contains whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("the URL must be https:// (or http:// where WEBHOOK_ALLOW_PRIVATE_URLS is set)")
    if scheme == "http" and not allow_private:
        raise ValueError(
            "the URL must be https://; plain http is allowed only with WEBHOOK_ALLOW_PRIVATE_URLS"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("the URL may not carry credentials (user:password@)")
    if parts.fragment:
        raise ValueError("the URL may not have a #fragment")
    host = parts.hostname
    if not host:
        raise ValueError("the URL has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("the URL has an invalid port") from exc
    if port == 0:
        raise ValueError("the URL has an invalid port")
    host = host.rstrip(".").lower()
    if not host:
        raise ValueError("the URL has no host")
    if not allow_private:
        literal = _literal_ip(host)
        if literal is not None:
            reason = blocked_address(literal)
            if reason is not None:
                raise ValueError(f"the URL's host {literal} {reason}")
        elif host == "localhost" or host.endswith(".localhost"):
            raise ValueError("the URL's host is localhost")
    return EndpointUrl(url=url, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80))


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    # Spellings browsers and libc accept for IPv4: 2130706433, 0x7f.1, 0177.0.0.1 ...
    if all(_is_number_part(p) for p in host.split(".")):
        return host
    return None


def _is_number_part(part: str) -> bool:
    lowered = part.lower()
    if lowered.startswith("0x"):
        return len(lowered) > 2 and all(c in "0123456789abcdef" for c in lowered[2:])
    return part.isdigit()


def blocked_resolution(addresses: Sequence[str]) -> str | None:
    """Why a host that resolves to these addresses may not be reached (any one blocked blocks it: a
    rebinding name can answer a public address first and a private one next), or None."""
    if not addresses:
        return "does not resolve to any address"
    for address in addresses:
        reason = blocked_address(address)
        if reason is not None:
            return f"resolves to {address}, which {reason}"
    return None


def wants(
    *,
    event_type: str,
    event_tenant: str,
    endpoint_types: Sequence[str],
    endpoint_tenant: str | None,
) -> bool:
    """Whether an endpoint subscribed to `endpoint_types` (empty: every type) and filtered to
    `endpoint_tenant` (None: every tenant, and the platform's own events) wants this event."""
    if endpoint_types and event_type not in endpoint_types:
        return False
    return endpoint_tenant is None or endpoint_tenant == event_tenant


def retry_delay(
    schedule: Sequence[float], attempts_made: int, *, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt after `attempts_made` failed ones, or None when the schedule is
    used up. Each step is jittered by up to +/-20% so that a receiver back from an outage is not hit
    by every retry in the same second."""
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    base = float(schedule[attempts_made - 1])
    jitter = (rng or random).uniform(-0.2, 0.2) * base
    return max(0.0, base + jitter)


def parse_schedule(text: str) -> tuple[float, ...]:
    """WEBHOOK_RETRY_SCHEDULE_SECONDS: comma-separated delays in seconds, each >= 0."""
    steps = tuple(float(part) for part in text.split(",") if part.strip())
    if any(step < 0 for step in steps) or any(step != step for step in steps):
        raise ValueError("each delay is a number of seconds >= 0")
    return steps
