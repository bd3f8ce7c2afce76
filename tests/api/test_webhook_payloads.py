"""Correctly signed provider payloads of the wrong shape: never a 5xx, never money moved. Inside a usable
envelope such an event is stored and answered 200 `malformed: ...` (a repeat answers `duplicate`); a paid
payment whose amount is not an integer of minor units flags its top-up for review, wherever it is read
(webhook, Stripe return, Razorpay verify, reconcile); a refund of no positive integer amount never
reaches settlement. An unusable envelope answers 422 VALIDATION_FAILED and is not stored."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fixtures.providers import body_of, razorpay_refund, rid, stripe_event, stripe_refund
from tests.fixtures.razorpay_flow import (
    FakeRazorpay,
    deliver,
    paid_topup,
    payment_event,
    refund_event,
    verify,
)
from tests.fixtures.razorpay_flow import start_topup as start_razorpay_topup
from tests.fixtures.stripe_fake import FakeStripe, fake_stripe, send_event, start_topup, topup_detail
from tests.fixtures.tenants import TenantFactory
from tests.fixtures.webhook_payloads import count_stored, money_state, post_stripe, stored_event
from walletsvc.db.engine import Database
from walletsvc.services.reconcile import reconcile

pytestmark = pytest.mark.usefixtures("no_bonus_rules_left_on")

Mutation = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


def setting(*path: str, value: Any) -> Mutation:
    """Set one field, deep inside the event, to `value`."""

    def mutate(event: dict[str, Any]) -> dict[str, Any]:
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return event

    return mutate


def removing(*path: str) -> Mutation:
    def mutate(event: dict[str, Any]) -> dict[str, Any]:
        target = event
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return event

    return mutate


def with_raw(payload: bytes, field: str, value: int, literal: str) -> bytes:
    """The payload with one number replaced by any JSON literal (a float, 1e400, a string, ...)."""
    old = f'"{field}":{value}'.encode()
    assert payload.count(old) == 1, payload
    return payload.replace(old, f'"{field}":{literal}'.encode())


# Amounts that are not an integer of minor units, as raw JSON.
BAD_AMOUNTS = [
    pytest.param("{}.5", id="fractional"),
    pytest.param("{}.0", id="integral-float"),
    pytest.param('"lots"', id="string"),
    pytest.param('"{}"', id="numeric-string"),
    pytest.param("null", id="null"),
    pytest.param("true", id="bool"),
    pytest.param("-{}", id="negative"),
    pytest.param("1" + "0" * 30, id="absurd"),
    pytest.param("1e400", id="beyond-float"),
    pytest.param("[{}]", id="list"),
]


def bad_amount(literal: str, amount: int) -> str:
    return literal.replace("{}", str(amount))


async def assert_flagged(
    client: httpx.AsyncClient, tenant_id: str, topup_id: str, *, source: str, field: str
) -> None:
    detail = await topup_detail(client, tenant_id, topup_id)
    assert detail["status"] == "flagged", detail
    assert detail["credited"] is None
    [flag] = [e for e in detail["history"] if e["kind"] == "flagged"]
    assert flag["source"] == source
    assert flag["detail"].startswith(f"unreadable amount: `{field}`"), flag


# --- Stripe: payments ---------------------------------------------------------------------------------


async def paid_session(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory, amount: int = 100_000
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A USD tenant with a pending top-up whose Checkout Session the customer has paid at Stripe."""
    tenant = await create_tenant(currency="USD", country="USA")
    topup = await start_topup(client, tenant["id"], amount)
    return tenant, topup, stripe.pay(stripe.session_of(topup["id"])["id"])


def _object_a_list(event: dict[str, Any]) -> dict[str, Any]:
    event["data"]["object"] = [event["data"]["object"]]
    return event


def _nul_in_a_key(event: dict[str, Any]) -> dict[str, Any]:
    event["data"]["object"]["metadata"]["a\x00key"] = "x"
    return event


STRIPE_MALFORMED = [
    pytest.param(setting("data", value="an object, honest"), "`data` is", id="data-a-string"),
    pytest.param(_object_a_list, "`object` is a list", id="object-a-list"),
    pytest.param(
        setting("data", "object", "metadata", value="topup_id=x"), "`metadata` is", id="metadata-a-string"
    ),
    pytest.param(
        setting("data", "object", "client_reference_id", value=12345),
        "`client_reference_id` is 12345, not a string",
        id="client-reference-id-an-integer",
    ),
    pytest.param(
        setting("data", "object", "id", value={"id": "cs"}), "`id` is an object", id="session-id-an-object"
    ),
    pytest.param(
        setting("data", "object", "payment_status", value=1), "`payment_status` is 1", id="status-a-number"
    ),
    pytest.param(
        setting("data", "object", "payment_intent", value=7), "`payment_intent` is 7", id="intent-a-number"
    ),
    pytest.param(
        setting("data", "object", "metadata", "note", value="a\x00b"),
        "the event holds NUL",
        id="nul-in-payload",
    ),
    pytest.param(_nul_in_a_key, "the event holds NUL", id="nul-in-a-key"),
    pytest.param(setting("id", value="evt_\x00" + rid("x")), "the event holds NUL", id="nul-in-event-id"),
    pytest.param(
        setting("data", "object", "metadata", "note", value="\ud800"),
        "the event holds NUL",
        id="unpaired-surrogate",
    ),
]


@pytest.mark.parametrize(("mutate", "why"), STRIPE_MALFORMED)
async def test_malformed_stripe_event_is_stored_and_moves_no_money(
    client: httpx.AsyncClient,
    db: Database,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    mutate: Mutation,
    why: str,
) -> None:
    tenant, topup, session = await paid_session(client, stripe, create_tenant)
    before = await money_state(db, tenant["id"])
    event = mutate(stripe_event("checkout.session.completed", copy.deepcopy(session)))
    payload = body_of(event)

    response = await post_stripe(client, payload)

    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert outcome.startswith(f"malformed: {why}"), outcome
    stored = await stored_event(db, "stripe", event["id"].replace("\x00", "\\u0000"))
    assert stored is not None
    assert stored["outcome"] == outcome
    assert stored["type"] == "checkout.session.completed"
    assert await money_state(db, tenant["id"]) == before
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"

    again = await post_stripe(client, payload)
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "duplicate"
    assert await money_state(db, tenant["id"]) == before

    # Nothing was half done: the well-formed event still credits, once.
    good = await send_event(client, "checkout.session.completed", session)
    assert good.json()["outcome"] == "top-up succeeded", good.text
    assert (await money_state(db, tenant["id"])).balance == before.balance + 100_000


async def test_nul_characters_are_stored_escaped(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    _, _, session = await paid_session(client, stripe, create_tenant)
    session["metadata"]["note"] = "before\x00after"
    event_id = rid("evt") + "\x00tail"
    event = stripe_event("checkout.session.completed", session, event_id=event_id)

    response = await post_stripe(client, body_of(event))

    assert response.status_code == 200, response.text
    assert response.json()["received"] == event_id
    stored = await stored_event(db, "stripe", event_id.replace("\x00", "\\u0000"))
    assert stored is not None
    assert stored["payload"]["data"]["object"]["metadata"]["note"] == "before\\u0000after"
    assert stored["payload"]["data"]["object"]["amount_total"] == 100_000  # the rest as received


@pytest.mark.parametrize("literal", BAD_AMOUNTS)
async def test_paid_session_with_an_unreadable_amount_flags_the_topup(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory, literal: str
) -> None:
    tenant, topup, session = await paid_session(client, stripe, create_tenant)
    before = await money_state(db, tenant["id"])
    event = stripe_event("checkout.session.completed", session)
    payload = with_raw(body_of(event), "amount_total", 100_000, bad_amount(literal, 100_000))

    response = await post_stripe(client, payload)

    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert outcome.startswith("malformed: unreadable amount: `amount_total`"), outcome
    assert outcome.endswith("; top-up flagged"), outcome
    stored = await stored_event(db, "stripe", event["id"])
    assert stored is not None
    assert stored["outcome"] == outcome
    assert stored["tenant_id"] == tenant["id"]
    await assert_flagged(
        client, tenant["id"], topup["id"], source="stripe:checkout.session.completed", field="amount_total"
    )
    assert await money_state(db, tenant["id"]) == before
    again = await post_stripe(client, payload)
    assert again.json()["outcome"] == "duplicate"
    # Flagged stays flagged: a later well-formed confirmation credits nothing either.
    late = await send_event(client, "checkout.session.completed", session)
    assert late.json()["outcome"] == "top-up flagged", late.text
    assert await money_state(db, tenant["id"]) == before


@pytest.mark.parametrize(
    ("currency", "why"),
    [
        pytest.param(None, "`currency` is null", id="null"),
        pytest.param("xyz", '`currency` is "xyz"', id="unknown"),
        pytest.param(840, "`currency` is 840", id="a-number"),
    ],
)
async def test_paid_session_with_an_unreadable_currency_flags_the_topup(
    client: httpx.AsyncClient,
    db: Database,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    currency: Any,
    why: str,
) -> None:
    tenant, topup, session = await paid_session(client, stripe, create_tenant)
    before = await money_state(db, tenant["id"])
    session["currency"] = currency

    response = await send_event(client, "checkout.session.completed", session)

    assert response.status_code == 200, response.text
    assert (
        response.json()["outcome"]
        == f"malformed: unreadable amount: {why}, not an ISO 4217 currency code; top-up flagged"
    )
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "flagged"
    assert await money_state(db, tenant["id"]) == before


@pytest.mark.parametrize(
    "literal", [pytest.param("null", id="null"), pytest.param("2500.5", id="fractional")]
)
async def test_succeeded_payment_intent_with_an_unreadable_amount_flags_the_topup(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory, literal: str
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    topup = await start_topup(client, tenant["id"], 2500, checkout="client_secret")
    intent = stripe.succeed_intent(stripe.intent_of(topup["id"])["id"])
    before = await money_state(db, tenant["id"])
    payload = with_raw(
        body_of(stripe_event("payment_intent.succeeded", intent)), "amount_received", 2500, literal
    )

    response = await post_stripe(client, payload)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"].endswith("; top-up flagged"), response.text
    await assert_flagged(
        client, tenant["id"], topup["id"], source="stripe:payment_intent.succeeded", field="amount_received"
    )
    assert await money_state(db, tenant["id"]) == before


async def test_failed_payment_intent_with_a_malformed_error_changes_nothing(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    tenant = await create_tenant(currency="USD", country="USA")
    topup = await start_topup(client, tenant["id"], 2500, checkout="client_secret")
    intent = stripe.intent_of(topup["id"])
    intent["last_payment_error"] = "Your card was declined."

    response = await send_event(client, "payment_intent.payment_failed", intent)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"].startswith("malformed: `last_payment_error` is"), response.text
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"


# --- Stripe: refunds ----------------------------------------------------------------------------------


async def credited_session(
    client: httpx.AsyncClient, stripe: FakeStripe, create_tenant: TenantFactory
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    tenant, topup, session = await paid_session(client, stripe, create_tenant, amount=5000)
    credited = await send_event(client, "checkout.session.completed", session)
    assert credited.json()["outcome"] == "top-up succeeded", credited.text
    return tenant, topup, session


def _refund_amount(literal: str) -> Callable[[bytes], bytes]:
    return lambda payload: with_raw(payload, "amount", 1000, literal)


def _refund_field(*path: str, value: Any) -> Callable[[bytes], bytes]:
    return lambda payload: body_of(setting(*path, value=value)(json.loads(payload)))


def _refund_without_amount(payload: bytes) -> bytes:
    return body_of(removing("data", "object", "amount")(json.loads(payload)))


STRIPE_BAD_REFUNDS = [
    pytest.param(_refund_without_amount, "`amount` is null", id="no-amount"),
    pytest.param(_refund_amount('"abc"'), '`amount` is "abc"', id="amount-a-string"),
    pytest.param(_refund_amount("0"), "`amount` is 0, not more than 0", id="amount-zero"),
    pytest.param(_refund_amount("-1000"), "`amount` is -1000", id="amount-negative"),
    pytest.param(_refund_amount("10.5"), "`amount` is 10.5", id="amount-fractional"),
    pytest.param(_refund_amount("1" + "0" * 30), "`amount` is 1000000", id="amount-absurd"),
    pytest.param(
        _refund_field("data", "object", "currency", value="eur"), "the refund is in EUR", id="other-currency"
    ),
    pytest.param(_refund_field("data", "object", "id", value=None), "`id` is missing", id="no-id"),
    pytest.param(
        _refund_field("data", "object", "status", value=["succeeded"]),
        "`status` is a list",
        id="status-a-list",
    ),
]


@pytest.mark.parametrize(("corrupt", "why"), STRIPE_BAD_REFUNDS)
async def test_malformed_stripe_refund_never_reaches_settlement(
    client: httpx.AsyncClient,
    db: Database,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    corrupt: Callable[[bytes], bytes],
    why: str,
) -> None:
    tenant, topup, session = await credited_session(client, stripe, create_tenant)
    before = await money_state(db, tenant["id"])
    refund = stripe_refund(refund_id=rid("re"), payment_intent=session["payment_intent"], amount=1000)
    event = stripe_event("refund.updated", refund)
    payload = corrupt(body_of(event))

    response = await post_stripe(client, payload)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"].startswith(f"malformed: {why}"), response.text
    assert (await stored_event(db, "stripe", event["id"])) is not None
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["refunds"] == []
    assert detail["refunded"]["amount"] == 0
    assert await money_state(db, tenant["id"]) == before
    assert (await post_stripe(client, payload)).json()["outcome"] == "duplicate"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        pytest.param(
            {"amount_refunded": "lots"}, '`amount_refunded` is "lots"', id="amount-refunded-a-string"
        ),
        pytest.param({"amount_refunded": None}, "`amount_refunded` is null", id="amount-refunded-null"),
        pytest.param(
            {"refunds": {"data": ["re_123"]}}, 'an item of `data` is "re_123"', id="refunds-of-strings"
        ),
        pytest.param({"refunds": "re_123"}, '`refunds` is "re_123"', id="refunds-a-string"),
    ],
)
async def test_malformed_charge_refunded_moves_no_money(
    client: httpx.AsyncClient,
    db: Database,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    change: dict[str, Any],
    why: str,
) -> None:
    tenant, topup, session = await credited_session(client, stripe, create_tenant)
    before = await money_state(db, tenant["id"])
    charge = {
        **stripe.charge_refunded(session["payment_intent"], amount=5000, amount_refunded=1000),
        **change,
    }

    response = await send_event(client, "charge.refunded", charge)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"].startswith(f"malformed: {why}"), response.text
    assert (await topup_detail(client, tenant["id"], topup["id"]))["refunds"] == []
    assert await money_state(db, tenant["id"]) == before


async def test_a_malformed_second_refund_undoes_the_first_of_the_same_event(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    """Older API versions list the refunds in `charge.refunded`: one bad item refuses the whole event,
    including the good refund settled before it was read."""
    tenant, topup, session = await credited_session(client, stripe, create_tenant)
    before = await money_state(db, tenant["id"])
    good = stripe_refund(refund_id=rid("re"), payment_intent=session["payment_intent"], amount=1000)
    bad = {
        **stripe_refund(refund_id=rid("re"), payment_intent=session["payment_intent"], amount=1000),
        "amount": "x",
    }
    charge = stripe.charge_refunded(session["payment_intent"], amount=5000, amount_refunded=2000)
    charge["refunds"] = {"object": "list", "data": [good, bad]}

    response = await send_event(client, "charge.refunded", charge)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"].startswith('malformed: `amount` is "x"'), response.text
    assert (await topup_detail(client, tenant["id"], topup["id"]))["refunds"] == []
    assert await money_state(db, tenant["id"]) == before


# --- Stripe: the envelope -----------------------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    for _ in range(depth):
        inner = {"x": inner}
    return inner


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[]", id="a-list"),
        pytest.param(b'"evt"', id="a-string"),
        pytest.param(b"{not json", id="not-json"),
        pytest.param(body_of({"type": "checkout.session.completed", "data": {}}), id="no-id"),
        pytest.param(body_of({"id": 42, "type": "checkout.session.completed"}), id="id-a-number"),
        pytest.param(body_of({"id": "", "type": "checkout.session.completed"}), id="id-empty"),
        pytest.param(body_of({"id": "evt_1", "type": None}), id="type-null"),
        pytest.param(b'{"id":"evt_nan","type":"x","data":{"object":{"amount_total":NaN}}}', id="nan"),
        pytest.param(body_of({"id": "evt_deep", "type": "x", "data": _nested(100)}), id="nested-too-deep"),
        pytest.param(
            b'{"id":"evt_x","type":"x","data":' + b"[" * 5000 + b"]" * 5000 + b"}", id="beyond-the-parser"
        ),
    ],
)
async def test_unusable_stripe_envelope_answers_422_and_is_not_stored(
    client: httpx.AsyncClient, db: Database, payload: bytes
) -> None:
    before = await count_stored(db, "stripe")

    response = await post_stripe(client, payload)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await count_stored(db, "stripe") == before


# --- Razorpay: payments -------------------------------------------------------------------------------


async def captured_payment(
    client: httpx.AsyncClient, razorpay: FakeRazorpay, create_tenant: TenantFactory
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An INR tenant whose top-up of Rs 300 the customer has paid at Razorpay; walletsvc not told yet."""
    tenant = await create_tenant()
    topup = await start_razorpay_topup(client, tenant["id"], 30_000)
    payment = razorpay.pay(topup["checkout"]["order_id"], notes=topup["checkout"]["notes"])
    return tenant, topup, payment


def _entity_a_list(event: dict[str, Any]) -> dict[str, Any]:
    event["payload"]["payment"]["entity"] = [event["payload"]["payment"]["entity"]]
    return event


RAZORPAY_MALFORMED = [
    pytest.param(setting("payload", value="payment.captured"), "`payload` is", id="payload-a-string"),
    pytest.param(setting("payload", "payment", value=[]), "`payment` is a list", id="payment-a-list"),
    pytest.param(_entity_a_list, "`entity` is a list", id="entity-a-list"),
    pytest.param(
        setting("payload", "payment", "entity", "notes", value="topup"), "`notes` is", id="notes-a-string"
    ),
    pytest.param(
        setting("payload", "payment", "entity", "notes", value=["topup"]),
        "`notes` is a list",
        id="notes-a-full-list",
    ),
    pytest.param(
        setting("payload", "payment", "entity", "id", value=123), "`id` is 123", id="payment-id-a-number"
    ),
    pytest.param(
        setting("payload", "payment", "entity", "status", value=True), "`status` is true", id="status-a-bool"
    ),
    pytest.param(
        setting("payload", "payment", "entity", "description", value="\x00"),
        "the event holds NUL",
        id="nul-in-payload",
    ),
]


@pytest.mark.parametrize(("mutate", "why"), RAZORPAY_MALFORMED)
async def test_malformed_razorpay_event_is_stored_and_moves_no_money(
    client: httpx.AsyncClient,
    db: Database,
    razorpay: FakeRazorpay,
    create_tenant: TenantFactory,
    mutate: Mutation,
    why: str,
) -> None:
    tenant, topup, payment = await captured_payment(client, razorpay, create_tenant)
    before = await money_state(db, tenant["id"])
    payload = body_of(mutate(payment_event("payment.captured", copy.deepcopy(payment))))
    event_id = rid("evt")

    response = await deliver(client, payload, event_id=event_id)

    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert outcome.startswith(f"malformed: {why}"), outcome
    stored = await stored_event(db, "razorpay", event_id)
    assert stored is not None
    assert stored["outcome"] == outcome
    assert await money_state(db, tenant["id"]) == before
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"
    again = await deliver(client, payload, event_id=event_id)
    assert again.json()["outcome"] == "duplicate"

    good = await deliver(client, payment_event("payment.captured", payment))
    assert good.json()["outcome"] == "top-up succeeded", good.text
    assert (await money_state(db, tenant["id"])).balance == before.balance + 30_000


@pytest.mark.parametrize("literal", BAD_AMOUNTS)
async def test_captured_payment_with_an_unreadable_amount_flags_the_topup(
    client: httpx.AsyncClient,
    db: Database,
    razorpay: FakeRazorpay,
    create_tenant: TenantFactory,
    literal: str,
) -> None:
    tenant, topup, payment = await captured_payment(client, razorpay, create_tenant)
    before = await money_state(db, tenant["id"])
    payload = with_raw(
        body_of(payment_event("payment.captured", payment)), "amount", 30_000, bad_amount(literal, 30_000)
    )
    event_id = rid("evt")

    response = await deliver(client, payload, event_id=event_id)

    assert response.status_code == 200, response.text
    outcome = response.json()["outcome"]
    assert outcome.startswith("malformed: unreadable amount: `amount`"), outcome
    assert outcome.endswith("; top-up flagged"), outcome
    assert (await stored_event(db, "razorpay", event_id)) is not None
    await assert_flagged(
        client, tenant["id"], topup["id"], source="razorpay:payment.captured", field="amount"
    )
    assert await money_state(db, tenant["id"]) == before


async def test_captured_payment_without_an_amount_flags_the_topup(
    client: httpx.AsyncClient, db: Database, razorpay: FakeRazorpay, create_tenant: TenantFactory
) -> None:
    tenant, topup, payment = await captured_payment(client, razorpay, create_tenant)
    before = await money_state(db, tenant["id"])
    del payment["amount"]

    response = await deliver(client, payment_event("payment.captured", payment))

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == (
        "malformed: unreadable amount: `amount` is null, not an integer of minor units; top-up flagged"
    )
    await assert_flagged(
        client, tenant["id"], topup["id"], source="razorpay:payment.captured", field="amount"
    )
    assert await money_state(db, tenant["id"]) == before


# --- Razorpay: refunds --------------------------------------------------------------------------------


def _razorpay_refund_amount(literal: str) -> Callable[[bytes], bytes]:
    return lambda payload: with_raw(payload, "amount", 5000, literal)


def _razorpay_refund_field(*path: str, value: Any) -> Callable[[bytes], bytes]:
    return lambda payload: body_of(setting("payload", "refund", *path, value=value)(json.loads(payload)))


def _razorpay_refund_without_amount(payload: bytes) -> bytes:
    return body_of(removing("payload", "refund", "entity", "amount")(json.loads(payload)))


RAZORPAY_BAD_REFUNDS = [
    pytest.param(_razorpay_refund_without_amount, "`amount` is null", id="no-amount"),
    pytest.param(_razorpay_refund_amount('"abc"'), '`amount` is "abc"', id="amount-abc"),
    pytest.param(_razorpay_refund_amount("0"), "`amount` is 0, not more than 0", id="amount-zero"),
    pytest.param(_razorpay_refund_amount("-5000"), "`amount` is -5000", id="amount-negative"),
    pytest.param(_razorpay_refund_amount("5000.5"), "`amount` is 5000.5", id="amount-fractional"),
    pytest.param(_razorpay_refund_amount("false"), "`amount` is false", id="amount-a-bool"),
    pytest.param(_razorpay_refund_field("entity", value="rfnd_1"), "`entity` is", id="entity-a-string"),
    pytest.param(_razorpay_refund_field("entity", "notes", value="ours"), "`notes` is", id="notes-a-string"),
    pytest.param(
        _razorpay_refund_field("entity", "currency", value="USD"), "the refund is in USD", id="other-currency"
    ),
]


@pytest.mark.parametrize(("corrupt", "why"), RAZORPAY_BAD_REFUNDS)
async def test_malformed_razorpay_refund_never_reaches_settlement(
    client: httpx.AsyncClient,
    db: Database,
    razorpay: FakeRazorpay,
    create_tenant: TenantFactory,
    corrupt: Callable[[bytes], bytes],
    why: str,
) -> None:
    tenant = await create_tenant()
    topup, payment = await paid_topup(client, razorpay, tenant["id"], 30_000)
    before = await money_state(db, tenant["id"])
    refund = razorpay_refund(refund_id=rid("rfnd"), payment_id=payment["id"], amount=5000)
    payload = corrupt(body_of(refund_event("refund.processed", refund, payment)))
    event_id = rid("evt")

    response = await deliver(client, payload, event_id=event_id)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"].startswith(f"malformed: {why}"), response.text
    assert (await stored_event(db, "razorpay", event_id)) is not None
    detail = await topup_detail(client, tenant["id"], topup["id"])
    assert detail["refunds"] == []
    assert detail["refunded"]["amount"] == 0
    assert await money_state(db, tenant["id"]) == before
    assert (await deliver(client, payload, event_id=event_id)).json()["outcome"] == "duplicate"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[]", id="a-list"),
        pytest.param(body_of({"entity": "event", "payload": {}}), id="no-event"),
        pytest.param(body_of({"entity": "event", "event": 7, "payload": {}}), id="event-a-number"),
    ],
)
async def test_unusable_razorpay_envelope_answers_422_and_is_not_stored(
    client: httpx.AsyncClient, db: Database, payload: bytes
) -> None:
    before = await count_stored(db, "razorpay")

    response = await deliver(client, payload)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert await count_stored(db, "razorpay") == before


# --- the Stripe return route, the Razorpay verify route and reconcile ---------------------------------


@pytest.mark.parametrize(
    "amount_total", [pytest.param(100_000.5, id="fractional"), pytest.param(None, id="null")]
)
async def test_stripe_return_with_an_unreadable_amount_flags_and_credits_nothing(
    client: httpx.AsyncClient,
    db: Database,
    stripe: FakeStripe,
    create_tenant: TenantFactory,
    amount_total: float | None,
) -> None:
    tenant, topup, session = await paid_session(client, stripe, create_tenant)
    stripe.sessions[session["id"]]["amount_total"] = amount_total
    before = await money_state(db, tenant["id"])

    response = await client.get("/v1/topups/stripe/return", params={"session_id": session["id"]})

    assert response.status_code == 303, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["status"] == ["flagged"]
    assert query["topup_id"] == [topup["id"]]
    await assert_flagged(client, tenant["id"], topup["id"], source="stripe_return", field="amount_total")
    assert await money_state(db, tenant["id"]) == before


async def test_stripe_return_with_a_malformed_session_changes_nothing(
    client: httpx.AsyncClient, db: Database, stripe: FakeStripe, create_tenant: TenantFactory
) -> None:
    tenant, topup, session = await paid_session(client, stripe, create_tenant)
    stripe.sessions[session["id"]]["metadata"] = "topup_id=" + topup["id"]
    before = await money_state(db, tenant["id"])

    response = await client.get("/v1/topups/stripe/return", params={"session_id": session["id"]})

    assert response.status_code == 303, response.text  # shown as pending; the webhook or reconcile follows
    assert parse_qs(urlsplit(response.headers["location"]).query)["status"] == ["pending"]
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"
    assert await money_state(db, tenant["id"]) == before


@pytest.mark.parametrize("amount", [pytest.param(30_000.5, id="fractional"), pytest.param(None, id="null")])
async def test_razorpay_verify_with_an_unreadable_amount_flags_and_credits_nothing(
    client: httpx.AsyncClient,
    db: Database,
    razorpay: FakeRazorpay,
    create_tenant: TenantFactory,
    amount: float | None,
) -> None:
    tenant, topup, payment = await captured_payment(client, razorpay, create_tenant)
    razorpay.payments[payment["id"]]["amount"] = amount
    before = await money_state(db, tenant["id"])

    response = await verify(
        client, tenant["id"], topup["id"], order_id=topup["checkout"]["order_id"], payment_id=payment["id"]
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "flagged"
    await assert_flagged(client, tenant["id"], topup["id"], source="razorpay_verify", field="amount")
    assert await money_state(db, tenant["id"]) == before


async def test_razorpay_verify_with_a_malformed_payment_answers_503_and_changes_nothing(
    client: httpx.AsyncClient, db: Database, razorpay: FakeRazorpay, create_tenant: TenantFactory
) -> None:
    tenant, topup, payment = await captured_payment(client, razorpay, create_tenant)
    razorpay.payments[payment["id"]]["status"] = ["captured"]
    before = await money_state(db, tenant["id"])

    response = await verify(
        client, tenant["id"], topup["id"], order_id=topup["checkout"]["order_id"], payment_id=payment["id"]
    )

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert (await topup_detail(client, tenant["id"], topup["id"]))["status"] == "pending"
    assert await money_state(db, tenant["id"]) == before


async def test_reconcile_flags_topups_whose_provider_amount_is_unreadable(
    client: httpx.AsyncClient, db: Database, app: Any, razorpay: FakeRazorpay, create_tenant: TenantFactory
) -> None:
    with fake_stripe() as stripe:
        # Other tests' pending Stripe top-ups are unknown to this fake: it answers 404 and they stay.
        usd, stripe_topup, session = await paid_session(client, stripe, create_tenant)
        stripe.sessions[session["id"]]["amount_total"] = "lots"
        inr, razorpay_topup, payment = await captured_payment(client, razorpay, create_tenant)
        razorpay.payments[payment["id"]]["amount"] = 300.5
        before = (await money_state(db, usd["id"]), await money_state(db, inr["id"]))
        report = await reconcile(
            db, app.state.gateways, older_than=timedelta(0), policy=app.state.auto_topup_policy
        )

    assert not [e for e in report.errors if stripe_topup["id"] in e or razorpay_topup["id"] in e], (
        report.errors
    )
    await assert_flagged(client, usd["id"], stripe_topup["id"], source="reconcile", field="amount_total")
    await assert_flagged(client, inr["id"], razorpay_topup["id"], source="reconcile", field="amount")
    assert (await money_state(db, usd["id"]), await money_state(db, inr["id"])) == before
