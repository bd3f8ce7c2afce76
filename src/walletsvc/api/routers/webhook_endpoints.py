"""Admin: webhook endpoints, where events are POSTed (signed, Standard Webhooks). See docs/webhooks.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, status

from walletsvc.api.deps import AdminDep, Idempotent, SessionDep, SettingsDep
from walletsvc.api.routing import ShownOnceResponse, TransactionalRoute
from walletsvc.api.schemas.common import Page, decode_str_cursor, encode_cursor, problem_responses
from walletsvc.api.schemas.wallets import TENANT_ID_PATTERN
from walletsvc.api.schemas.webhook_endpoints import (
    WebhookEndpointCreate,
    WebhookEndpointOut,
    WebhookEndpointPatch,
    WebhookEndpointWithSecret,
)
from walletsvc.service_config import webhook_secret_box
from walletsvc.services.webhook_endpoints import CreatedEndpoint, SecretBox, WebhookEndpoints

router = APIRouter(
    prefix="/v1/admin/webhook-endpoints", tags=["admin: webhook endpoints"], route_class=TransactionalRoute
)

ENDPOINT_ID = Annotated[str, Path(pattern=r"^whe_[0-9a-f]{24}$", examples=["whe_0193a5b2c4d1e8f7a6b5c4d3"])]


async def _endpoints(request: Request, session: SessionDep, settings: SettingsDep) -> WebhookEndpoints:
    box: SecretBox | None
    if hasattr(request.app.state, "webhook_secrets"):
        box = request.app.state.webhook_secrets
    else:  # loaded on first use: with the embedded database it may make the key file in DATA_DIR
        box = webhook_secret_box(settings)
        request.app.state.webhook_secrets = box
    return WebhookEndpoints(
        session,
        box,
        allow_private_urls=settings.webhook_allow_private_urls,
        rotation_overlap_seconds=settings.webhook_secret_rotation_overlap_seconds,
    )


EndpointsDep = Annotated[WebhookEndpoints, Depends(_endpoints)]


def _shown_once(created: CreatedEndpoint, status_code: int) -> ShownOnceResponse:
    answer = WebhookEndpointWithSecret(
        **WebhookEndpointOut.of(created.record, now=datetime.now(UTC)).model_dump(), secret=created.secret
    )
    return ShownOnceResponse(
        answer.model_dump(mode="json"),
        replay_content=answer.without_secret().model_dump(mode="json"),
        status_code=status_code,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointWithSecret,
    summary="Register a webhook endpoint (its signing secret is shown once)",
    description="The URL is checked: https only, no credentials, and a host that is (or resolves to) a "
    "loopback, private, link-local, CGNAT or otherwise non-public address is refused with "
    "`WEBHOOK_URL_NOT_ALLOWED`, unless WEBHOOK_ALLOW_PRIVATE_URLS is set. The answer carries the "
    "`whsec_...` secret that signs its deliveries; a retry with the same Idempotency-Key answers "
    "`secret: null`. Without WEBHOOK_SECRETS_KEY (and a DATABASE_URL) it answers 503 "
    "`WEBHOOK_SECRETS_NOT_CONFIGURED`.",
    responses=problem_responses(403, 409, 503),
    dependencies=[Idempotent],
)
async def create_endpoint(
    body: WebhookEndpointCreate, endpoints: EndpointsDep, admin: AdminDep
) -> ShownOnceResponse:
    created = await endpoints.create(
        url=body.url,
        event_types=[t.value for t in body.event_types],
        tenant_id=body.tenant_id,
        description=body.description,
        enabled=body.enabled,
        created_by=admin.actor,
    )
    return _shown_once(created, status.HTTP_201_CREATED)


@router.get("", summary="List webhook endpoints (never their secrets)", responses=problem_responses(403))
async def list_endpoints(
    endpoints: EndpointsDep,
    admin: AdminDep,
    tenant_id: Annotated[
        str | None, Query(pattern=TENANT_ID_PATTERN, description="Only this tenant's filter")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Endpoints per page")] = 50,
) -> Page[WebhookEndpointOut]:
    now = datetime.now(UTC)
    records, after = await endpoints.page(tenant_id=tenant_id, after=decode_str_cursor(cursor), limit=limit)
    return Page[WebhookEndpointOut](
        data=[WebhookEndpointOut.of(r, now=now) for r in records],
        next_cursor=encode_cursor(after) if after is not None else None,
    )


@router.get("/{endpoint_id}", summary="Read a webhook endpoint", responses=problem_responses(403, 404))
async def get_endpoint(
    endpoint_id: ENDPOINT_ID, endpoints: EndpointsDep, admin: AdminDep
) -> WebhookEndpointOut:
    return WebhookEndpointOut.of(await endpoints.get(endpoint_id), now=datetime.now(UTC))


@router.patch(
    "/{endpoint_id}",
    summary="Change a webhook endpoint; `enabled: true` re-enables a disabled one",
    description="Disabling it (`enabled: false`) stops its waiting deliveries. Re-enabling does not resend "
    "them: use POST /v1/admin/events/{event_id}/redeliver for those.",
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def update_endpoint(
    endpoint_id: ENDPOINT_ID,
    endpoints: EndpointsDep,
    admin: AdminDep,
    body: Annotated[WebhookEndpointPatch, Body(default_factory=WebhookEndpointPatch)],
) -> WebhookEndpointOut:
    record = await endpoints.update(
        endpoint_id,
        url=body.url,
        event_types=[t.value for t in body.event_types] if body.event_types is not None else None,
        tenant_id=body.tenant_id,
        set_tenant="tenant_id" in body.model_fields_set,
        description=body.description,
        enabled=body.enabled,
    )
    return WebhookEndpointOut.of(record, now=datetime.now(UTC))


@router.delete(
    "/{endpoint_id}",
    summary="Delete a webhook endpoint; its waiting deliveries stop",
    description="Its deliveries and their attempts stay readable on their events.",
    responses=problem_responses(403, 404, 409),
    dependencies=[Idempotent],
)
async def delete_endpoint(
    endpoint_id: ENDPOINT_ID, endpoints: EndpointsDep, admin: AdminDep
) -> WebhookEndpointOut:
    return WebhookEndpointOut.of(await endpoints.delete(endpoint_id), now=datetime.now(UTC))


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointWithSecret,
    summary="Rotate the signing secret (the new one is shown once)",
    description="Deliveries are signed with the new secret and, for WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS "
    "(a day by default), with the previous one too (two `v1,` signatures), so receivers can switch without "
    "missing an event. A retry with the same Idempotency-Key answers `secret: null`.",
    responses=problem_responses(403, 404, 409, 503),
    dependencies=[Idempotent],
)
async def rotate_secret(
    endpoint_id: ENDPOINT_ID, endpoints: EndpointsDep, admin: AdminDep
) -> ShownOnceResponse:
    return _shown_once(await endpoints.rotate_secret(endpoint_id), status.HTTP_200_OK)
