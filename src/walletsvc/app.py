"""create_app(): settings, database, authenticator, routers, error handlers, docs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI

from walletsvc import __version__
from walletsvc.api.docs import install_docs
from walletsvc.api.errors import install_error_handlers
from walletsvc.api.fast_usage import FastUsagePath
from walletsvc.api.middleware import RequestContextMiddleware
from walletsvc.api.routers import (
    admin_topups,
    api_keys,
    ops,
    plans,
    tenants,
    topups,
    transactions,
    usage,
    wallet,
    webhooks,
)
from walletsvc.config import Settings, get_settings
from walletsvc.db.engine import Database, resolve_database_url
from walletsvc.db.repositories.idempotency import IdempotencyStore
from walletsvc.services.auth import Authenticator
from walletsvc.services.calls import expire_holds
from walletsvc.services.charging import ChargeWriter
from walletsvc.services.gateways import build_gateways, key_mode_warnings

log = logging.getLogger(__name__)

DESCRIPTION = """Prepaid wallets for voice and messaging platforms.

Money is always `{"amount": <integer minor units>, "currency": "INR"}`. Errors are RFC 9457
`application/problem+json` with a stable `code`. Every mutating route takes an `Idempotency-Key`.
"""


async def _housekeeping(app: FastAPI, retention: timedelta) -> None:
    """Release expired call holds every half minute and forget old idempotency keys every ten. Every
    process may run it: both are idempotent statements under row locks."""
    ticks = 0
    while True:
        try:
            await expire_holds(app.state.db)
            if ticks % 20 == 0:
                await app.state.idempotency.purge_older_than(retention)
        except Exception:  # housekeeping must never take the API down; the next round catches up
            log.warning("housekeeping failed", exc_info=True)
        ticks += 1
        await asyncio.sleep(30)


def attach_database(app: FastAPI, db: Database) -> None:
    settings: Settings = app.state.settings
    app.state.db = db
    app.state.charge_writer = ChargeWriter(db, settings)
    app.state.idempotency = IdempotencyStore(
        db.engine, lock_timeout=timedelta(seconds=settings.idempotency_lock_seconds)
    )


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app. With `database` given (tests), the caller owns it; otherwise the lifespan
    connects to DATABASE_URL (or the embedded server) and disposes of it on shutdown."""
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
        for warning in key_mode_warnings(settings):
            log.warning("payment configuration: %s", warning)
        housekeeping = asyncio.create_task(
            _housekeeping(app, timedelta(hours=settings.idempotency_retention_hours))
        )
        try:
            yield
        finally:
            housekeeping.cancel()
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
    )
    app.state.settings = settings
    app.state.db = None
    app.state.authenticator = Authenticator(settings)
    app.state.gateways = build_gateways(settings)
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
    ):
        app.include_router(module.router)
    install_docs(app)
    app.add_middleware(FastUsagePath)  # inside the request context: ids, logs and metrics still apply
    app.add_middleware(RequestContextMiddleware)
    return app
