"""A lost or unreachable database: 503 DATABASE_UNAVAILABLE with Retry-After, never a 500; work that is
safe to repeat is run again on a fresh connection, so most lost connections are invisible; a charge is
never made twice and an Idempotency-Key is never left completed for a change that did not happen.

Backends are ended with pg_terminate_backend from a separate connection, on this test database only.
Where a test needs a backend to be mid-statement (or mid-COMMIT) when it is ended, another connection
holds a lock that the statement (or a deferred trigger run at COMMIT) waits on: the test sees the backend
waiting in pg_stat_activity, ends it, then lets go of the lock. Nothing waits out a race.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.fixtures.auth import make_token, owner_headers
from tests.fixtures.db_faults import (
    COMMIT_HELD_PREFIX,
    Storm,
    Terminator,
    charges_and_ledger_rows,
    commits_can_be_held,
    ledger_rows_described,
    terminator,
    wallet_row_locked,
    wallets_table_locked,
)
from tests.fixtures.problems import assert_problem
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ref, usage_key
from walletsvc.api.deps import SessionDep
from walletsvc.api.routing import TransactionalRoute
from walletsvc.app import create_app
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.logs import json_handler
from walletsvc.services.ledger_verify import verify_ledger

RAN_AGAIN = "database connection lost; running the request again on a fresh connection"
WROTE_AGAIN = "charge batch lost its connection; writing it again"


@pytest.fixture
async def killer(database_url: str) -> AsyncIterator[Terminator]:
    async with terminator(database_url) as t:
        yield t


def warnings_saying(caplog: pytest.LogCaptureFixture, message: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == message)


def assert_unavailable(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 503, "DATABASE_UNAVAILABLE")
    assert int(response.headers["retry-after"]) >= 1
    return body


async def ledger_rows(db: Database, where: str, **params: Any) -> int:
    async with db.engine.connect() as conn:
        count = await conn.scalar(text(f"SELECT count(*) FROM ledger_entries WHERE {where}"), params)  # noqa: S608
    return int(count or 0)


async def assert_ledger_verifies(db: Database) -> None:
    async with db.engine.connect() as conn:
        results, _ = await verify_ledger(conn)
    assert [r.check.name for r in results if not r.ok] == []


async def test_a_read_whose_backend_is_ended_mid_statement_is_run_again_and_answers(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    killer: Terminator,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    tenant = await create_tenant(balance=4_200)
    async with wallets_table_locked(database_url):
        pending = asyncio.create_task(client.get("/v1/wallet", headers=owner_headers(tenant["id"])))
        await killer.terminate(await killer.backends_waiting_on_a_lock())
    response = await pending
    assert response.status_code == 200, response.text
    assert response.json()["balance"]["amount"] == 4_200
    assert warnings_saying(caplog, RAN_AGAIN) == 1


@pytest.mark.parametrize("idempotency_key", [True, False])
async def test_a_change_whose_backend_is_ended_before_commit_is_made_once(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    killer: Terminator,
    database_url: str,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    idempotency_key: bool,
) -> None:
    caplog.set_level(logging.WARNING)
    tenant = await create_tenant(balance=1_000)
    reason = f"lost-connection credit {uuid.uuid4().hex}"
    headers = {**admin_headers, **({"Idempotency-Key": uuid.uuid4().hex} if idempotency_key else {})}
    url = f"/v1/admin/tenants/{tenant['id']}/adjustments"
    async with wallet_row_locked(database_url, tenant["id"]):
        pending = asyncio.create_task(
            client.post(url, json={"amount": 250, "reason": reason}, headers=headers)
        )
        await killer.terminate(await killer.backends_waiting_on_a_lock())
    response = await pending
    assert response.status_code == 201, response.text
    assert warnings_saying(caplog, RAN_AGAIN) == 1
    assert await ledger_rows(db, "description = :d", d=reason) == 1
    if idempotency_key:  # the key was freed, claimed again by the second run, and completed by it
        replay = await client.post(url, json={"amount": 250, "reason": reason}, headers=headers)
        assert replay.headers.get("idempotent-replayed") == "true"
        assert replay.json() == response.json()
        assert await ledger_rows(db, "description = :d", d=reason) == 1
    wallet = await client.get(f"/v1/admin/tenants/{tenant['id']}/wallet", headers=admin_headers)
    assert wallet.json()["balance"]["amount"] == 1_250


async def test_charges_whose_writer_connection_is_ended_mid_batch_are_written_once(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    killer: Terminator,
    database_url: str,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    tenant = await create_tenant(currency="USD", country="USA", balance=5_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    singles = [ref("lost") for _ in range(3)]
    batched = [ref("lost-batch") for _ in range(3)]
    async with wallet_row_locked(database_url, tenant["id"]):
        pending = [
            asyncio.create_task(
                client.post("/v1/usage", json={"kind": "sms", "reference_id": r, "quantity": 1}, headers=key)
            )
            for r in singles
        ]
        await killer.terminate(await killer.backends_waiting_on_a_lock())
    assert [r.status_code for r in await asyncio.gather(*pending)] == [201, 201, 201]
    assert warnings_saying(caplog, WROTE_AGAIN) == 1

    records = [{"kind": "email", "reference_id": r} for r in batched]
    async with wallet_row_locked(database_url, tenant["id"]):
        batch = asyncio.create_task(client.post("/v1/usage/batch", json={"records": records}, headers=key))
        await killer.terminate(await killer.backends_waiting_on_a_lock())
    response = await batch
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == [201, 201, 201]
    assert warnings_saying(caplog, WROTE_AGAIN) == 2

    # One charge and one ledger row each (2 per reference), and the dead connections were not reused.
    assert await charges_and_ledger_rows(killer.conn, tenant["id"], singles + batched) == dict.fromkeys(
        singles + batched, 2
    )
    wallet = await client.get(f"/v1/admin/tenants/{tenant['id']}/wallet", headers=admin_headers)
    assert wallet.json()["balance"]["amount"] == 5_000 - 3 * 2 - 3 * 1


async def test_a_commit_cut_off_in_flight_answers_503_and_leaves_the_key_free_for_the_retry(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    killer: Terminator,
    database_url: str,
    db: Database,
) -> None:
    tenant_id = f"{COMMIT_HELD_PREFIX}{uuid.uuid4().hex[:10]}"
    opened = await client.post(
        "/v1/admin/tenants",
        json={"id": tenant_id, "name": "Held Commits", "country": "IND", "currency": "INR"},
        headers=admin_headers,
    )
    assert opened.status_code == 201, opened.text
    reason = f"credit cut off at commit {uuid.uuid4().hex}"
    headers = {**admin_headers, "Idempotency-Key": uuid.uuid4().hex}
    url = f"/v1/admin/tenants/{tenant_id}/adjustments"
    body = {"amount": 700, "reason": reason}
    async with commits_can_be_held(database_url) as commits:
        async with commits.holding(tenant_id):
            pending = asyncio.create_task(client.post(url, json=body, headers=headers))
            await killer.terminate(await killer.backends_waiting_on_a_lock())  # ended during its COMMIT
        response = await pending
        problem = assert_unavailable(response)
        assert "unknown" in problem["detail"]
        # The COMMIT never finished, so nothing was made, and the key was not completed with the 503:
        # the client's retry with the same key runs (not 409, not a replay of the 503) and credits once.
        assert await ledger_rows(db, "description = :d", d=reason) == 0
        retried = await client.post(url, json=body, headers=headers)
        assert retried.status_code == 201, retried.text
        again = await client.post(url, json=body, headers=headers)
        assert again.headers.get("idempotent-replayed") == "true"
    assert await ledger_rows(db, "description = :d", d=reason) == 1


async def test_a_charge_batch_cut_off_at_commit_is_written_again_and_charged_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    killer: Terminator,
    database_url: str,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    tenant_id = f"{COMMIT_HELD_PREFIX}{uuid.uuid4().hex[:10]}"
    opened = await client.post(
        "/v1/admin/tenants",
        json={"id": tenant_id, "name": "Held Charges", "country": "USA", "currency": "USD"},
        headers=admin_headers,
    )
    assert opened.status_code == 201, opened.text
    funded = await client.post(
        f"/v1/admin/tenants/{tenant_id}/adjustments",
        json={"amount": 1_000, "reason": "funding"},
        headers=admin_headers,
    )
    assert funded.status_code == 201, funded.text
    key = await usage_key(client, admin_headers, tenant_id)
    reference = ref("cut-at-commit")
    async with commits_can_be_held(database_url) as commits:
        async with commits.holding(tenant_id):
            pending = asyncio.create_task(
                client.post(
                    "/v1/usage", json={"kind": "fax", "reference_id": reference, "quantity": 2}, headers=key
                )
            )
            await killer.terminate(await killer.backends_waiting_on_a_lock())
        response = await pending
    assert response.status_code == 201, response.text
    assert response.json()["amount"]["amount"] == 30
    assert warnings_saying(caplog, WROTE_AGAIN) == 1
    assert await charges_and_ledger_rows(killer.conn, tenant_id, [reference]) == {reference: 2}
    assert await ledger_rows(db, "tenant_id = :t AND type = 'usage_charge'", t=tenant_id) == 1


async def test_a_charge_whose_client_gave_up_is_still_charged_once_and_its_retry_replays(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    killer: Terminator,
    database_url: str,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    tenant = await create_tenant(currency="USD", country="USA", balance=500)
    key = await usage_key(client, admin_headers, tenant["id"])
    given_up, kept = ref("given-up"), ref("kept")

    def charge(reference: str) -> asyncio.Task[httpx.Response]:
        body = {"kind": "sms", "reference_id": reference, "quantity": 1}
        return asyncio.create_task(client.post("/v1/usage", json=body, headers=key))

    async with wallet_row_locked(database_url, tenant["id"]):
        first = charge(given_up)
        await killer.backends_waiting_on_a_lock()  # the writer waits, with the first charge in its batch
        second = charge(kept)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert (await second).status_code == 201
    # The call happened: the writer wrote it, on its own connection, and the retry answers that charge.
    retry = await client.post(
        "/v1/usage", json={"kind": "sms", "reference_id": given_up, "quantity": 1}, headers=key
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["replayed"] is True
    assert await charges_and_ledger_rows(killer.conn, tenant["id"], [given_up, kept]) == {
        given_up: 2,
        kept: 2,
    }
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_mixed_workload_never_answers_500_while_backends_are_ended(
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    admin_headers: dict[str, str],
    killer: Terminator,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    rounds = 12
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000_000)
    storm = Storm(
        client,
        tenant["id"],
        usage_headers=await usage_key(client, admin_headers, tenant["id"]),
        owner_headers=owner_headers(tenant["id"]),
        admin_headers=admin_headers,
    )
    for _ in range(rounds):
        await storm.round(42, killer)

    assert storm.statuses[500] == 0, storm.statuses
    assert set(storm.statuses) <= {200, 201, 503}, storm.statuses
    for response in storm.unavailable:
        assert_unavailable(response)
    assert [r.status_code for r in storm.reads] == [200] * len(
        storm.reads
    )  # a read that lost its connection ran again
    # The client retries each 503 (with the same Idempotency-Key): it answers, and nothing is made twice.
    assert {r.status_code for r in await storm.retry_unavailable()} <= {200, 201}
    assert await charges_and_ledger_rows(killer.conn, storm.tenant_id, storm.charged) == dict.fromkeys(
        storm.charged, 2
    )
    assert await ledger_rows_described(killer.conn, storm.credits) == dict.fromkeys(storm.credits, 1)
    await assert_ledger_verifies(db)
    assert killer.terminations == rounds
    assert killer.backends_ended >= rounds
    print(  # the figures for the report (pytest -s shows them)
        f"\nstorm: {sum(storm.statuses.values())} requests, {killer.terminations} terminations "
        f"({killer.backends_ended} backends ended), statuses {dict(storm.statuses)}, "
        f"requests run again {warnings_saying(caplog, RAN_AGAIN)}, "
        f"charge batches written again {warnings_saying(caplog, WROTE_AGAIN)}"
    )


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


@pytest.fixture
async def unreachable_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    database = Database.connect(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/walletsvc")
    app = create_app(settings, database=database)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield c
    finally:
        await database.dispose()


async def test_an_unreachable_database_answers_503_from_every_kind_of_route(
    unreachable_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    api_key = {"Authorization": f"Bearer wsk_{uuid.uuid4().hex[:16]}_{uuid.uuid4().hex}"}
    owner = owner_headers("t-unreachable")
    sms = {"kind": "sms", "reference_id": ref(), "quantity": 1}
    calls = [
        ("GET", "/v1/wallet", None, owner),
        ("GET", "/v1/transactions", None, owner),
        ("POST", "/v1/usage", sms, api_key),  # the lean path: the key is read from the database
        ("POST", "/v1/usage", sms, {**api_key, "Idempotency-Key": "k-1"}),  # the documented route
        ("POST", "/v1/usage/batch", {"records": [sms]}, api_key),
        ("POST", "/v1/usage", sms, bearer_usage_token()),  # a platform JWT: no read before the writer
        ("POST", "/v1/admin/tenants/t-x/adjustments", {"amount": 1, "reason": "r"}, admin_headers),
        (
            "POST",
            "/v1/admin/tenants/t-x/adjustments",
            {"amount": 1, "reason": "r"},
            {**admin_headers, "Idempotency-Key": "k-2"},
        ),
        ("GET", "/v1/admin/tenants", None, admin_headers),
    ]
    for method, url, body, headers in calls:
        response = await unreachable_client.request(method, url, json=body, headers=headers)
        problem = assert_unavailable(response)
        assert response.headers["retry-after"] == "5", (url, problem)
    ready = await unreachable_client.get("/readyz")
    assert ready.status_code == 503


def bearer_usage_token() -> dict[str, str]:
    """A super admin's portal token: it carries usage:write, so the lean path needs no database read."""
    return {"Authorization": f"Bearer {make_token(role='super_admin', tenant_id='t-unreachable')}"}


async def test_a_pool_that_stays_busy_answers_503_not_500(
    settings: Settings, database_url: str, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant()
    database = Database.connect(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    app = create_app(settings, database=database)
    try:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
            database.engine.connect() as held,  # the pool's one connection, busy for the whole test
        ):
            await held.execute(text("SELECT 1"))
            response = await c.get("/v1/wallet", headers=owner_headers(tenant["id"]))
            assert_unavailable(response)
    finally:
        await database.dispose()


async def test_a_database_error_logs_neither_its_parameters_nor_the_failing_row(
    settings: Settings, db: Database
) -> None:
    secret = f"payload-secret-{uuid.uuid4().hex}"
    router = APIRouter(route_class=TransactionalRoute)

    @router.post("/test/db-error")
    async def fail(session: SessionDep) -> dict[str, str]:
        # A NOT NULL violation: PostgreSQL's DETAIL carries the whole failing row, the secret with it.
        await session.execute(
            text(
                "INSERT INTO idempotency_keys (scope, key, method, path, fingerprint, locked_at) "
                "VALUES (:scope, :key, 'POST', '/x', :fingerprint, NULL)"
            ),
            {"scope": "test", "key": uuid.uuid4().hex, "fingerprint": secret},
        )
        return {}

    app = create_app(settings, database=db)
    app.include_router(router)
    out = io.StringIO()
    handler = json_handler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            response = await c.post("/test/db-error")
        # The raw asyncpg path: an error with the same DETAIL, logged as the charge writer logs one.
        async with db.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            try:
                await raw.execute(
                    "INSERT INTO idempotency_keys (scope, key, method, path, fingerprint, locked_at) "
                    "VALUES ('test', $1, 'POST', '/x', $2, NULL)",
                    uuid.uuid4().hex,
                    secret,
                )
            except Exception:
                logging.getLogger("walletsvc.services.charging").exception("charge batch failed")
    finally:
        root.removeHandler(handler)
    assert response.status_code == 500  # a bug, not an outage: it still answers problem+json
    logged = out.getvalue()
    assert "NotNullViolation" in logged  # the errors were logged, with their tracebacks
    assert logged.count("Traceback") >= 2
    assert secret not in logged
    # And the exception itself, wherever else it may be shown, names no parameter.
    async with db.engine.connect() as conn:
        with pytest.raises(DBAPIError) as caught:
            await conn.execute(text("SELECT CAST(:v AS text), 1 / 0"), {"v": secret})
    assert secret not in str(caught.value)
