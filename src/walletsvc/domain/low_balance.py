"""Low-balance alerts: when a wallet is low, when that is said, and when it is said to be over.

A wallet is *low* while its threshold is set (> 0) and its available balance (balance - reserved) is
below it. A low *spell* starts when a change takes it there and ends when a change lifts it back to the
threshold or above (or the threshold is lowered under it, or set to 0). The rule, evaluated after every
change to the available balance or the threshold, in the transaction that made the change:

- the wallet is low and this spell has not been announced yet, and no `wallet.low_balance` was recorded
  for this tenant today (UTC): announce it (`wallet.low_balance`);
- the wallet is no longer low and the spell that ends was announced: say so once
  (`wallet.low_balance_resolved`).

So a wallet flapping around its threshold is announced at most once a day; a spell that started on a
day already announced is announced by the first change of a later day that finds it still low; and a
spell that was never announced ends silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from walletsvc.domain.errors import UnknownCurrency
from walletsvc.domain.money import check_currency


class CauseType(StrEnum):
    """What changed the available balance (or the threshold), as named in an alert's `cause`."""

    CHARGE = "charge"  # a usage charge (its id)
    HOLD = "hold"  # a call authorization's hold (the call id)
    HOLDS_EXPIRED = "holds_expired"  # unsettled holds released at expiry
    TOPUP = "topup"  # a top-up credited (its id)
    TOPUP_REFUND = "topup_refund"  # a top-up refund held, paid out or reversed (the refund id)
    CHARGE_REFUND = "charge_refund"  # a charge refunded (the refund id)
    ADJUSTMENT = "adjustment"  # an admin adjustment (its id)
    PLAN_FEE = "plan_fee"  # a period's plan fee (its reference)
    THRESHOLD = "threshold"  # the threshold itself was changed


@dataclass(frozen=True, slots=True)
class Cause:
    type: CauseType
    id: str | None = None

    def as_payload(self) -> dict[str, str | None]:
        return {"type": self.type.value, "id": self.id}


@dataclass(frozen=True, slots=True)
class AlertState:
    """What the wallet row remembers: since when it is low (None: it is not), and when the last
    `wallet.low_balance` was recorded."""

    low_since: datetime | None = None
    alerted_at: datetime | None = None

    @property
    def spell_announced(self) -> bool:
        return (
            self.low_since is not None and self.alerted_at is not None and self.alerted_at >= self.low_since
        )


class Signal(StrEnum):
    LOW = "low"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertDecision:
    state: AlertState  # what the wallet row remembers from now on
    signal: Signal | None  # the event to record in this transaction, if any


def is_low(available: int, threshold: int) -> bool:
    return threshold > 0 and available < threshold


def utc_day(moment: datetime) -> tuple[int, int, int]:
    day = moment.astimezone(UTC)
    return (day.year, day.month, day.day)


def evaluate(state: AlertState, *, available: int, threshold: int, now: datetime) -> AlertDecision:
    """The rule above, for a wallet whose available balance (or threshold) has just changed."""
    if not is_low(available, threshold):
        if state.low_since is None:
            return AlertDecision(state, None)
        ended = AlertState(low_since=None, alerted_at=state.alerted_at)
        return AlertDecision(ended, Signal.RESOLVED if state.spell_announced else None)
    spell = state if state.low_since is not None else AlertState(low_since=now, alerted_at=state.alerted_at)
    if spell.spell_announced or (spell.alerted_at is not None and utc_day(spell.alerted_at) == utc_day(now)):
        return AlertDecision(spell, None)
    return AlertDecision(AlertState(low_since=spell.low_since, alerted_at=now), Signal.LOW)


def threshold_for(currency: str, requested: int | None, defaults: Mapping[str, int]) -> int:
    """A new wallet's threshold: the one asked for (0: no alerts), else the currency's default, else 0."""
    if requested is not None:
        return requested
    return defaults.get(currency, 0)


MAX_THRESHOLD = 10**15


def parse_thresholds(text: str) -> dict[str, int]:
    """`INR=50000,USD=500`: minor units per ISO 4217 currency. ValueError says what is wrong."""
    thresholds: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        currency, sep, amount = item.partition("=")
        currency, amount = currency.strip().upper(), amount.strip()
        if not sep or not currency or not amount:
            raise ValueError(f"{item!r} is not CURRENCY=AMOUNT (e.g. INR=50000, in minor units)")
        try:
            check_currency(currency)
        except UnknownCurrency as exc:
            raise ValueError(f"{currency!r} is not an ISO 4217 currency code") from exc
        if not amount.isdigit():
            raise ValueError(f"{item!r}: the amount is a whole number of minor units, e.g. INR=50000")
        value = int(amount)
        if value > MAX_THRESHOLD:
            raise ValueError(f"{item!r}: at most {MAX_THRESHOLD} minor units")
        if currency in thresholds:
            raise ValueError(f"{currency} is named twice")
        thresholds[currency] = value
    return thresholds


def parse_low_balance_setting(value: object) -> dict[str, int]:
    """LOW_BALANCE_THRESHOLDS as written in the environment (`INR=50000,USD=500` or a JSON object) or
    already a mapping. ValueError says what is wrong."""
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            return parse_thresholds(text)
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON object: {exc.msg}") from exc
    if not isinstance(value, Mapping):
        raise ValueError("write CURRENCY=AMOUNT pairs, e.g. INR=50000,USD=500")
    pairs: list[str] = []
    for currency, amount in value.items():
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError(f"{currency}: the amount is a whole number of minor units, not {amount!r}")
        if amount < 0:
            raise ValueError(f"{currency}: a threshold is 0 or more")
        pairs.append(f"{currency}={amount}")
    return parse_thresholds(",".join(pairs))
