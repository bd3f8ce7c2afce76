"""Shared fixtures: a real PostgreSQL (embedded by default, or TEST_DATABASE_URL), the app, clients.

Every test session gets a fresh database, migrated with the real alembic migrations. At the end of
the session `ledger verify` runs over everything the suite wrote, and must pass.

Only fixtures live here. Helpers and constants that tests import are in tests/fixtures/ (auth, tenants,
constants, problems, ...): a test imports from there, never from this file or from another test module
(tests/unit/test_suite_layout.py checks it).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.auth import bearer, make_token
from tests.fixtures.constants import (
    JWT_SECRET,
    PORTAL_CANCEL_URL,
    PORTAL_SUCCESS_URL,
    PUBLIC_BASE_URL,
    RAZORPAY_API_BASE,
    RAZORPAY_KEY_ID,
    RAZORPAY_KEY_SECRET,
    RAZORPAY_WEBHOOK_SECRET,
    STRIPE_API_BASE,
    STRIPE_PUBLISHABLE_KEY,
    STRIPE_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET,
)
from tests.fixtures.tenants import TenantFactory, new_tenant_id
from tests.fixtures.webhook_receiver import WEBHOOK_SECRETS_KEY
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.embedded import start_embedded
from walletsvc.db.engine import Database, normalise_url
from walletsvc.db.migrate import upgrade_to_head
from walletsvc.services.ledger_verify import verify_ledger

# Fixtures shared by several test modules, kept beside the helpers they use.
pytest_plugins = ["tests.fixtures.razorpay_flow", "tests.fixtures.usage", "tests.fixtures.inr_auto_topup"]


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    server_url = os.environ.get("TEST_DATABASE_URL")
    name = f"walletsvc_test_{uuid.uuid4().hex[:10]}"
    if server_url:
        admin_dsn = _asyncpg_dsn(normalise_url(server_url))
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = make_url(normalise_url(server_url)).set(database=name).render_as_string(hide_password=False)
    else:
        data_dir = tmp_path_factory.mktemp("pg")
        url = await asyncio.to_thread(start_embedded, data_dir, name)
    await asyncio.to_thread(upgrade_to_head, url)
    yield url
    if server_url:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        idempotency_lock_seconds=30,
        public_base_url=PUBLIC_BASE_URL,
        portal_success_url=PORTAL_SUCCESS_URL,
        portal_cancel_url=PORTAL_CANCEL_URL,
        stripe_secret_key=STRIPE_SECRET_KEY,
        stripe_publishable_key=STRIPE_PUBLISHABLE_KEY,
        stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        stripe_api_base=STRIPE_API_BASE,
        razorpay_key_id=RAZORPAY_KEY_ID,
        razorpay_key_secret=RAZORPAY_KEY_SECRET,
        razorpay_webhook_secret=RAZORPAY_WEBHOOK_SECRET,
        razorpay_api_base=RAZORPAY_API_BASE,
        provider_max_retries=1,
        provider_timeout_seconds=2,
        webhook_secrets_key=WEBHOOK_SECRETS_KEY,  # webhook endpoints' secrets, encrypted at rest
    )


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.connect(database_url, pool_size=20, max_overflow=30)
    yield database
    # The whole suite's writes must leave every ledger invariant intact.
    async with database.engine.connect() as conn:
        results, _ = await verify_ledger(conn)
    await database.dispose()
    broken = {r.check.name: r.offending for r in results if not r.ok}
    assert not broken, f"ledger verify failed after the suite: {broken}"


@pytest.fixture
async def db_session(db: Database) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test."""
    async with db.engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()


@pytest.fixture(scope="session")
def app(settings: Settings, db: Database) -> Any:
    return create_app(settings, database=db)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://walletsvc.test") as c:
        yield c


@pytest.fixture(scope="session")
def admin_headers() -> dict[str, str]:
    return bearer(make_token(role="super_admin", sub="admin-1"))


@pytest.fixture
def create_tenant(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> TenantFactory:
    """Open a tenant through the API; optionally fund its wallet by an adjustment."""

    async def _create(
        currency: str = "INR", country: str = "IND", balance: int = 0, **fields: Any
    ) -> dict[str, Any]:
        body = {
            "id": new_tenant_id(),
            "name": "Acme Calls",
            "country": country,
            "currency": currency,
            **fields,
        }
        response = await client.post("/v1/admin/tenants", json=body, headers=admin_headers)
        assert response.status_code == 201, response.text
        tenant: dict[str, Any] = response.json()
        if balance:
            funded = await client.post(
                f"/v1/admin/tenants/{tenant['id']}/adjustments",
                json={"amount": balance, "reason": "test funding"},
                headers=admin_headers,
            )
            assert funded.status_code == 201, funded.text
        return tenant

    return _create
