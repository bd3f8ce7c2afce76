"""Deliveries to a real HTTP receiver on 127.0.0.1 that verifies each Standard Webhooks signature: delivered
once, retried after a 5xx or a closed port, signed with both secrets during a rotation, stopped when the
endpoint is disabled or deleted, refused (never sent) to a private address, and redelivered on request.

The send_webhook jobs of each test's own deliveries are run here as the worker runs them
(tests/fixtures/webhook_receiver.py); tests/e2e/test_webhook_worker.py runs them in real worker processes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.events import stored_events
from tests.fixtures.settings_apps import client_for
from tests.fixtures.tenants import new_tenant_id
from tests.fixtures.webhook_receiver import (
    Receiver,
    commit_event,
    create_endpoint,
    delivery_rows,
    dispatch,
    dispatched_event,
    queued_jobs,
    receiving,
    run_due,
    run_until_settled,
    sender_for,
    webhook_settings,
)
from walletsvc.config import Settings
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.domain.events import EventType
from walletsvc.domain.webhooks import PLATFORM_TENANT
from walletsvc.services import webhook_delivery
from walletsvc.services.events import get_event

BASE = "/v1/admin/webhook-endpoints"


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return webhook_settings(settings)


@pytest.fixture
async def hooks(hook_settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(hook_settings, db) as client:
        yield client


async def _event_view(client: httpx.AsyncClient, headers: dict[str, str], event_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/admin/events/{event_id}", headers=headers)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def test_an_event_is_delivered_once_signed_and_a_rerun_adds_nothing(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, hook_settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    sender = sender_for(hook_settings)
    with receiving() as receiver:
        endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        other = await create_endpoint(
            hooks, admin_headers, receiver.url, tenant_id=tenant_id, event_types=["topup.succeeded"]
        )
        event_id = await commit_event(db, tenant_id, amount={"amount": 12_345, "currency": "INR"})
        assert await dispatch(db, event_id) == 1  # the topup.succeeded endpoint does not want it
        assert await dispatch(db, event_id) is None
        async with unit_of_work(db) as session:
            event = await get_event(session, event_id)
            assert event is not None
            assert await webhook_delivery.fan_out(session, event) == 0  # a rerun adds no delivery

        assert await run_due(db, sender, event_id) == ["delivered"]
        [body] = receiver.verified(endpoint["secret"])
        assert body["id"] == event_id
        assert body["type"] == "adjustment.created"
        assert body["tenant_id"] == tenant_id
        assert body["data"] == {"amount": {"amount": 12_345, "currency": "INR"}}
        [request] = receiver.received
        assert request.webhook_id == event_id
        assert request.headers["user-agent"].startswith("walletsvc-webhooks/")
        assert request.headers["webhook-signature"].startswith("v1,")

    view = await _event_view(hooks, admin_headers, event_id)
    assert view["delivery"] == "dispatched"
    [delivery] = view["deliveries"]
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["status"] == "delivered"
    assert delivery["attempt_count"] == 1
    [attempt] = delivery["attempts"]
    assert attempt["outcome"] == "delivered"
    assert attempt["status_code"] == 200
    assert len(attempt["response_body"]) == 1024  # the start of the answer only
    assert await queued_jobs(db, event_id) == 0
    for made in (endpoint, other):
        assert (await hooks.delete(f"{BASE}/{made['id']}", headers=admin_headers)).status_code == 200


async def test_a_job_run_twice_records_one_attempt(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, hook_settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    sender = sender_for(hook_settings)
    with receiving() as receiver:
        await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        event_id = await dispatched_event(db, tenant_id)
        [row] = await delivery_rows(db, event_id)
        # Two workers holding the same job (or a rerun after a kill): one attempt on record.
        first, second = await sender.run(db, row["id"], 1), await sender.run(db, row["id"], 1)
        assert (first, second) == ("delivered", "skipped")
        assert receiver.ids() == [event_id]
    view = await _event_view(hooks, admin_headers, event_id)
    assert [a["attempt"] for a in view["deliveries"][0]["attempts"]] == [1]


async def test_a_receiver_answering_500_gets_the_event_again_until_it_answers_2xx(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, hook_settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    sender = sender_for(hook_settings)
    with receiving(500, 503) as receiver:
        endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        event_id = await dispatched_event(db, tenant_id)
        assert await run_until_settled(db, sender, event_id) == ["retrying", "retrying", "delivered"]
        assert receiver.ids() == [event_id] * 3  # one id: the receiver dedupes on it
        assert len(receiver.verified(endpoint["secret"])) == 3
    [delivery] = (await _event_view(hooks, admin_headers, event_id))["deliveries"]
    assert delivery["status"] == "delivered"
    assert [(a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [
        ("failed", 500),
        ("failed", 503),
        ("delivered", 200),
    ]
    assert delivery["attempts"][0]["error"] == "answered HTTP 500"
    read = await hooks.get(f"{BASE}/{endpoint['id']}", headers=admin_headers)
    assert read.json()["failing_since"] is None
    assert read.json()["last_success_at"] is not None


async def test_a_receiver_that_is_down_gets_the_event_when_it_comes_back(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, hook_settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    sender = sender_for(hook_settings)
    receiver = Receiver()  # not started: its port is closed
    endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
    event_id = await dispatched_event(db, tenant_id)
    assert await run_due(db, sender, event_id) == ["retrying"]
    assert await run_due(db, sender, event_id) == ["retrying"]
    [down] = await delivery_rows(db, event_id)
    assert down["status"] == "pending"
    assert down["attempts"] == 2
    receiver.start()
    try:
        assert await run_due(db, sender, event_id) == ["delivered"]
        [body] = receiver.verified(endpoint["secret"])
        assert body["id"] == event_id
    finally:
        receiver.stop()
    [delivery] = (await _event_view(hooks, admin_headers, event_id))["deliveries"]
    assert [a["outcome"] for a in delivery["attempts"]] == ["failed", "failed", "delivered"]
    assert delivery["attempts"][0]["status_code"] is None
    assert "could not connect" in delivery["attempts"][0]["error"]


async def test_the_retry_schedule_runs_out_and_the_delivery_fails(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    short = webhook_settings(settings, webhook_retry_schedule_seconds="0,0")
    sender = sender_for(short)
    with receiving(500, 500, 500, 500) as receiver:
        await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        event_id = await dispatched_event(db, tenant_id)
        assert await run_until_settled(db, sender, event_id) == ["retrying", "retrying", "failed"]
        assert len(receiver.received) == 3
    [row] = await delivery_rows(db, event_id)
    assert row["status"] == "failed"
    assert row["next_attempt_at"] is None


async def test_a_later_retry_is_queued_with_a_delay_not_run_at_once(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    sender = sender_for(webhook_settings(settings, webhook_retry_schedule_seconds="3600"))
    with receiving(500) as receiver:
        await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        event_id = await dispatched_event(db, tenant_id)
        assert await run_due(db, sender, event_id) == ["retrying"]
        assert await run_due(db, sender, event_id) == []  # not due for an hour
        assert await queued_jobs(db, event_id) == 1
        assert len(receiver.received) == 1
    async with db.engine.connect() as conn:
        wait = await conn.scalar(
            text(
                "SELECT extract(epoch FROM next_attempt_at - now()) FROM webhook_deliveries WHERE event_id = :id"
            ),
            {"id": event_id},
        )
    assert 0.8 * 3600 - 5 < float(wait) < 1.2 * 3600  # jittered by +/-20%


async def test_during_a_rotation_both_secrets_sign_each_delivery(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, hook_settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    sender = sender_for(hook_settings)
    with receiving() as receiver:
        endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        rotated = await hooks.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=admin_headers)
        new_secret = rotated.json()["secret"]
        event_id = await dispatched_event(db, tenant_id)
        assert await run_due(db, sender, event_id) == ["delivered"]
        [request] = receiver.received
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        assert receiver.verified(endpoint["secret"])[0]["id"] == event_id  # receivers still on the old one
        assert receiver.verified(new_secret)[0]["id"] == event_id  # and those that switched


async def test_after_the_overlap_only_the_new_secret_signs(
    settings: Settings, admin_headers: dict[str, str], db: Database
) -> None:
    no_overlap = webhook_settings(settings, webhook_secret_rotation_overlap_seconds=0)
    tenant_id = new_tenant_id()
    async with client_for(no_overlap, db) as client:
        with receiving() as receiver:
            endpoint = await create_endpoint(client, admin_headers, receiver.url, tenant_id=tenant_id)
            rotated = await client.post(f"{BASE}/{endpoint['id']}/rotate-secret", headers=admin_headers)
            event_id = await dispatched_event(db, tenant_id)
            assert await run_due(db, sender_for(no_overlap), event_id) == ["delivered"]
            assert receiver.verified(rotated.json()["secret"])
            with pytest.raises(Exception, match="No matching signature"):
                receiver.verified(endpoint["secret"])


async def test_an_endpoint_failing_too_long_is_disabled_with_an_event_and_can_be_re_enabled(
    settings: Settings, admin_headers: dict[str, str], db: Database
) -> None:
    # Disabled at the first failure: "failing for WEBHOOK_DISABLE_AFTER_SECONDS" with the setting at 0.
    strict = webhook_settings(settings, webhook_disable_after_seconds=0)
    sender = sender_for(strict)
    tenant_id = new_tenant_id()
    async with client_for(strict, db) as client:
        with receiving(500) as receiver:
            endpoint = await create_endpoint(client, admin_headers, receiver.url, tenant_id=tenant_id)
            first = await commit_event(db, tenant_id)
            second = await commit_event(db, tenant_id)
            await dispatch(db, first)
            await dispatch(db, second)
            assert await run_due(db, sender, first) == ["disabled"]
            assert [r["status"] for r in await delivery_rows(db, second)] == ["canceled"]
            assert await run_due(db, sender, second) == ["skipped"]  # stopped, never sent
            assert len(receiver.received) == 1

            read = (await client.get(f"{BASE}/{endpoint['id']}", headers=admin_headers)).json()
            assert read["status"] == "disabled"
            assert read["disabled_reason"].startswith("every delivery failed for")
            assert read["disabled_at"] is not None
            # A platform event: filed under no tenant (none reads the platform's URLs), for every-tenant endpoints.
            assert EventType.WEBHOOK_ENDPOINT_DISABLED not in [
                e["type"] for e in await stored_events(db, tenant_id)
            ]
            disabled = [
                e
                for e in await stored_events(db, PLATFORM_TENANT)
                if e["type"] == EventType.WEBHOOK_ENDPOINT_DISABLED
                and e["payload"]["endpoint_id"] == endpoint["id"]
            ]
            assert len(disabled) == 1
            assert disabled[0]["payload"]["tenant_id"] == tenant_id
            assert disabled[0]["payload"]["endpoint_id"] == endpoint["id"]
            assert disabled[0]["payload"]["disabled_reason"] == read["disabled_reason"]
            # Its own dispatch does not go to the disabled endpoint (nor to this tenant's other endpoints).
            assert await dispatch(db, disabled[0]["id"]) == 0

            refused = await client.post(
                f"/v1/admin/events/{second}/redeliver",
                json={"endpoint_id": endpoint["id"]},
                headers=admin_headers,
            )
            assert refused.status_code == 409
            assert refused.json()["code"] == "CONFLICT"

            enabled = await client.patch(
                f"{BASE}/{endpoint['id']}", json={"enabled": True}, headers=admin_headers
            )
            assert enabled.json()["status"] == "enabled"
            assert enabled.json()["disabled_reason"] is None
            again = await client.post(f"/v1/admin/events/{second}/redeliver", headers=admin_headers)
            assert again.status_code == 202, again.text
            assert await run_due(db, sender, second) == ["delivered"]
            assert receiver.verified(endpoint["secret"])[-1]["id"] == second
        [delivery] = (await _event_view(client, admin_headers, second))["deliveries"]
        assert delivery["status"] == "delivered"


async def test_redeliver_sends_a_delivered_event_again_with_the_same_id(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, hook_settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    sender = sender_for(hook_settings)
    with receiving() as receiver:
        endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        event_id = await dispatched_event(db, tenant_id)
        assert await run_due(db, sender, event_id) == ["delivered"]
        response = await hooks.post(
            f"/v1/admin/events/{event_id}/redeliver",
            json={"endpoint_id": endpoint["id"]},
            headers=admin_headers,
        )
        assert response.status_code == 202, response.text
        [delivery] = (await _event_view(hooks, admin_headers, event_id))["deliveries"]
        assert response.json() == {"event_id": event_id, "queued": [delivery["id"]]}
        assert delivery["status"] == "pending"
        assert await run_due(db, sender, event_id) == ["delivered"]
        assert receiver.ids() == [event_id, event_id]
        assert len(receiver.verified(endpoint["secret"])) == 2
    [delivery] = (await _event_view(hooks, admin_headers, event_id))["deliveries"]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2]
    missing = await hooks.post(f"/v1/admin/events/evt_{'0' * 32}/redeliver", headers=admin_headers)
    assert missing.status_code == 404


async def test_redeliver_reaches_an_endpoint_registered_after_the_event(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, hook_settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    event_id = await commit_event(db, tenant_id)
    assert await dispatch(db, event_id) == 0
    nobody = await hooks.post(f"/v1/admin/events/{event_id}/redeliver", headers=admin_headers)
    assert nobody.status_code == 409
    with receiving() as receiver:
        endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        response = await hooks.post(f"/v1/admin/events/{event_id}/redeliver", headers=admin_headers)
        assert response.status_code == 202, response.text
        assert await run_due(db, sender_for(hook_settings), event_id) == ["delivered"]
        assert receiver.verified(endpoint["secret"])[0]["id"] == event_id
    assert (await _event_view(hooks, admin_headers, event_id))["delivery"] == "dispatched"


async def test_deleting_an_endpoint_stops_its_queued_deliveries(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, hook_settings: Settings
) -> None:
    tenant_id = new_tenant_id()
    with receiving() as receiver:
        endpoint = await create_endpoint(hooks, admin_headers, receiver.url, tenant_id=tenant_id)
        event_id = await dispatched_event(db, tenant_id)
        assert (await hooks.delete(f"{BASE}/{endpoint['id']}", headers=admin_headers)).status_code == 200
        assert await run_due(db, sender_for(hook_settings), event_id) == ["skipped"]
        assert receiver.received == []
    [delivery] = (await _event_view(hooks, admin_headers, event_id))["deliveries"]
    assert delivery["status"] == "canceled"
    async with db.engine.connect() as conn:
        secret = await conn.scalar(
            text("SELECT length(secret_ciphertext) FROM webhook_endpoints WHERE id = :id"),
            {"id": endpoint["id"]},
        )
    assert secret == 0  # a deleted endpoint's secret is forgotten


@pytest.mark.parametrize("where", ["ip", "name"])
async def test_a_private_address_is_refused_at_delivery_and_nothing_is_sent(
    hooks: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, settings: Settings, where: str
) -> None:
    # Registered while private URLs were allowed (or a name that resolved elsewhere then: DNS rebinding);
    # the worker that delivers does not allow them, and checks the address it is about to connect to.
    strict = webhook_settings(settings, webhook_allow_private_urls=False)
    tenant_id = new_tenant_id()
    with receiving() as receiver:
        url = receiver.url if where == "ip" else f"https://{socket.gethostname()}:{receiver.port}/hooks"
        await create_endpoint(hooks, admin_headers, url, tenant_id=tenant_id)
        event_id = await dispatched_event(db, tenant_id)
        assert await run_due(db, sender_for(strict), event_id) == ["retrying"]
        assert receiver.received == []
    [delivery] = (await _event_view(hooks, admin_headers, event_id))["deliveries"]
    [attempt] = delivery["attempts"]
    assert attempt["outcome"] == "refused"
    assert attempt["error"].startswith("not sent:")
    if where == "name":
        assert "resolves to 127." in attempt["error"]
