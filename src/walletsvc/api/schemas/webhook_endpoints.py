"""Webhook endpoints as the API shows them (the signing secret only once), and deliveries with attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from walletsvc.api.schemas.common import NO_NUL_PATTERN
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.domain.events import EventType
from walletsvc.domain.webhooks import AttemptRecord, DeliveryRecord, EndpointRecord

URL_FIELD = Field(
    min_length=1,
    max_length=2048,
    pattern=NO_NUL_PATTERN,
    description="Where events are POSTed: https (http only with WEBHOOK_ALLOW_PRIVATE_URLS); never a "
    "loopback, private or link-local address",
    examples=["https://platform.example/hooks/walletsvc"],
)
EVENT_TYPES_DESCRIPTION = "The event types sent to this endpoint; empty (or omitted) for every type"


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = URL_FIELD
    event_types: list[EventType] = Field(
        default_factory=list,
        max_length=50,
        description=EVENT_TYPES_DESCRIPTION,
        examples=[["wallet.low_balance"]],
    )
    tenant_id: str | None = Field(
        default=None,
        pattern=TENANT_ID_PATTERN,
        description="Only this tenant's events; omit for every tenant's",
    )
    description: str = Field(default="", max_length=500, pattern=NO_NUL_PATTERN)
    enabled: bool = True


class WebhookEndpointPatch(BaseModel):
    """Fields to change; a field left out is kept. `enabled: true` re-enables a disabled endpoint."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2048, pattern=NO_NUL_PATTERN)
    event_types: list[EventType] | None = Field(
        default=None, max_length=50, description=EVENT_TYPES_DESCRIPTION
    )
    tenant_id: str | None = Field(
        default=None, pattern=TENANT_ID_PATTERN, description="null for every tenant's events"
    )
    description: str | None = Field(default=None, max_length=500, pattern=NO_NUL_PATTERN)
    enabled: bool | None = None


class WebhookEndpointOut(BaseModel):
    id: str = Field(examples=["whe_0193a5b2c4d1e8f7a6b5c4d3"])
    url: str
    event_types: list[EventType] = Field(description=EVENT_TYPES_DESCRIPTION)
    tenant_id: str | None = Field(description="Only this tenant's events; null for every tenant's")
    description: str
    status: Literal["enabled", "disabled"]
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why it is disabled: by an admin, or every delivery failed for WEBHOOK_DISABLE_AFTER_SECONDS"
    )
    disabled_at: datetime | None
    failing_since: datetime | None = Field(description="First failed attempt since the last success")
    last_success_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation: until when deliveries are also signed with the previous secret"
    )
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: EndpointRecord, *, now: datetime | None = None) -> WebhookEndpointOut:
        expires = r.previous_secret_expires_at
        if expires is not None and now is not None and expires <= now:
            expires = None
        return cls(
            id=r.id,
            url=r.url,
            event_types=[EventType(t) for t in r.event_types],
            tenant_id=r.tenant_id,
            description=r.description,
            status="enabled" if r.enabled else "disabled",
            enabled=r.enabled,
            disabled_reason=r.disabled_reason,
            disabled_at=r.disabled_at,
            failing_since=r.failing_since,
            last_success_at=r.last_success_at,
            previous_secret_expires_at=expires,
            created_by=r.created_by,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


REPLAY_WITHOUT_SIGNING_KEY = (
    "the signing secret is shown only once, in the first answer: an Idempotency-Key replay cannot show it "
    "again; if it was lost, rotate it (POST /v1/admin/webhook-endpoints/{id}/rotate-secret)"
)


class WebhookEndpointWithSecret(WebhookEndpointOut):
    secret: str | None = Field(
        description="The Standard Webhooks signing secret (`whsec_...`). Shown once: store it now. null in "
        "an Idempotency-Key replay (see `detail`).",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    detail: str | None = Field(default=None, description="Why `secret` is null, when it is")

    def without_secret(self) -> WebhookEndpointWithSecret:
        return self.model_copy(update={"secret": None, "detail": REPLAY_WITHOUT_SIGNING_KEY})


class AttemptOut(BaseModel):
    attempt: int
    outcome: Literal["delivered", "failed", "refused"] = Field(
        description="`delivered` (a 2xx), `failed` (another status, a timeout, no connection), `refused` "
        "(not sent: the address is not allowed, or the secret cannot be read)"
    )
    status_code: int | None
    error: str | None
    response_body: str | None = Field(description="The start of the receiver's answer (at most 1 KiB)")
    duration_ms: int
    started_at: datetime

    @classmethod
    def of(cls, a: AttemptRecord) -> AttemptOut:
        return cls(
            attempt=a.attempt,
            outcome=a.outcome,
            status_code=a.status_code,
            error=a.error,
            response_body=a.response_body,
            duration_ms=a.duration_ms,
            started_at=a.started_at,
        )


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: str
    status: Literal["pending", "delivered", "failed", "canceled"] = Field(
        description="`pending` (an attempt is due at `next_attempt_at`), `delivered`, `failed` (the retry "
        "schedule is used up), `canceled` (the endpoint was disabled or deleted)"
    )
    attempt_count: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, d: DeliveryRecord, attempts: list[AttemptRecord]) -> DeliveryOut:
        return cls(
            id=d.id,
            endpoint_id=d.endpoint_id,
            status=d.status,
            attempt_count=d.attempts,
            next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
            delivered_at=d.delivered_at,
            attempts=[AttemptOut.of(a) for a in attempts],
        )


class RedeliverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^whe_[0-9a-f]{24}$",
        description="Only to this endpoint; omit for every enabled endpoint the event went to or that wants it",
    )


class RedeliverOut(BaseModel):
    event_id: str
    queued: list[int] = Field(description="The deliveries that have a fresh attempt queued")
