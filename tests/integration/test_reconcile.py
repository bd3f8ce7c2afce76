"""`walletsvc reconcile`: pending top-ups and refunds that never heard back are settled by asking the
provider, exactly once.

reconcile looks at every pending item in the database, including other tests'. Razorpay is faked
with state (unknown orders have no payments), and Stripe answers 404 to everything, so the other
tests' items are left as they are and only this test's items can be settled."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from tests.fixtures.constants import STRIPE_API_BASE
from tests.fixtures.razorpay_flow import (
    FakeRazorpay,
    balance,
    deliver,
    isolated_client,
    paid_topup,
    payment_event,
    start_topup,
    topup_detail,
    transactions,
)
from tests.fixtures.tenants import TenantFactory
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.services.reconcile import ReconcileReport, reconcile

SUMMARY = re.compile(
    r"^reconcile: \d+ pending top-ups checked: \d+ credited, \d+ failed, \d+ still pending; "
    r"\d+ refunds settled; \d+ auto top-ups resumed; \d+ mandates updated$",
    re.MULTILINE,
)


@pytest.fixture
def razorpay() -> Iterator[FakeRazorpay]:
    with FakeRazorpay() as fake, respx.mock(base_url=STRIPE_API_BASE, assert_all_called=False) as stripe:
        stripe.route().respond(
            404,
            json={
                "error": {
                    "code": "resource_missing",
                    "message": "No such object",
                    "type": "invalid_request_error",
                }
            },
        )
        yield fake


pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")


async def run_reconcile(db: Database, app: Any) -> ReconcileReport:
    return await reconcile(
        db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy
    )


def mentions(report: ReconcileReport, item_id: str) -> list[str]:
    return [error for error in report.errors if item_id in error]


async def test_pending_topup_with_a_captured_payment_is_credited_once(
    db: Database,
    app: Any,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 30_000)
    # The customer paid, but neither the verify call nor the webhook ever reached walletsvc.
    razorpay.pay(topup["checkout"]["order_id"], status="failed")
    payment = razorpay.pay(topup["checkout"]["order_id"])

    first = await run_reconcile(db, app)
    assert first.credited == 1
    assert mentions(first, topup["id"]) == []
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "succeeded"
    assert detail["credited"] == {"amount": 30_000, "currency": "INR"}
    assert detail["history"][-1]["source"] == "reconcile"
    assert await balance(client, tenant["id"]) == 30_000

    second = await run_reconcile(db, app)
    assert second.credited == 0
    assert await balance(client, tenant["id"]) == 30_000
    assert len(await transactions(client, tenant["id"])) == 1

    # The captured payment (not the failed attempt) is the one a refund goes to.
    refund = await client.post(
        f"/v1/admin/topups/{topup['id']}/refunds", json={"reason": "test"}, headers=admin_headers
    )
    assert refund.status_code == 201, refund.text
    assert razorpay.refund_requests[-1].url.path == f"/v1/payments/{payment['id']}/refund"
    assert await balance(client, tenant["id"]) == 0


async def test_failed_topup_paid_again_on_the_same_order_is_credited(
    db: Database, app: Any, client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 25_000)
    declined = razorpay.pay(topup["checkout"]["order_id"], status="failed")
    hook = await deliver(client, payment_event("payment.failed", declined))
    assert hook.status_code == 200, hook.text
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "failed"
    # The customer tries again on the same order and pays; neither verify nor the webhook arrives.
    razorpay.pay(topup["checkout"]["order_id"])

    report = await run_reconcile(db, app)
    assert mentions(report, topup["id"]) == []
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "succeeded"
    assert await balance(client, tenant["id"]) == 25_000
    again = await run_reconcile(db, app)
    assert mentions(again, topup["id"]) == []
    assert await balance(client, tenant["id"]) == 25_000


async def test_pending_topup_whose_order_has_no_captured_payment_stays_pending(
    db: Database, app: Any, client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    unpaid = await start_topup(client, tenant["id"], 30_000)
    declined = await start_topup(client, tenant["id"], 40_000)
    razorpay.pay(declined["checkout"]["order_id"], status="failed")
    authorized = await start_topup(client, tenant["id"], 50_000)
    razorpay.pay(authorized["checkout"]["order_id"], status="authorized")

    report = await run_reconcile(db, app)
    assert report.credited == 0
    for topup in (unpaid, declined, authorized):
        assert mentions(report, topup["id"]) == []
        assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"
    assert await balance(client, tenant["id"]) == 0


async def test_captured_payment_of_a_different_amount_is_flagged_not_credited(
    db: Database, app: Any, client: httpx.AsyncClient, create_tenant: TenantFactory, razorpay: FakeRazorpay
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 30_000)
    razorpay.pay(topup["checkout"]["order_id"], amount=3_000)
    await run_reconcile(db, app)
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["status"] == "flagged"
    assert await balance(client, tenant["id"]) == 0


async def test_pending_refund_is_settled_with_the_same_idempotency_key(
    settings: Settings,
    db: Database,
    app: Any,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    admin_headers: dict[str, str],
) -> None:
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 50_000)
    razorpay.down = True
    async with isolated_client(settings, db) as isolated:
        failed = await isolated.post(
            f"/v1/admin/topups/{topup['id']}/refunds",
            json={"amount": 20_000, "reason": "customer asked"},
            headers=admin_headers,
        )
    assert failed.status_code == 503, failed.text
    assert failed.json()["code"] == "PROVIDER_UNAVAILABLE"
    [pending] = (await topup_detail(client, tenant["id"], topup["id"]))["refunds"]
    assert pending["status"] == "pending"
    assert await balance(client, tenant["id"]) == 50_000
    attempts = len(razorpay.refund_requests)
    assert attempts >= 1

    razorpay.down = False
    report = await run_reconcile(db, app)
    assert report.refunds_settled == 1
    assert mentions(report, pending["id"]) == []
    keys = {r.headers["X-Refund-Idempotency"] for r in razorpay.refund_requests}
    assert keys == {pending["id"]}
    assert razorpay.refund_requests[-1].url.path == f"/v1/payments/{payment['id']}/refund"
    assert len(razorpay.refunds) == 1
    [settled] = (await topup_detail(client, tenant["id"], topup["id"]))["refunds"]
    assert settled["status"] == "succeeded"
    assert settled["debited"] is True
    assert await balance(client, tenant["id"]) == 30_000

    again = await run_reconcile(db, app)
    assert again.refunds_settled == 0
    assert len(razorpay.refund_requests) == attempts + 1
    assert await balance(client, tenant["id"]) == 30_000
    assert len(await transactions(client, tenant["id"], type_="topup_refund")) == 1


async def test_cli_without_provider_keys_reports_and_leaves_topups_pending(
    database_url: str,
    client: httpx.AsyncClient,
    create_tenant: TenantFactory,
    razorpay: FakeRazorpay,
    tmp_path: Path,
) -> None:
    tenant = await create_tenant()
    topup = await start_topup(client, tenant["id"], 30_000)
    razorpay.pay(topup["checkout"]["order_id"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "RAZORPAY_", "DATABASE_URL"))}
    env["DATABASE_URL"] = database_url
    cli = Path(sys.executable).with_name("walletsvc")
    process = await asyncio.create_subprocess_exec(
        str(cli),
        "reconcile",
        "--older-than",
        "0",
        cwd=tmp_path,  # no .env here
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    output = stdout.decode()
    assert SUMMARY.search(output), (output, stderr.decode())
    # It cannot ask Razorpay without keys: it says so about this top-up, exits non-zero, and credits nothing.
    assert process.returncode == 1, (output, stderr.decode())
    said = [line for line in output.splitlines() if line.strip().startswith(f"error: top-up {topup['id']}: ")]
    assert len(said) == 1, output
    assert "RAZORPAY_KEY_ID" in said[0], said  # it names what to set
    assert "RAZORPAY_KEY_SECRET" in said[0], said
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"
    assert await balance(client, tenant["id"]) == 0
