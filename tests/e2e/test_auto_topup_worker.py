"""Auto top-up by a real `walletsvc worker` against a real-HTTP Stripe stand-in: the worker is SIGKILLed
after Stripe received its off-session PaymentIntent request and before the answer was recorded; a new
worker resumes the job under the same idempotency key. One PaymentIntent at Stripe, one credit, the auto
top-up succeeded, the ledger verifies."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.fixtures.provider_server import ProviderStandIn
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.worker_processes import start_worker, worker_running
from walletsvc.config import Settings
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.topups import StripeCustomerRepository
from walletsvc.services.auto_topup import SettingsChange, update_settings
from walletsvc.services.ledger_verify import verify_ledger
from walletsvc.services.payment_methods import learn

STRIPE_KEY = "sk_test_" + "e2eAutoTopup" * 3
START, THRESHOLD, AMOUNT = 300, 500, 2_000
# Only the job the test starts runs: no schedule's run (reconcile) the test cannot name.
WORKER_ENV = {"STRIPE_SECRET_KEY": STRIPE_KEY, "PERIOD_CLOSE_SCHEDULE": "", "RECONCILE_AFTER_SECONDS": "3600"}


async def _save_card(db: Database, tenant_id: str) -> None:
    """What Stripe's setup_intent.succeeded / payment_method.attached webhooks leave behind."""
    async with unit_of_work(db) as session:
        customer = await StripeCustomerRepository(session).remember(tenant_id, f"cus_{tenant_id[:14]}")
        await learn(session, tenant_id, f"pm_{tenant_id[:14]}", source="test", customer_id=customer)


async def _attempt(db: Database, tenant_id: str) -> dict[str, Any]:
    async with db.engine.connect() as conn:
        row = (
            (await conn.execute(text("SELECT * FROM auto_topups WHERE tenant_id = :t"), {"t": tenant_id}))
            .mappings()
            .one()
        )
        return dict(row)


async def _wait_attempt(db: Database, tenant_id: str, status: str, within: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        attempt = await _attempt(db, tenant_id)
        if attempt["status"] == status or time.monotonic() > deadline:
            return attempt
        await asyncio.sleep(0.2)  # polling the worker's progress


async def _wait_intents(stand_in: ProviderStandIn, count: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if len(stand_in.intents) >= count or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)  # polling the released call's processing


async def test_a_worker_killed_while_stripe_answers_is_resumed_with_one_payment_intent_and_one_credit(
    db: Database, database_url: str, tmp_path: Path, settings: Settings, create_tenant: TenantFactory
) -> None:
    stand_in = ProviderStandIn(
        stripe_secret_key=STRIPE_KEY, razorpay_key_id="rzp_test_unused", razorpay_key_secret="unused"
    )
    env = {**WORKER_ENV, "STRIPE_API_BASE": stand_in.serve()}
    try:
        tenant_id = str((await create_tenant(currency="USD", country="USA", balance=START))["id"])
        await _save_card(db, tenant_id)
        held = stand_in.hold_next("checkout", tenant_id=tenant_id, amount=AMOUNT)
        first = start_worker(database_url, tmp_path, "first", env=env)
        try:
            first.wait_ready()
            async with unit_of_work(db) as session:  # below the threshold already: one starts at once
                await update_settings(
                    session,
                    settings,
                    tenant_id=tenant_id,
                    change=SettingsChange(enabled=True, threshold=THRESHOLD, amount=AMOUNT),
                    actor="owner:e2e",
                    admin=False,
                )
            assert await asyncio.to_thread(held.arrived.wait, 90), first.output()
            # Stripe has the request; the worker has committed its intent and waits for the answer.
            assert (await _attempt(db, tenant_id))["status"] == "processing"
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=30)
        finally:
            if first.process.poll() is None:
                first.process.kill()
                first.process.wait(timeout=30)
        held.release.set()  # Stripe makes the PaymentIntent; its answer has nobody to go to
        await _wait_intents(stand_in, 1)
        assert len(stand_in.intents) == 1

        with worker_running(database_url, tmp_path, "second", env=env):
            attempt = await _wait_attempt(db, tenant_id, "succeeded")
    finally:
        stand_in.close()

    assert attempt["status"] == "succeeded", attempt
    (intent,) = stand_in.intents.values()
    assert (intent["status"], intent["amount_received"]) == ("succeeded", AMOUNT)
    assert intent["metadata"]["auto_topup_id"] == attempt["id"]
    assert stand_in.idempotent_replays["stripe /v1/payment_intents"] == 1  # the resume got the same one
    assert stand_in.idempotency_conflicts == []
    assert stand_in.errors == []
    async with db.engine.connect() as conn:
        credits = (
            await conn.execute(
                text(
                    "SELECT type, amount FROM ledger_entries WHERE tenant_id = :t AND reference_id = :r"
                    " ORDER BY seq"
                ),
                {"t": tenant_id, "r": attempt["topup_id"]},
            )
        ).all()
        balance = await conn.scalar(
            text("SELECT balance FROM wallets WHERE tenant_id = :t"), {"t": tenant_id}
        )
        results, _ = await verify_ledger(conn)
    assert [(c.type, c.amount) for c in credits if c.type == "topup"] == [("topup", AMOUNT)]
    assert balance == START + sum(c.amount for c in credits)
    assert {r.check.name: r.offending for r in results if not r.ok} == {}
