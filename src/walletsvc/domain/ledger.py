"""Wallets and ledger entries: the values the ledger is made of and the rules of a balance change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from walletsvc.domain.errors import InsufficientFunds, InvalidRequest
from walletsvc.domain.money import Money


class EntryType(StrEnum):
    TOPUP = "topup"
    BONUS = "bonus"
    USAGE_CHARGE = "usage_charge"
    USAGE_REFUND = "usage_refund"
    TOPUP_REFUND = "topup_refund"
    ADJUSTMENT = "adjustment"
    PLAN_FEE = "plan_fee"


class CounterAccount(StrEnum):
    """The other side of every ledger row: where the money came from or went to."""

    PROVIDER_STRIPE = "provider:stripe"
    PROVIDER_RAZORPAY = "provider:razorpay"
    REVENUE_USAGE = "revenue:usage"
    REVENUE_PLANS = "revenue:plans"
    PROMOTIONS = "promotions"
    ADJUSTMENTS = "adjustments"


# A refund, and the bonus share it takes back, are debited even if the tenant spent the money meanwhile:
# the provider has already paid it out.
MAY_GO_NEGATIVE = frozenset({EntryType.ADJUSTMENT, EntryType.TOPUP_REFUND, EntryType.BONUS})


@dataclass(frozen=True, slots=True)
class Wallet:
    tenant_id: str
    currency: str
    balance: int
    reserved: int
    low_balance_threshold: int
    flagged: bool
    updated_at: datetime
    owed: int = 0  # usage the wallet could not pay yet; paid off by the next credit
    max_concurrent_calls: int | None = None
    daily_spend_cap: int | None = None

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    @property
    def below_threshold(self) -> bool:
        return self.available < self.low_balance_threshold


@dataclass(frozen=True, slots=True)
class EntryRequest:
    """A balance change to be written: one ledger row and the wallet update, together."""

    tenant_id: str
    type: EntryType
    amount: Money
    counter_account: CounterAccount
    reference_type: str
    reference_id: str
    description: str
    actor: str
    # Only an admin adjustment that says so, or a refund the provider has already paid out, may take a
    # balance below zero.
    allow_negative: bool = False

    def __post_init__(self) -> None:
        if self.amount.amount == 0:
            raise InvalidRequest("a ledger entry moves a non-zero amount")
        if self.allow_negative and self.type not in MAY_GO_NEGATIVE:
            raise InvalidRequest("only an adjustment or a top-up refund (and its bonus) may go below zero")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    tenant_id: str
    seq: int
    type: EntryType
    amount: int
    currency: str
    balance_before: int
    balance_after: int
    counter_account: str
    reference_type: str
    reference_id: str
    description: str
    actor: str
    allow_negative: bool
    created_at: datetime


def check_debit(wallet: Wallet, amount: int, *, allow_negative: bool) -> None:
    """Refuse a debit that the wallet's available balance cannot cover (unless told it may go negative)."""
    if amount < 0 and not allow_negative and wallet.available + amount < 0:
        raise InsufficientFunds(available=wallet.available, requested=-amount, currency=wallet.currency)
