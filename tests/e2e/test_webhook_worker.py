"""Real `walletsvc worker` processes deliver events to a real receiver, signed (verified with the
`standardwebhooks` package): two workers deliver each event, a receiver that is down when the events
are committed gets every one of them once it comes back, and a worker killed while its request is in
flight has the delivery made again (the receiver sees it twice) and recorded once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.settings_apps import client_for
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.webhook_receiver import (
    WEBHOOK_SECRETS_KEY,
    Receiver,
    commit_event,
    create_endpoint,
    receiving,
    webhook_settings,
)
from tests.fixtures.worker_processes import start_worker, worker_running
from walletsvc.config import Settings
from walletsvc.db.engine import Database

WORKER_ENV = {
    "WEBHOOK_SECRETS_KEY": WEBHOOK_SECRETS_KEY,
    "WEBHOOK_ALLOW_PRIVATE_URLS": "true",  # the receiver is on 127.0.0.1
    "WEBHOOK_RETRY_SCHEDULE_SECONDS": ",".join(["1"] * 60),
}


@pytest.fixture
async def hooks(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(webhook_settings(settings), db) as client:
        yield client


async def _statuses(db: Database, event_ids: list[str]) -> dict[str, tuple[str, int]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id, status, attempts FROM webhook_deliveries WHERE event_id = ANY(:ids)"),
            {"ids": event_ids},
        )
        return {r.event_id: (r.status, r.attempts) for r in rows}


async def _wait(
    db: Database, event_ids: list[str], done: str, within: float = 90.0
) -> dict[str, tuple[str, int]]:
    """Until every event's delivery is `done` ('delivered'), or has failed at least once ('failed_once')."""
    deadline = time.monotonic() + within
    while True:
        seen = await _statuses(db, event_ids)
        if done == "delivered":
            ok = len(seen) == len(event_ids) and all(s == "delivered" for s, _ in seen.values())
        else:
            ok = len(seen) == len(event_ids) and all(n >= 1 for _, n in seen.values())
        if ok or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.1)  # polling the workers' progress


async def test_two_workers_deliver_each_event_signed(
    hooks: httpx.AsyncClient,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    create_tenant: TenantFactory,
    db: Database,
    database_url: str,
    tmp_path: Path,
) -> None:
    tenant = await create_tenant()
    with receiving() as receiver:
        endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant["id"])
        with (
            worker_running(database_url, tmp_path, "one", "--concurrency", "4", env=WORKER_ENV),
            worker_running(database_url, tmp_path, "two", "--concurrency", "4", env=WORKER_ENV),
        ):
            # An event made by the API (an adjustment), and some committed directly.
            adjusted = await client.post(
                f"/v1/admin/tenants/{tenant['id']}/adjustments",
                json={"amount": 2_500, "reason": "goodwill"},
                headers=admin_headers,
            )
            assert adjusted.status_code == 201, adjusted.text
            ids = [await commit_event(db, tenant["id"]) for _ in range(20)]
            await receiver.wait_for(21)
            seen = await _wait(db, ids, "delivered")
        assert seen == {i: ("delivered", 1) for i in ids}
        bodies = receiver.verified(endpoint["secret"])
    assert {b["id"] for b in bodies} >= set(ids)
    # (The adjustment may cause other events too, a low-balance one: each goes to the endpoint as well.)
    adjustments = [b for b in bodies if b["id"] not in ids and b["type"] == "adjustment.created"]
    assert len(adjustments) == 1
    assert adjustments[0]["tenant_id"] == tenant["id"]
    assert adjustments[0]["data"]["amount"] == {"amount": 2_500, "currency": "INR"}


async def test_a_receiver_that_is_down_gets_every_event_when_it_comes_back(
    hooks: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    database_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = f"wh-{time.time_ns():x}"
    receiver = Receiver()  # its port is closed until start()
    endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
    with worker_running(database_url, tmp_path, "worker", "--concurrency", "4", env=WORKER_ENV):
        ids = [await commit_event(db, tenant_id) for _ in range(5)]
        failed = await _wait(db, ids, "failed_once")
        assert all(status == "pending" and attempts >= 1 for status, attempts in failed.values()), failed
        receiver.start()
        try:
            delivered = await _wait(db, ids, "delivered")
            bodies = receiver.verified(endpoint["secret"])
        finally:
            receiver.stop()
    assert set(delivered) == set(ids)
    assert all(status == "delivered" and attempts >= 2 for status, attempts in delivered.values()), delivered
    assert sorted(b["id"] for b in bodies) == sorted(ids)  # each once after it came back


async def test_a_worker_killed_mid_request_has_the_delivery_made_again_and_recorded_once(
    hooks: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    database_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = f"wh-{time.time_ns():x}"
    receiver = Receiver(hold_first=True).start()  # the first request gets no answer until released
    try:
        endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        first = start_worker(database_url, tmp_path, "first", env=WORKER_ENV)
        try:
            first.wait_ready()
            event_id = await commit_event(db, tenant_id)
            [in_flight] = await receiver.wait_for(1)
            assert in_flight.webhook_id == event_id
        finally:
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=30)
        receiver.release()
        assert (await _statuses(db, [event_id]))[event_id] == ("pending", 0)  # nothing was recorded
        with worker_running(database_url, tmp_path, "second", env=WORKER_ENV):
            seen = await _wait(db, [event_id], "delivered")
        bodies = receiver.verified(endpoint["secret"])
    finally:
        receiver.stop()
    assert seen == {event_id: ("delivered", 1)}  # one attempt on record
    assert [b["id"] for b in bodies] == [event_id, event_id]  # at least once: the receiver dedupes on the id
    async with db.engine.connect() as conn:
        attempts = await conn.scalar(
            text(
                "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id"
                " WHERE d.event_id = :id"
            ),
            {"id": event_id},
        )
    assert attempts == 1
