"""create_app(): settings, database, authenticator, routers, error handlers, docs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI

from walletsvc import __version__
from walletsvc.api.body_guard import BodyGuard
from walletsvc.api.cors import PortalCors
from walletsvc.api.docs import install_docs
from walletsvc.api.errors import install_error_handlers
from walletsvc.api.fast_usage import FastUsagePath
from walletsvc.api.middleware import RequestContextMiddleware
from walletsvc.api.routers import (
    admin_topups,
    api_keys,
    auto_topup,
    billing_contacts,
    billing_details,
    events,
    invoices,
    ops,
    payment_methods,
    plans,
    tenants,
    topups,
    transactions,
    usage,
    wallet,
    webhook_endpoints,
    webhooks,
)
from walletsvc.config import Settings, get_settings
from walletsvc.db.engine import Database, resolve_database_url
from walletsvc.db.repositories.idempotency import IdempotencyStore
from walletsvc.gateway_config import build_gateways, key_mode_warnings, setting_warnings
from walletsvc.service_config import auth_config, document_config
from walletsvc.services.auth import Authenticator
from walletsvc.services.charging import ChargeWriter
from walletsvc.services.documents import configure_documents

log = logging.getLogger(__name__)
GC_THRESHOLDS = (5_000, 20, 100)  # the cyclic collector's, for a serving process (see lifespan)

DESCRIPTION = """Prepaid wallets for voice and messaging platforms: tenants keep a balance in their own currency,
top it up through Stripe or Razorpay, and telephony backends authorize calls and charge usage against
it. Every balance change is a row in an append-only ledger, exact to the minor unit and exactly once
under retries.

This reference is served by the service itself: Swagger UI at `/docs`, ReDoc at `/redoc`, the document
at `/openapi.json`. Both pages work with no internet.

## Authentication

Every `/v1` route but `GET /v1/plans`, `GET /v1/topups/stripe/return` and the webhooks takes
`Authorization: Bearer <credential>` (in Swagger UI: **Authorize**, paste the token or key).

- **Portal users: a JWT** issued by the platform, HS256 (`JWT_SECRET`) or RS256 (`JWT_PUBLIC_KEY`);
  the algorithm is fixed by the configuration. Claims: `sub` (the user), `tenant_id`, `role`, `exp`
  (at most `JWT_MAX_LIFETIME_SECONDS`, a day by default, after `iat`), and `aud` / `iss` when
  `JWT_AUDIENCE` / `JWT_ISSUER` are set (with no `JWT_AUDIENCE`, a token naming an audience is
  refused). `role` is `member` (reads), `owner` (also writes: top-ups, plan changes) or
  `super_admin` (every `/v1/admin/...` route, any tenant).
- **Services: an API key** `wsk_...`, shown once when it is made (`POST /v1/admin/api-keys` or
  `walletsvc keys create`) and stored only as a digest. Scopes: `wallet:read`, `wallet:write`,
  `usage:write` (telephony: authorize calls, post usage), `admin` (platform-wide keys only). A key is
  bound to one tenant, or platform-wide; a platform-wide `usage:write` key names `tenant_id` in each
  request.

A tenant's credentials only ever see that tenant; only admins name another one.

## Money

Every amount is an **integer count of the currency's minor unit** with its ISO 4217 currency:
`{"amount": 50000, "currency": "INR"}` is Rs 500.00, `{"amount": 500, "currency": "JPY"}` is 500 yen.
Floats are refused (422). A wallet's currency is fixed when it is opened; money in another currency
is refused with `CURRENCY_MISMATCH`, never converted. Rates may be finer than a minor unit and are
decimal strings (`"per_minute_rate": "42"`). `available = balance - reserved` (held for calls and
refunds in progress).

## Idempotency-Key

Every mutating route takes an `Idempotency-Key` header (1 to 255 printable characters), scoped to the
caller. Send one with every retryable request:

- the same key with the same request answers the first answer again, with `Idempotent-Replayed: true`
  (a business refusal such as 402 included);
- the same key with another body, path or method: 422 `IDEMPOTENCY_KEY_REUSED`;
- while the first request is still running: 409 `IDEMPOTENCY_IN_PROGRESS` (retry shortly).

Validation errors (422) and server errors are not stored, so a corrected retry may reuse the key. A
retried `POST /v1/topups` or top-up refund resumes the same top-up or refund. `POST /v1/usage` is also
idempotent on its own: one charge per (tenant, `kind`, `reference_id`); a retry answers 200 with the
first charge (`replayed: true`).

## Errors

Every error is RFC 9457 `application/problem+json` with a stable `code` to branch on, a human
`detail`, and the `request_id` to quote in a support ticket (every response also carries
`X-Request-ID`; send your own to correlate). Some codes add fields: `available` and `requested` on
`INSUFFICIENT_FUNDS` (a usage charge adds `charge_id`, `charged`, `owed`), `minimum` / `maximum` on
top-up limits, `errors` on `VALIDATION_FAILED`.

| status | code | when |
|---|---|---|
| 400 | `INVALID_SIGNATURE` | a webhook or Razorpay checkout signature does not verify |
| 400 | `INVALID_PAYMENT` | the payment is not this top-up's, or not captured (yet) |
| 401 | `UNAUTHORIZED` | no credentials, or wrong, expired, revoked or forged ones |
| 402 | `INSUFFICIENT_FUNDS` | the wallet cannot pay (a usage charge still stands: the rest is owed) |
| 403 | `FORBIDDEN` | the credentials may not do this (role, scope, or another tenant) |
| 404 | `NOT_FOUND` | no such resource for this caller |
| 405 | `METHOD_NOT_ALLOWED` | the path exists, the method does not |
| 409 | `ALREADY_EXISTS` | the id is taken |
| 409 | `IDEMPOTENCY_IN_PROGRESS` | the first request with this key is still running |
| 409 | `CONFLICT` | the resource's state does not allow this (refunding an unpaid top-up) |
| 409 | `AUTO_TOPUP_LOCKED` | an admin has locked auto top-up off for this tenant |
| 409 | `PERIOD_NOT_ENDED` | a statement for a month that has not ended yet |
| 413 | `PAYLOAD_TOO_LARGE` | the body is larger than `MAX_BODY_BYTES` |
| 415 | `UNSUPPORTED_MEDIA_TYPE` | the body is not sent as `application/json` |
| 422 | `VALIDATION_FAILED` | the input is malformed (see `errors`) |
| 422 | `CURRENCY_MISMATCH` | money in another currency than the wallet's |
| 422 | `IDEMPOTENCY_KEY_REUSED` | the key was used for another request |
| 422 | `BELOW_MINIMUM`, `ABOVE_MAXIMUM` | a top-up outside the currency's limits |
| 422 | `NO_PAYMENT_METHOD` | auto top-up needs a saved card (or the one named is not saved) |
| 422 | `WEBHOOK_URL_NOT_ALLOWED` | a webhook endpoint URL that is not https to a public address |
| 500 | `INTERNAL_ERROR` | a fault on our side; quote the `request_id` |
| 503 | `PROVIDER_NOT_CONFIGURED` | that payment provider has no credentials here |
| 503 | `PROVIDER_UNAVAILABLE` | the provider timed out or failed; retry after `Retry-After` |
| 503 | `DATABASE_UNAVAILABLE` | the database was lost for a moment; retry after `Retry-After` |
| 503 | `WEBHOOK_SECRETS_NOT_CONFIGURED` | `WEBHOOK_SECRETS_KEY` is not set, so endpoint secrets cannot be kept |

Other HTTP errors answer `HTTP_ERROR` with their status.

## Top-ups and webhooks

`POST /v1/topups` answers a `checkout` telling the portal what to show: `redirect` (send the browser
to `url`), `client_secret` (Stripe Elements) or `razorpay_modal` (open Razorpay Checkout, then post
its answer to `POST /v1/topups/{topup_id}/razorpay/verify`). The wallet is credited exactly once,
with what the provider confirmed, by whichever comes first: the return or verify call, a provider
webhook, or reconciliation.

The providers' webhooks are `POST /v1/webhooks/stripe` (signed in `Stripe-Signature`) and
`POST /v1/webhooks/razorpay` (signed in `X-Razorpay-Signature`, event id in `X-Razorpay-Event-Id`),
both under the **webhooks** tag below. Point the providers' dashboards at them; a repeated event
answers 200 `duplicate` and changes nothing. They are for the providers only: they never answer a
browser's CORS request.

## Events and callbacks to the platform

Every change to a tenant's money is an event (`GET /v1/events`, `GET /v1/admin/events`). Admins register
webhook endpoints (`POST /v1/admin/webhook-endpoints`): each event an endpoint wants is POSTed to it as
JSON signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`), so any
Standard Webhooks library verifies it with the endpoint's `whsec_...` secret (shown once). A delivery
that gets no 2xx within 10 s is retried with exponential backoff and jitter for about three days; each
event arrives at least once, in no promised order: dedupe on `webhook-id`. Every attempt is shown by
`GET /v1/admin/events/{event_id}`; `POST /v1/admin/events/{event_id}/redeliver` sends one again.

## Browser portals (CORS)

A single-page portal on another origin may call the API when that origin is listed in
`CORS_ALLOWED_ORIGINS` (comma-separated; none by default). It may send `Authorization`,
`Content-Type`, `Idempotency-Key` and `X-Request-ID`, and read `X-Request-ID`,
`Idempotent-Replayed`, `Retry-After` and `Content-Disposition`, on errors too.
"""


def attach_database(app: FastAPI, db: Database) -> None:
    settings: Settings = app.state.settings
    app.state.db = db
    app.state.charge_writer = ChargeWriter(db, settings)
    configure_documents(db.sessionmaker, document_config(settings))  # the seller and tax rule they name
    app.state.idempotency = IdempotencyStore(
        db.engine, lock_timeout=timedelta(seconds=settings.idempotency_lock_seconds)
    )


def create_app(
    settings: Settings | None = None, database: Database | None = None, *, lean_usage_path: bool = True
) -> FastAPI:
    """Build the app. With `database` given (tests), the caller owns it; otherwise the lifespan
    connects to DATABASE_URL (or the embedded server) and disposes of it on shutdown. With
    `lean_usage_path=False` every `POST /v1/usage` goes to the documented route (the tests run the usage
    suite through both entry points, which must answer alike)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if getattr(app.state, "db", None) is None:
            url = await asyncio.to_thread(resolve_database_url, settings)
            owned = Database.connect(
                url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
            )
            attach_database(app, owned)
        authenticator: Authenticator = app.state.authenticator
        # Which credentials this process accepts, said once (never a secret): with no JWT setting, every
        # portal call is refused, and that should be read at start, not discovered from 401s.
        log.log(
            logging.INFO if authenticator.jwt_algorithm else logging.WARNING,
            "auth: %s",
            authenticator.describe(),
        )
        for warning in key_mode_warnings(settings) + setting_warnings(settings):
            log.warning("payment configuration: %s", warning)
        # What start-up built (modules, routes, schemas, the pool) lives as long as the process: keep it
        # out of the cyclic collector's scans. A 1,000-record usage batch allocates enough to trigger
        # dozens of collections, and scanning that heap each time cost more than answering the batch.
        gc.freeze()
        # And collect less often: at Python's default (700, 10, 10) a busy server ran a full collection
        # every second or so, each a pause of 5-30 ms on this shared 2-core machine that every request
        # in flight waited out (the open-loop p99 of bench/charges.py). A young generation of 5,000
        # objects is still collected in well under a millisecond, and what a request leaves in cycles
        # is freed within seconds.
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            await app.state.charge_writer.idle()  # its connections back in the pool before it closes
            await app.state.gateways.aclose()
            if owned is not None:
                await owned.dispose()

    app = FastAPI(
        title="walletsvc",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # No OpenTelemetry here (metrics are Prometheus, api/metrics.py): FastAPI would otherwise look up
        # the global tracer and meter providers on every request to find them unconfigured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.db = None
    app.state.authenticator = Authenticator(auth_config(settings))
    app.state.gateways = build_gateways(settings)
    app.state.auto_topup_policy = settings.auto_topup_policy()
    if database is not None:
        attach_database(app, database)

    install_error_handlers(app)
    # The telephony hot path first: a request is matched against the routes in this order.
    for module in (
        usage,
        ops,
        tenants,
        wallet,
        transactions,
        api_keys,
        topups,
        webhooks,
        admin_topups,
        plans,
        events,
        webhook_endpoints,
        billing_contacts,
        billing_details,
        invoices,
        auto_topup,
        payment_methods,
    ):
        app.include_router(module.router)
    install_docs(app)
    if lean_usage_path:
        app.add_middleware(FastUsagePath)  # inside the request context: ids, logs and metrics still apply
    # Before the lean path and every route: body size, media type, duplicate keys, one Authorization.
    app.add_middleware(BodyGuard, max_body_bytes=settings.max_body_bytes)
    if settings.cors_allowed_origins:
        # Inside the request context (preflights get a request id too), outside everything that answers,
        # so every answer to an allowed origin, a refusal or a 500 included, carries the CORS headers.
        app.add_middleware(PortalCors, allowed_origins=settings.cors_allowed_origins)
    app.add_middleware(RequestContextMiddleware)
    return app
