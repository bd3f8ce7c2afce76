"""docs/events.md documents every event type with an example, and the examples say what walletsvc really
records: a tenant's life (funding, charges below its threshold and past its balance, a credit, a top-up,
a failed top-up, a plan, a closed period with a fee it cannot pay) is run here, and every event it
records must carry exactly the fields its documented example shows."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from tests.fixtures.documents import credited_topup, gst_config, use_config
from tests.fixtures.periods import backdate_subscription, create_plan
from tests.fixtures.usage import ref, subscribe, usage_key
from walletsvc.db.engine import Database, unit_of_work
from walletsvc.db.repositories.topups import TopupRepository
from walletsvc.domain.auto_topup import AutoTopupPolicy
from walletsvc.domain.events import EventType
from walletsvc.domain.money import Money
from walletsvc.domain.tenants import ProviderName
from walletsvc.domain.topups import CheckoutKind
from walletsvc.services.periods import close_due_periods
from walletsvc.services.topups import fail_topup

CATALOG = Path(__file__).resolve().parents[2] / "docs" / "events.md"
_SECTION = re.compile(r"^### `([a-z_.]+)`\n(.*?)(?=^### |^## |\Z)", re.S | re.M)
_JSON = re.compile(r"```json\n(.*?)\n```", re.S)


def documented_examples() -> dict[str, dict[str, Any]]:
    """Each `### `type`` section's first JSON example (the body a webhook endpoint receives)."""
    examples = {}
    for name, body in _SECTION.findall(CATALOG.read_text()):
        found = _JSON.search(body)
        assert found, f"docs/events.md: {name} has no JSON example"
        examples[name] = json.loads(found.group(1))
    return examples


def test_every_event_type_is_documented_with_an_example() -> None:
    examples = documented_examples()
    assert set(examples) == {t.value for t in EventType}
    for name, example in examples.items():
        assert example["type"] == name
        assert set(example) == {"id", "type", "timestamp", "tenant_id", "data"}, name
        assert isinstance(example["data"], dict)


def shape_differences(recorded: dict[str, Any], documented: dict[str, Any], at: str = "") -> list[str]:
    """Fields one has and the other lacks, at the top and inside objects both have (a field that is null
    in one and an object in the other, such as a bonus, is not a difference)."""
    found = [f"{at}{k}: recorded only" for k in recorded.keys() - documented.keys()]
    found += [f"{at}{k}: documented only" for k in documented.keys() - recorded.keys()]
    for key in recorded.keys() & documented.keys():
        if isinstance(recorded[key], dict) and isinstance(documented[key], dict):
            found += shape_differences(recorded[key], documented[key], f"{at}{key}.")
    return found


async def _recorded(db: Database, tenant_id: str) -> dict[str, dict[str, Any]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT type, payload FROM events WHERE tenant_id = :t ORDER BY seq"), {"t": tenant_id}
        )
        return {row.type: row.payload for row in rows}  # the last of each type


async def test_the_documented_examples_carry_the_fields_walletsvc_records(
    client: httpx.AsyncClient, db: Database, admin_headers: dict[str, str], create_tenant: Any
) -> None:
    tenant = await create_tenant(balance=100_000, low_balance_threshold=50_000)  # adjustment.created
    tenant_id = tenant["id"]
    telephony = await usage_key(client, admin_headers, tenant_id)
    for seconds in (3_000, 5_000):  # Rs 10 a minute: below the threshold, then past the balance
        charged = await client.post(
            "/v1/usage",
            json={"kind": "call", "reference_id": ref("call"), "duration_seconds": seconds},
            headers=telephony,
        )
        assert charged.status_code in (201, 402), charged.text
    credit = {"amount": 200_000, "reason": "settle up"}  # pays what is owed: unflagged, resolved
    url = f"/v1/admin/tenants/{tenant_id}/adjustments"
    assert (await client.post(url, json=credit, headers=admin_headers)).status_code == 201
    async with unit_of_work(db) as session:
        use_config(session, gst_config())
        await credited_topup(session, tenant_id, 50_000)  # topup.succeeded, invoice.issued
        topup_id = f"tu_{uuid.uuid4().hex[:16]}"
        await TopupRepository(session).add(
            topup_id=topup_id,
            tenant_id=tenant_id,
            provider=ProviderName.RAZORPAY,
            amount=Money(10_000, "INR"),
            checkout_kind=CheckoutKind.RAZORPAY_MODAL,
            save_payment_method=False,
            created_by="user:test",
        )
        await fail_topup(
            session, tenant_id, topup_id, reason="card declined", source="test", policy=AutoTopupPolicy()
        )
    plan = await create_plan(client, admin_headers, monthly_price=1_000_000)  # more than the wallet holds
    await subscribe(client, admin_headers, tenant_id, plan["id"])  # subscription.changed
    await backdate_subscription(db, tenant_id, ended=1)
    assert await close_due_periods(db, tenants=[tenant_id]) == 1  # period.closed, plan_fee.*

    recorded = await _recorded(db, tenant_id)
    examples = documented_examples()
    expected = {
        "adjustment.created",
        "wallet.low_balance",
        "charge.insufficient_funds",
        "wallet.flagged",
        "wallet.unflagged",
        "wallet.low_balance_resolved",
        "topup.succeeded",
        "invoice.issued",
        "topup.failed",
        "subscription.changed",
        "period.closed",
        "plan_fee.charged",
        "plan_fee.owed",
    }
    assert expected <= set(recorded), sorted(recorded)
    mismatched = {
        name: (differences, payload)
        for name, payload in recorded.items()
        if (differences := shape_differences(payload, examples.get(name, {}).get("data", {})))
    }
    assert not mismatched, "\n".join(
        f"{name}: {differences}\n  recorded: {json.dumps(payload, sort_keys=True)}"
        for name, (differences, payload) in mismatched.items()
    )
