"""Request and response examples for the operations the portal and telephony teams use most, shown in
/docs, /redoc and openapi.yaml. Each is a valid instance of its schema (a unit test checks that).

One story runs through them: tenant `acme` (India, INR) is opened, credited Rs 500.00, tops up
Rs 500.00 through Razorpay's checkout modal, makes call `call-42` (61 s, billed by the minute at
Rs 10.00 a minute: 120 s, Rs 20.00), and gets part of a top-up and a charge refunded. Money is always
an integer of minor units with its currency: `{"amount": 50000, "currency": "INR"}` is Rs 500.00."""

from __future__ import annotations

from typing import Any

from pydantic.config import JsonDict

Example = dict[str, Any]


def of(items: list[Example]) -> JsonDict:
    """A model's `json_schema_extra`: its examples, the first one shown as the sample."""
    return {"examples": [*items]}


def money(amount: int, currency: str = "INR") -> Example:
    return {"amount": amount, "currency": currency}


TOPUP_ID = "top_5f2c8e0b9d4a4e61a7c3b2d1"
ORDER_ID = "order_Nq3vX8kLmP2aBcD4"
PAYMENT_ID = "pay_Nq3w1Jd8sQ0xYz7K"
REQUEST_ID = "3f6c1d2e9a8b4c7d8e9f0a1b2c3d4e5f"


def _wallet(balance: int, reserved: int = 0, *, updated_at: str = "2026-03-02T10:16:04Z") -> Example:
    return {
        "tenant_id": "acme",
        "currency": "INR",
        "balance": money(balance),
        "reserved": money(reserved),
        "available": money(balance - reserved),
        "low_balance_threshold": money(20000),
        "below_threshold": balance - reserved < 20000,
        "flagged": False,
        "owed": money(0),
        "max_concurrent_calls": 20,
        "daily_spend_cap": None,
        "auto_topup": {"enabled": False, "threshold": None, "amount": None},
        "updated_at": updated_at,
    }


# --- tenants and wallets --------------------------------------------------------------------------------

TENANT_CREATE: list[Example] = [
    {"id": "acme", "name": "Acme Calls", "country": "IND", "currency": "INR", "low_balance_threshold": 20000},
    {
        "id": "globex-eu",
        "name": "Globex Voice GmbH",
        "country": "DEU",
        "currency": "EUR",
        "data_residency_region": "eu-central-1",
        "payments_provider": "stripe",
    },
]

TENANT: list[Example] = [
    {
        "id": "acme",
        "name": "Acme Calls",
        "country": "IND",
        "currency": "INR",
        "data_residency_region": None,
        "payments_provider": None,
        "created_at": "2026-03-01T09:00:00Z",
        "wallet": {**_wallet(0, updated_at="2026-03-01T09:00:00Z"), "max_concurrent_calls": None},
    }
]

WALLET: list[Example] = [_wallet(98000, 10000)]

# --- top-ups --------------------------------------------------------------------------------------------

TOPUP_CREATE: list[Example] = [
    {"amount": 50000},
    {"amount": 2500, "currency": "USD", "save_payment_method": True, "checkout": "redirect"},
]

_TOPUP: Example = {
    "id": TOPUP_ID,
    "tenant_id": "acme",
    "status": "pending",
    "status_reason": None,
    "amount": money(50000),
    "credited": None,
    "bonus": None,
    "refunded": money(0),
    "checkout_kind": "razorpay_modal",
    "save_payment_method": False,
    "created_at": "2026-03-02T10:20:00Z",
    "updated_at": "2026-03-02T10:20:01Z",
    "succeeded_at": None,
}

TOPUP_CREATED: list[Example] = [
    {
        **_TOPUP,
        "checkout": {
            "kind": "razorpay_modal",
            "key_id": "rzp_test_1DP5mmOlF5G5ag",
            "order_id": ORDER_ID,
            "amount": 50000,
            "currency": "INR",
            "name": "Acme Calls",
            "description": f"Wallet top-up {TOPUP_ID}",
            "notes": {"topup_id": TOPUP_ID, "tenant_id": "acme"},
        },
    },
    {
        **_TOPUP,
        "id": "top_9a1b2c3d4e5f60718293a4b5",
        "tenant_id": "globex-us",
        "amount": money(2500, "USD"),
        "refunded": money(0, "USD"),
        "checkout_kind": "redirect",
        "save_payment_method": True,
        "checkout": {
            "kind": "redirect",
            "url": "https://checkout.stripe.com/c/pay/cs_test_a1B2c3D4e5F6g7H8",
            "expires_at": 1772533200,
        },
    },
]

_SUCCEEDED: Example = {
    **_TOPUP,
    "status": "succeeded",
    "credited": money(50000),
    "updated_at": "2026-03-02T10:21:30Z",
    "succeeded_at": "2026-03-02T10:21:30Z",
}

TOPUP: list[Example] = [_SUCCEEDED]

RAZORPAY_VERIFY: list[Example] = [
    {
        "razorpay_order_id": ORDER_ID,
        "razorpay_payment_id": PAYMENT_ID,
        "razorpay_signature": "9f1c2b7e5d4a3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b",
    }
]

REFUND_CREATE: list[Example] = [
    {"amount": 10000, "reason": "customer asked for Rs 100 back"},
    {"reason": "duplicate payment: refund all that is left", "force": True},
]

REFUND: list[Example] = [
    {
        "id": "rf_c479c726b1582724040fcd10",
        "topup_id": TOPUP_ID,
        "tenant_id": "acme",
        "amount": money(10000),
        "status": "succeeded",
        "reason": "customer asked for Rs 100 back",
        "forced": False,
        "debited": True,
        "held": money(0),
        "failure_reason": None,
        "created_by": "user:ops-1",
        "created_at": "2026-03-03T08:00:00Z",
    },
    {
        "id": "rf_0d9e8f7a6b5c4d3e2f1a0b9c",
        "topup_id": TOPUP_ID,
        "tenant_id": "acme",
        "amount": money(10000),
        "status": "pending",
        "reason": "customer asked for Rs 100 back",
        "forced": False,
        "debited": False,
        "held": money(10000),
        "failure_reason": None,
        "created_by": "user:ops-1",
        "created_at": "2026-03-03T08:00:00Z",
    },
]

TOPUP_DETAIL: list[Example] = [
    {
        **_SUCCEEDED,
        "refunded": money(10000),
        "updated_at": "2026-03-03T08:00:01Z",
        "history": [
            {
                "kind": "created",
                "source": "api",
                "detail": "routed by rule: INR or India",
                "created_at": "2026-03-02T10:20:00Z",
            },
            {
                "kind": "checkout_created",
                "source": "api",
                "detail": "razorpay_modal",
                "created_at": "2026-03-02T10:20:01Z",
            },
            {
                "kind": "succeeded",
                "source": "razorpay_verify",
                "detail": "credited INR 500.00",
                "created_at": "2026-03-02T10:21:30Z",
            },
            {
                "kind": "refunded",
                "source": "api",
                "detail": "rf_c479c726b1582724040fcd10: INR 100.00",
                "created_at": "2026-03-03T08:00:01Z",
            },
        ],
        "refunds": [REFUND[0]],
    }
]

# --- calls and usage ------------------------------------------------------------------------------------

AUTHORIZE_IN: list[Example] = [
    {"max_duration_seconds": 600},
    {"tenant_id": "acme", "max_duration_seconds": 600},
]

AUTHORIZE_OUT: list[Example] = [
    {
        "call_id": "call-42",
        "tenant_id": "acme",
        "allowed": True,
        "max_seconds": 600,
        "hold": money(10000),
        "expires_at": "2026-03-02T14:30:00Z",
        "reason": None,
        "code": None,
        "available": money(88000),
    },
    {
        "call_id": "call-43",
        "tenant_id": "acme",
        "allowed": False,
        "max_seconds": 0,
        "hold": None,
        "expires_at": None,
        "reason": "the available balance is below the minimum of INR 10.00",
        "code": "BELOW_MINIMUM",
        "available": money(800),
    },
]

USAGE_IN: list[Example] = [
    {"kind": "call", "reference_id": "call-42", "duration_seconds": 61},
    {"kind": "sms", "reference_id": "msg-7781", "quantity": 2},
    {"tenant_id": "acme", "kind": "call", "reference_id": "call-42", "duration_seconds": 61},
]


def _charge(**fields: Any) -> Example:
    charge: Example = {
        "id": "1042",
        "tenant_id": "acme",
        "kind": "call",
        "reference_id": "call-42",
        "quantity": 1,
        "duration_seconds": 61,
        "billable_seconds": 120,
        "quota_seconds": 0,
        "paid_seconds": 120,
        "amount": money(2000),
        "charged": money(2000),
        "owed": money(0),
        "refunded": money(0),
        "hold_released": money(10000),
        "replayed": False,
        "created_at": "2026-03-02T10:31:02Z",
    }
    return {**charge, **fields}


CHARGE: list[Example] = [_charge(), _charge(replayed=True)]

USAGE_BATCH_IN: list[Example] = [
    {
        "records": [
            {"kind": "call", "reference_id": "call-44", "duration_seconds": 30},
            {"kind": "sms", "reference_id": "msg-7782", "quantity": 2},
            {"kind": "call", "reference_id": "call-45"},
        ]
    }
]

USAGE_BATCH_OUT: list[Example] = [
    {
        "results": [
            {
                "index": 0,
                "status": 201,
                "charge": _charge(
                    id="1043",
                    reference_id="call-44",
                    duration_seconds=30,
                    billable_seconds=60,
                    paid_seconds=60,
                    amount=money(1000),
                    charged=money(1000),
                    hold_released=money(0),
                ),
                "problem": None,
            },
            {
                "index": 1,
                "status": 201,
                "charge": _charge(
                    id="1044",
                    kind="sms",
                    reference_id="msg-7782",
                    quantity=2,
                    duration_seconds=None,
                    billable_seconds=0,
                    paid_seconds=0,
                    amount=money(50),
                    charged=money(50),
                    hold_released=money(0),
                ),
                "problem": None,
            },
            {
                "index": 2,
                "status": 422,
                "charge": None,
                "problem": {
                    "type": "urn:walletsvc:problem:validation-failed",
                    "title": "Invalid request",
                    "status": 422,
                    "code": "VALIDATION_FAILED",
                    "detail": "a call needs duration_seconds",
                    "instance": "/v1/usage/batch",
                    "request_id": REQUEST_ID,
                },
            },
        ]
    }
]

CHARGE_REFUND_IN: list[Example] = [
    {"reason": "dropped call"},
    {"amount": 500, "reason": "partial credit for poor audio"},
]

CHARGE_REFUND: list[Example] = [
    {
        "id": "cr_54ab5c5dbffd3d5ac1fd",
        "charge_id": "1042",
        "amount": money(2000),
        "to_wallet": money(2000),
        "forgiven": money(0),
        "quota_seconds": 0,
        "reason": "dropped call",
        "created_by": "user:ops-1",
        "created_at": "2026-03-02T11:00:00Z",
        "charge": _charge(refunded=money(2000)),
    }
]

# --- provider webhooks (the bodies the providers send; shown in the docs, read raw by the routes) -------
# No nulls here: FastAPI drops them from operation-level examples (docs.py restores them in schemas only).

STRIPE_EVENT: Example = {
    "id": "evt_1QxY2zAbCdEfGhIjKlMnOpQr",
    "object": "event",
    "api_version": "2026-02-25.clover",
    "created": 1772446890,
    "data": {
        "object": {
            "id": "cs_test_a1B2c3D4e5F6g7H8",
            "object": "checkout.session",
            "amount_total": 2500,
            "client_reference_id": "top_9a1b2c3d4e5f60718293a4b5",
            "currency": "usd",
            "metadata": {"topup_id": "top_9a1b2c3d4e5f60718293a4b5", "tenant_id": "globex-us"},
            "mode": "payment",
            "payment_intent": "pi_3QxY2zAbCdEfGhIj0aBcDeFg",
            "payment_status": "paid",
            "status": "complete",
        }
    },
    "livemode": False,
    "pending_webhooks": 1,
    "type": "checkout.session.completed",
}

RAZORPAY_EVENT: Example = {
    "entity": "event",
    "account_id": "acc_BFQ7uQEaa7j2z7",
    "event": "payment.captured",
    "contains": ["payment"],
    "payload": {
        "payment": {
            "entity": {
                "id": PAYMENT_ID,
                "entity": "payment",
                "amount": 50000,
                "currency": "INR",
                "status": "captured",
                "order_id": ORDER_ID,
                "method": "upi",
                "captured": True,
                "notes": {"topup_id": TOPUP_ID, "tenant_id": "acme"},
                "created_at": 1772446880,
            }
        }
    },
    "created_at": 1772446890,
}

WEBHOOK_RECEIVED: dict[str, Example] = {
    "stripe": {"received": "evt_1QxY2zAbCdEfGhIjKlMnOpQr", "outcome": "top-up succeeded"},
    "razorpay": {"received": "evt_NqA0b1C2d3E4f5", "outcome": "top-up succeeded"},
    "duplicate": {"received": "evt_1QxY2zAbCdEfGhIjKlMnOpQr", "outcome": "duplicate"},
}


def webhook_docs(provider: str, event: Example, signature_header: str) -> dict[str, Any]:
    """`openapi_extra` for a webhook route: the body it reads raw, with an example, and its answers."""
    return {
        "requestBody": {
            "required": True,
            "description": f"The event exactly as {provider} sends it, signed in `{signature_header}` "
            "over the raw bytes.",
            "content": {
                "application/json": {
                    "schema": {"type": "object", "additionalProperties": True},
                    "example": event,
                }
            },
        },
        "responses": {
            "200": {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "received": {"type": "string", "description": "The event's id"},
                                "outcome": {"type": "string", "description": "What it did"},
                            },
                            "required": ["received", "outcome"],
                        },
                        "examples": {
                            "processed": {"value": WEBHOOK_RECEIVED[provider.lower()]},
                            "duplicate": {"value": WEBHOOK_RECEIVED["duplicate"]},
                        },
                    }
                }
            }
        },
    }
