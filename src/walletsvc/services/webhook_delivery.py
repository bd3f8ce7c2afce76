"""Deliveries: one per (event, endpoint), each sent by a `send_webhook` job, signed the Standard Webhooks way,
and retried on the WEBHOOK_RETRY_SCHEDULE_SECONDS schedule by a new job queued (with pgqueuer's
`execute_after`) in the transaction that records the failed attempt.

A job carries the attempt it makes. The attempt is recorded under the endpoint's and the delivery's row
locks only if the delivery still waits for exactly that attempt, so a job run twice (two workers, a kill
mid-request) records one attempt and queues one retry; the receiver may see the event twice (at least
once: it dedupes on `webhook-id`). No row is locked while the request is in flight."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from walletsvc import __version__
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.webhook_endpoints import WebhookDeliveryRepository, WebhookEndpointRepository
from walletsvc.domain import webhooks as rules
from walletsvc.domain.errors import Conflict, NotFound, WebhookSecretsNotConfigured
from walletsvc.domain.events import EventType
from walletsvc.domain.webhooks import (
    AttemptOutcome,
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointRecord,
)
from walletsvc.services.events import Event, get_event, record_event
from walletsvc.services.queue import encode_payload
from walletsvc.services.webhook_endpoints import SecretBox, resolve, signing_secrets

log = logging.getLogger(__name__)

SEND_WEBHOOK = "send_webhook"
USER_AGENT = f"walletsvc-webhooks/{__version__}"
RESPONSE_BODY_LIMIT = 1024

_ENQUEUE_AFTER = text(
    """
    WITH job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, status)
        VALUES (0, :entrypoint, :payload, now() + make_interval(secs => :delay), 'queued')
        RETURNING id, entrypoint, priority
    ), logged AS (
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'queued', entrypoint, priority FROM job
    )
    SELECT id FROM job
    """
)
_MARK_DISPATCHED = text(
    "UPDATE events SET delivery = 'dispatched' WHERE id = :id AND delivery = 'no_endpoints'"
)


async def enqueue_send(session: AsyncSession, delivery_id: int, attempt: int, *, delay: float = 0.0) -> int:
    """Queue the job that makes `attempt` of this delivery, `delay` seconds from now, in the session's
    transaction."""
    result = await session.execute(
        _ENQUEUE_AFTER,
        {
            "entrypoint": SEND_WEBHOOK,
            "payload": encode_payload({"delivery_id": delivery_id, "attempt": attempt}),
            "delay": float(delay),
        },
    )
    return int(result.scalar_one())


def _wanted(endpoint: EndpointRecord, event: Event) -> bool:
    return rules.wants(
        event_type=event.type,
        event_tenant=event.tenant_id,
        endpoint_types=endpoint.event_types,
        endpoint_tenant=endpoint.tenant_id,
    )


async def fan_out(session: AsyncSession, event: Event) -> int:
    """One delivery, and its first job, per enabled endpoint that wants the event; a rerun adds none."""
    deliveries = WebhookDeliveryRepository(session)
    queued = 0
    for endpoint in await WebhookEndpointRepository(session).live_for(event.tenant_id):
        if not _wanted(endpoint, event):
            continue
        delivery_id = await deliveries.insert_once(
            tenant_id=event.tenant_id, event_id=event.id, endpoint_id=endpoint.id
        )
        if delivery_id is not None:
            await enqueue_send(session, delivery_id, 1)
            queued += 1
    return queued


async def redeliver(session: AsyncSession, event_id: str, *, endpoint_id: str | None) -> list[int]:
    """Queue a fresh attempt of the event: to one endpoint, or to every enabled endpoint it was delivered
    to or that wants it now. Answers the deliveries queued."""
    event = await get_event(session, event_id)
    if event is None:
        raise NotFound("event", event_id)
    endpoints = WebhookEndpointRepository(session)
    deliveries = WebhookDeliveryRepository(session)
    if endpoint_id is not None:
        endpoint = await endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound("webhook endpoint", endpoint_id)
        if not endpoint.enabled:
            raise Conflict(f"webhook endpoint {endpoint_id!r} is disabled; enable it (PATCH) first")
        targets = [endpoint]
    else:
        earlier = {d.endpoint_id for d in await deliveries.of_event(event_id)}
        targets = [
            e for e in await endpoints.live_for(event.tenant_id) if e.id in earlier or _wanted(e, event)
        ]
    if not targets:
        raise Conflict(f"no enabled webhook endpoint takes event {event_id!r}")
    queued = []
    for endpoint in targets:
        found = await deliveries.find(event_id, endpoint.id, for_update=True)
        if found is None:
            delivery_id = await deliveries.insert_once(
                tenant_id=event.tenant_id, event_id=event_id, endpoint_id=endpoint.id
            )
            if delivery_id is None:  # inserted by a concurrent redeliver or dispatch: it has its job
                continue
            attempt = 1
        else:
            delivery_id, attempt = found.id, found.attempts + 1
            # A job already queued for this attempt and this one: whichever runs first records it.
            await deliveries.set_state(delivery_id, status=DeliveryStatus.PENDING, next_attempt_in=0.0)
        await enqueue_send(session, delivery_id, attempt)
        queued.append(delivery_id)
    await session.execute(_MARK_DISPATCHED, {"id": event_id})
    return queued


@dataclass(frozen=True, slots=True)
class EventDeliveries:
    deliveries: list[DeliveryRecord]
    attempts: dict[int, list[AttemptRecord]]


async def deliveries_of(session: AsyncSession, event_id: str) -> EventDeliveries:
    repo = WebhookDeliveryRepository(session)
    deliveries = await repo.of_event(event_id)
    attempts: dict[int, list[AttemptRecord]] = {d.id: [] for d in deliveries}
    for attempt in await repo.attempts_of([d.id for d in deliveries]):
        attempts[attempt.delivery_id].append(attempt)
    return EventDeliveries(deliveries=deliveries, attempts=attempts)


def event_body(event: Event) -> str:
    """What the receiver gets: the event as GET /v1/admin/events shows it, `data` being its payload."""
    tenant = None if event.tenant_id == rules.PLATFORM_TENANT else event.tenant_id
    return json.dumps(
        {
            "id": event.id,
            "type": event.type,
            "timestamp": event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "tenant_id": tenant,
            "data": event.payload,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def sign(secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,<base64>` per secret, space-separated (Standard Webhooks)."""
    return " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in secrets)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: AttemptOutcome
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None


@dataclass(frozen=True, slots=True)
class _Planned:
    delivery: DeliveryRecord
    endpoint: EndpointRecord
    event: Event


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """What delivering reads from the settings (WEBHOOK_*), built once per worker
    (service_config.webhook_delivery_config)."""

    retry_schedule: tuple[float, ...]  # seconds before each retry (WEBHOOK_RETRY_SCHEDULE_SECONDS, parsed)
    timeout_seconds: float
    allow_private_urls: bool
    disable_after_seconds: int


class WebhookSender:
    """Runs `send_webhook` jobs: one HTTP client (no redirects followed) for the worker's life."""

    def __init__(
        self, config: DeliveryConfig, box: SecretBox | None, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = config
        self.box = box
        self.client = client or httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(config.timeout_seconds),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,  # an HTTP(S)_PROXY would move the request (and the address check) elsewhere
            # Requests go to the checked IP address: a kept-alive connection, pooled by address, could carry
            # another host name's request over a TLS session verified for the first one.
            limits=httpx.Limits(max_keepalive_connections=20 if config.allow_private_urls else 0),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def run(self, db: Database, delivery_id: int, attempt: int) -> str:
        """Make `attempt` of the delivery, if it still waits for it; answer what happened."""
        async with unit_of_work(db) as session:
            planned = await self._plan(session, delivery_id, attempt)
        if isinstance(planned, str):
            return planned
        started = datetime.now(UTC)
        clock = time.monotonic()
        result = await self._attempt(planned, started)
        duration_ms = int((time.monotonic() - clock) * 1000)
        async with unit_of_work(db) as session:
            outcome = await self._record(session, planned, attempt, result, started, duration_ms)
        log.info(
            "webhook attempt",
            extra={
                "delivery_id": delivery_id,
                "event_id": planned.event.id,
                "endpoint_id": planned.endpoint.id,
                "attempt": attempt,
                "outcome": outcome,
                "status_code": result.status_code,
                "duration_ms": duration_ms,
            },
        )
        return outcome

    async def _plan(self, session: AsyncSession, delivery_id: int, attempt: int) -> _Planned | str:
        deliveries = WebhookDeliveryRepository(session)
        delivery = await deliveries.get(delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING or delivery.attempts != attempt - 1:
            return "skipped"  # done, stopped, or this attempt was made by another run
        endpoint = await WebhookEndpointRepository(session).get(delivery.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            await deliveries.set_state(delivery_id, status=DeliveryStatus.CANCELED)
            return "canceled"
        event = await get_event(session, delivery.event_id)
        if event is None:  # events are never deleted; a delivery always has its event
            return "skipped"
        return _Planned(delivery=delivery, endpoint=endpoint, event=event)

    async def _attempt(self, planned: _Planned, started: datetime) -> AttemptResult:
        try:
            secrets = signing_secrets(planned.endpoint, self._box(), now=started)
        except WebhookSecretsNotConfigured as exc:
            return AttemptResult(AttemptOutcome.REFUSED, error=exc.detail)
        allow_private = self.config.allow_private_urls
        try:
            target = rules.parse_endpoint_url(planned.endpoint.url, allow_private=allow_private)
        except ValueError as exc:
            return AttemptResult(AttemptOutcome.REFUSED, error=f"not sent: {exc}")
        url = planned.endpoint.url
        extra_headers: dict[str, str] = {}
        extensions: dict[str, Any] = {}
        if not allow_private:
            pinned = await self._pin(target)
            if isinstance(pinned, AttemptResult):
                return pinned
            url, extra_headers, extensions = pinned
        body = event_body(planned.event)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": planned.event.id,
            "webhook-timestamp": str(int(started.timestamp())),
            "webhook-signature": sign(secrets, planned.event.id, started, body),
            **extra_headers,
        }
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                async with self.client.stream(
                    "POST", url, content=body.encode(), headers=headers, extensions=extensions
                ) as response:
                    received = await _read_some(response)
        except TimeoutError:
            return AttemptResult(
                AttemptOutcome.FAILED, error=f"no answer within {self.config.timeout_seconds:g} s"
            )
        except Exception as exc:  # whatever stopped the request (TLS, a bad answer...) is a failed attempt
            return AttemptResult(AttemptOutcome.FAILED, error=_describe(exc))
        ok = 200 <= response.status_code < 300
        return AttemptResult(
            AttemptOutcome.DELIVERED if ok else AttemptOutcome.FAILED,
            status_code=response.status_code,
            error=None if ok else f"answered HTTP {response.status_code}",
            response_body=received,
        )

    async def _pin(
        self, target: rules.EndpointUrl
    ) -> tuple[str, dict[str, str], dict[str, Any]] | AttemptResult:
        """Resolve the host once, refuse it if any address is not public, and send to that address (so a
        second lookup cannot answer another one), with the name in Host and in TLS's SNI."""
        literal = rules.blocked_address(target.host) is None
        addresses = [target.host] if literal else await resolve(target.host, target.port)
        reason = rules.blocked_resolution(addresses)
        if reason is not None:
            return AttemptResult(AttemptOutcome.REFUSED, error=f"not sent: the host {target.host} {reason}")
        address = addresses[0]
        parts = urlsplit(target.url)
        netloc_host = f"[{address}]" if ":" in address else address
        default_port = 443 if target.scheme == "https" else 80
        name = f"[{target.host}]" if ":" in target.host else target.host
        host_header = name if target.port == default_port else f"{name}:{target.port}"
        pinned = urlunsplit(
            (target.scheme, f"{netloc_host}:{target.port}", parts.path or "/", parts.query, "")
        )
        extensions: dict[str, Any] = {"sni_hostname": target.host} if target.scheme == "https" else {}
        return pinned, {"Host": host_header}, extensions

    def _box(self) -> SecretBox:
        if self.box is None:
            raise WebhookSecretsNotConfigured("not sent: WEBHOOK_SECRETS_KEY is not set in the worker")
        return self.box

    async def _record(
        self,
        session: AsyncSession,
        planned: _Planned,
        attempt: int,
        result: AttemptResult,
        started: datetime,
        duration_ms: int,
    ) -> str:
        endpoints = WebhookEndpointRepository(session)
        deliveries = WebhookDeliveryRepository(session)
        # The endpoint's row first, then the delivery's: the order PATCH and DELETE take them in.
        endpoint = await endpoints.get(planned.endpoint.id, for_update=True)
        delivery = await deliveries.get(planned.delivery.id, for_update=True)
        if delivery is None or delivery.status != DeliveryStatus.PENDING or delivery.attempts != attempt - 1:
            return "duplicate"  # another run recorded this attempt; the receiver saw the event twice
        await deliveries.record_attempt(
            delivery,
            attempt=attempt,
            outcome=result.outcome,
            status_code=result.status_code,
            error=result.error,
            response_body=result.response_body,
            duration_ms=duration_ms,
            started_at=started,
        )
        if result.outcome == AttemptOutcome.DELIVERED:
            await deliveries.set_state(
                delivery.id, status=DeliveryStatus.DELIVERED, attempts=attempt, delivered=True
            )
            if endpoint is not None:
                await endpoints.mark_success(endpoint.id)
            return "delivered"
        if endpoint is None or not endpoint.enabled:
            await deliveries.set_state(delivery.id, status=DeliveryStatus.CANCELED, attempts=attempt)
            return "canceled"
        failing_since = await endpoints.mark_failure(endpoint.id)
        failing_for = (datetime.now(UTC) - failing_since).total_seconds()
        if failing_for >= self.config.disable_after_seconds:
            await deliveries.set_state(delivery.id, status=DeliveryStatus.CANCELED, attempts=attempt)
            await disable_endpoint(session, endpoint, failing_since=failing_since)
            return "disabled"
        delay = rules.retry_delay(self.config.retry_schedule, attempt)
        if delay is None:
            await deliveries.set_state(delivery.id, status=DeliveryStatus.FAILED, attempts=attempt)
            return "failed"
        await deliveries.set_state(
            delivery.id, status=DeliveryStatus.PENDING, attempts=attempt, next_attempt_in=delay
        )
        await enqueue_send(session, delivery.id, attempt + 1, delay=delay)
        return "retrying"


async def disable_endpoint(
    session: AsyncSession, endpoint: EndpointRecord, *, failing_since: datetime
) -> None:
    """Disable an endpoint that has failed for too long (its row is locked by the caller), stop its waiting
    deliveries, and say so with a `webhook_endpoint.disabled` event. The event is the platform's (filed
    under PLATFORM_TENANT, sent to the endpoints of every tenant): no tenant reads the platform's URLs."""
    hours = (datetime.now(UTC) - failing_since).total_seconds() / 3600
    reason = f"every delivery failed for {hours:.1f} hours, since {failing_since.isoformat()}"
    await WebhookEndpointRepository(session).update(
        endpoint.id, enabled=False, disabled_reason=reason, disabled_at=datetime.now(UTC)
    )
    await WebhookDeliveryRepository(session).cancel_pending_of(endpoint.id)
    await record_event(
        session,
        EventType.WEBHOOK_ENDPOINT_DISABLED,
        rules.PLATFORM_TENANT,
        {
            "endpoint_id": endpoint.id,
            "url": endpoint.url,
            "tenant_id": endpoint.tenant_id,
            "disabled_reason": reason,
            "failing_since": failing_since.isoformat(),
        },
    )
    log.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.id, "reason": reason})


async def _read_some(response: httpx.Response) -> str:
    """The start of the receiver's answer, for the attempt's record (never all of it)."""
    chunks = bytearray()
    async for chunk in response.aiter_raw():
        chunks.extend(chunk)
        if len(chunks) >= RESPONSE_BODY_LIMIT:
            break
    return bytes(chunks[:RESPONSE_BODY_LIMIT]).decode("utf-8", errors="replace")


def _describe(exc: Exception) -> str:
    """What went wrong by kind (the request and its signature never appear)."""
    if isinstance(exc, httpx.ConnectError):
        return "could not connect (refused, unreachable, or TLS failed)"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was closed without a valid HTTP answer"
    return f"request failed ({type(exc).__name__})"
