from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from walletsvc.domain.errors import InsufficientFunds, InvalidRequest
from walletsvc.domain.ledger import CounterAccount, EntryRequest, EntryType, Wallet, check_debit
from walletsvc.domain.money import Money


def wallet(balance: int, reserved: int = 0, threshold: int = 0) -> Wallet:
    return Wallet("t1", "INR", balance, reserved, threshold, False, datetime.now(UTC))


def entry(amount: int, **kw: Any) -> EntryRequest:
    fields: dict[str, Any] = {
        "tenant_id": "t1",
        "type": EntryType.ADJUSTMENT,
        "amount": Money(amount, "INR"),
        "counter_account": CounterAccount.ADJUSTMENTS,
        "reference_type": "adjustment",
        "reference_id": "adj_1",
        "description": "why",
        "actor": "user:admin",
    }
    fields.update(kw)
    return EntryRequest(**fields)


def test_available_is_balance_minus_reserved() -> None:
    assert wallet(5000, reserved=1200).available == 3800


def test_below_threshold_uses_available() -> None:
    assert wallet(1000, reserved=600, threshold=500).below_threshold
    assert not wallet(1000, reserved=0, threshold=500).below_threshold


def test_debit_within_available_passes() -> None:
    check_debit(wallet(150), -150, allow_negative=False)


def test_debit_beyond_available_is_refused_with_figures() -> None:
    with pytest.raises(InsufficientFunds) as refused:
        check_debit(wallet(150, reserved=100), -60, allow_negative=False)
    assert refused.value.available == 50
    assert refused.value.requested == 60


def test_allow_negative_lets_a_debit_through() -> None:
    check_debit(wallet(0), -500, allow_negative=True)


def test_zero_amount_entry_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        entry(0)


def test_only_adjustments_and_paid_out_refunds_may_go_negative() -> None:
    with pytest.raises(InvalidRequest):
        entry(-10, type=EntryType.USAGE_CHARGE, allow_negative=True)
    assert entry(-10, allow_negative=True).allow_negative
    assert entry(-10, type=EntryType.TOPUP_REFUND, allow_negative=True).allow_negative
