"""The usage routes write a charge as plain values (schemas/charging.charge_document), a thousand at a
time in a batch; what they write must be exactly what the documented ChargeOut shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic_core import to_json

from walletsvc.api.schemas.charging import ChargeOut, charge_document
from walletsvc.domain.charging import UsageCharge
from walletsvc.domain.money import Money
from walletsvc.domain.rating import UsageKind


def _charge(**changes: object) -> UsageCharge:
    fields: dict[str, object] = {
        "id": 9_007_199_254_740_993,  # past 2**53: an id is a string, or a JavaScript client rounds it
        "tenant_id": "acme",
        "kind": UsageKind.CALL,
        "reference_id": "call-42",
        "quantity": 1,
        "duration_seconds": 61,
        "billable_seconds": 120,
        "quota_seconds": 60,
        "paid_seconds": 60,
        "amount": Money(15, "USD"),
        "charged": 10,
        "owed": 5,
        "refunded": 0,
        "quota_refunded_seconds": 0,
        "plan_id": None,
        "hold_amount": 60,
        "created_by": "key:k-1",
        "created_at": datetime(2025, 3, 1, 12, 30, 5, 123456, tzinfo=UTC),
    }
    fields.update(changes)
    return UsageCharge(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("replayed", [False, True])
@pytest.mark.parametrize(
    "charge",
    [_charge(), _charge(kind=UsageKind.SMS, quantity=3, duration_seconds=None, amount=Money(0, "JPY"))],
)
def test_a_charge_document_is_written_as_charge_out_shows_it(charge: UsageCharge, replayed: bool) -> None:
    written = json.loads(to_json(charge_document(charge, replayed=replayed)))
    shown = json.loads(ChargeOut.of(charge, replayed=replayed).model_dump_json())
    assert written == shown
    assert list(written) == list(ChargeOut.model_fields)
    assert written["id"] == "9007199254740993"
    assert written["replayed"] is replayed
