"""Properties of `decide_charges`, the pure charging decision, for any sequence of records: the ledger chain
holds, the balance never goes below zero, quota is used before money, charged + owed is the rated cost,
replays change nothing, and the daily spend counts each new record once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from walletsvc.domain.charging import (
    Decisions,
    LockedWallet,
    Quota,
    UsageRecord,
    chain_line,
    decide_charges,
    rate_record,
)
from walletsvc.domain.errors import InvalidRequest
from walletsvc.domain.ledger import CounterAccount, EntryType
from walletsvc.domain.low_balance import Signal
from walletsvc.domain.rating import Rates, UsageKind

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
UNIT_KINDS = [k for k in UsageKind if k is not UsageKind.CALL]

decimals = st.decimals(min_value=0, max_value=500, places=2, allow_nan=False, allow_infinity=False)
rates_st = st.builds(
    Rates,
    currency=st.just("USD"),
    per_minute_rate=decimals,
    billing_increment_seconds=st.sampled_from([1, 6, 30, 60]),
    minimum_billable_seconds=st.sampled_from([0, 15, 60]),
    connection_fee=st.decimals(min_value=0, max_value=20, places=1, allow_nan=False, allow_infinity=False),
    unit_prices=st.fixed_dictionaries({k: decimals for k in UNIT_KINDS}),
)
references = st.sampled_from([f"ref-{i}" for i in range(8)])  # few: repeats are common


@st.composite
def records_st(draw: st.DrawFn) -> list[UsageRecord]:
    records = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(list(UsageKind)))
        if kind is UsageKind.CALL:
            # Negative durations cannot be rated: a rating error beside the others.
            duration = draw(st.integers(-5, 7_200))
            records.append(UsageRecord("t1", kind, draw(references), duration, None, "test"))
        else:
            quantity = draw(st.integers(-1, 40))
            records.append(UsageRecord("t1", kind, draw(references), None, quantity, "test"))
    return records


@st.composite
def wallets_st(draw: st.DrawFn) -> LockedWallet:
    reserved = draw(st.integers(0, 5_000))
    return LockedWallet(
        tenant_id="t1",
        currency="USD",
        balance=draw(st.integers(-2_000, 50_000)),
        reserved=reserved,
        ledger_seq=draw(st.integers(0, 1_000)),
        flagged=draw(st.booleans()),
        owed=draw(st.integers(0, 3_000)),
        spent_day=draw(st.sampled_from([None, TODAY, TODAY - timedelta(days=1)])),
        spent_today=draw(st.integers(0, 10_000)),
        max_concurrent_calls=None,
        daily_spend_cap=None,
        low_balance_threshold=draw(st.sampled_from([0, 500, 20_000])),
    )


@st.composite
def quotas_st(draw: st.DrawFn) -> Quota | None:
    if draw(st.booleans()):
        return None
    ended = draw(st.booleans())  # a period that ended before now: rolled forward, quota back to 0
    start = NOW - timedelta(days=45 if ended else 10)
    return Quota(
        used_seconds=draw(st.integers(0, 6_000)),
        included_seconds=draw(st.sampled_from([0, 60, 600, 6_000])),
        period_start=start,
        period_end=start + timedelta(days=30),
    )


Case = tuple[LockedWallet, list[UsageRecord], Rates, Quota | None, dict[str, int], set[tuple[str, str]]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    wallet = draw(wallets_st())
    records = draw(records_st())
    calls = sorted({r.reference_id for r in records if r.kind is UsageKind.CALL})
    holds: dict[str, int] = {}
    room = wallet.reserved
    for call_id in draw(st.lists(st.sampled_from(calls), unique=True)) if calls else []:
        amount = draw(st.integers(0, room))
        if amount:
            holds[call_id] = amount
            room -= amount
    keys = sorted({r.key for r in records})
    before = set(draw(st.lists(st.sampled_from(keys), unique=True))) if keys else set()
    return wallet, records, draw(rates_st), draw(quotas_st()), holds, before


def decide(
    wallet: LockedWallet,
    records: list[UsageRecord],
    rates: Rates,
    quota: Quota | None,
    holds: dict[str, int],
    before: set[tuple[str, str]],
) -> Decisions:
    return decide_charges(
        wallet, records, rates=rates, quota=quota, holds=holds, charged_before=before, now=NOW
    )


@settings(max_examples=200, deadline=None)
@given(cases())
def test_the_ledger_chain_holds_and_ends_at_the_new_balance(case: Case) -> None:
    wallet, records, rates, quota, holds, before = case
    decided = decide(wallet, records, rates, quota, holds, before)
    lines = [d.line for d in decided.decisions if d.line is not None]
    balance, seq = wallet.balance, wallet.ledger_seq
    for line in lines:
        assert line.seq == seq + 1
        assert line.balance_before == balance
        assert line.balance_after == line.balance_before + line.amount
        assert line.amount < 0
        assert line.entry_type is EntryType.USAGE_CHARGE
        balance, seq = line.balance_after, line.seq
    assert decided.wallet.balance == balance
    assert decided.wallet.ledger_seq == seq
    assert wallet == case[0]  # the locked state given is left as it was


@settings(max_examples=200, deadline=None)
@given(cases())
def test_the_balance_never_drops_below_zero_and_what_is_owed_is_what_could_not_be_paid(case: Case) -> None:
    wallet, records, rates, quota, holds, before = case
    decided = decide(wallet, records, rates, quota, holds, before)
    for d in decided.new:
        available_before = d.available_after + d.charged  # after its hold was released
        assert 0 <= d.charged <= max(available_before, 0)
        if d.charged:
            assert d.balance_after >= 0
            assert d.available_after >= 0
        if d.owed:
            assert d.available_after <= 0  # it paid all it could
    assert decided.wallet.owed == wallet.owed + sum(d.owed for d in decided.new)
    owes = any(d.owed for d in decided.new)
    assert decided.wallet.flagged == (wallet.flagged or owes)
    assert decided.newly_flagged == (owes and not wallet.flagged)
    assert [d.owed > 0 for d in decided.short] == [True] * len(decided.short)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_charged_plus_owed_is_the_rated_cost_of_every_new_record(case: Case) -> None:
    wallet, records, rates, quota, holds, before = case
    decided = decide(wallet, records, rates, quota, holds, before)
    assert len(decided.decisions) == len(records)
    for d in decided.new:
        assert d.rating is not None
        assert d.charged + d.owed == d.rating.amount.amount
        assert d.owed >= 0
        assert (d.line is not None) == (d.charged > 0)
        if d.line is not None:
            assert d.line.amount == -d.charged
    for d in decided.decisions:
        assert sum((d.replayed, d.error is not None, d.is_new)) == 1


@settings(max_examples=200, deadline=None)
@given(cases())
def test_quota_is_used_before_money(case: Case) -> None:
    wallet, records, rates, quota, holds, before = case
    decided = decide(wallet, records, rates, quota, holds, before)
    if quota is None:
        assert decided.quota is None
        assert all(d.rating is not None and d.rating.quota_seconds == 0 for d in decided.new)
        return
    assert decided.quota is not None
    rolled_over = quota.period_end <= NOW
    left = quota.included_seconds - (0 if rolled_over else quota.used_seconds)
    left = max(left, 0)
    used = 0
    for d in decided.new:
        assert d.rating is not None
        if d.record.kind is UsageKind.CALL:
            assert d.rating.quota_seconds == min(d.rating.billable_seconds, left)
            left -= d.rating.quota_seconds
            used += d.rating.quota_seconds
            if d.rating.paid_seconds:
                assert left == 0  # money is paid only once the quota is used up
    assert decided.quota.used_seconds == (0 if rolled_over else quota.used_seconds) + used
    assert decided.quota.period_start <= NOW < decided.quota.period_end
    assert decided.quota_changed == (rolled_over or used > 0)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_replays_change_nothing(case: Case) -> None:
    wallet, records, rates, quota, holds, before = case
    decided = decide(wallet, records, rates, quota, holds, before)
    seen = set(before)
    for d in decided.decisions:
        if d.record.key in seen:
            assert d.replayed
            assert (d.rating, d.line, d.charged) == (None, None, 0)
        if d.is_new:
            seen.add(d.record.key)
    # Every record again, after the first go: nothing new, and the wallet ends as it was after the first.
    again = decide(wallet, records + records, rates, quota, holds, before)
    assert not any(d.is_new for d in again.decisions[len(records) :])
    assert again.wallet == decided.wallet
    assert again.quota == decided.quota
    # And once more, from the state the first go left, with all it charged known as charged.
    later = decide(decided.wallet, records, rates, decided.quota, {}, seen)
    assert later.new == []
    assert later.wallet == decided.wallet
    assert not later.wallet_changed


@settings(max_examples=200, deadline=None)
@given(cases())
def test_the_daily_spend_counts_every_new_record_once(case: Case) -> None:
    wallet, records, rates, quota, holds, before = case
    decided = decide(wallet, records, rates, quota, holds, before)
    start = wallet.spent_today if wallet.spent_day == TODAY else 0
    new_total = sum(d.rating.amount.amount for d in decided.new if d.rating is not None)
    assert decided.wallet.spent_today == start + new_total
    assert decided.wallet.spent_day == TODAY


@settings(max_examples=200, deadline=None)
@given(cases())
def test_a_call_releases_its_own_hold_once(case: Case) -> None:
    wallet, records, rates, quota, holds, before = case
    decided = decide(wallet, records, rates, quota, holds, before)
    new_calls = {d.record.reference_id for d in decided.new if d.record.kind is UsageKind.CALL}
    assert decided.holds_released == {c: a for c, a in holds.items() if c in new_calls}
    assert sum(d.hold_released for d in decided.new) == sum(decided.holds_released.values())
    assert decided.wallet.reserved == wallet.reserved - sum(decided.holds_released.values())
    assert decided.available_steps == [d.available_after for d in decided.new]


def test_a_record_that_cannot_be_rated_is_refused_alone() -> None:
    wallet = LockedWallet("t1", "USD", 1_000, 0, 3, False, 0, TODAY, 0, None, None, 0)
    rates = Rates("USD", Decimal(60), unit_prices={UsageKind.SMS: Decimal(2)})
    records = [
        UsageRecord("t1", UsageKind.SMS, "a", None, 1, "test"),
        UsageRecord("t1", UsageKind.CALL, "bad", -1, None, "test"),
        UsageRecord("t1", UsageKind.SMS, "b", None, 2, "test"),
    ]
    decided = decide(wallet, records, rates, None, {}, set())
    assert [d.charged for d in decided.decisions] == [2, 0, 4]
    assert isinstance(decided.decisions[1].error, InvalidRequest)
    assert decided.wallet.balance == 1_000 - 6
    assert [line.seq for d in decided.decisions if (line := d.line) is not None] == [4, 5]


def test_a_wallet_that_cannot_pay_is_charged_what_it_has_and_owes_the_rest() -> None:
    wallet = LockedWallet("t1", "USD", 5, 0, 0, False, 0, None, 0, None, None, 0)
    rates = Rates("USD", Decimal(60), unit_prices={UsageKind.SMS: Decimal(2)})
    records = [UsageRecord("t1", UsageKind.SMS, "a", None, 4, "test")]  # 8 on a balance of 5
    [d] = decide(wallet, records, rates, None, {}, set()).decisions
    assert (d.charged, d.owed, d.balance_after) == (5, 3, 0)


def test_crossing_the_low_balance_threshold_is_decided_after_the_charge_that_did_it() -> None:
    wallet = LockedWallet("t1", "USD", 1_010, 0, 0, False, 0, TODAY, 0, None, None, 1_000)
    rates = Rates("USD", Decimal(60), unit_prices={UsageKind.SMS: Decimal(5)})
    records = [UsageRecord("t1", UsageKind.SMS, f"s{i}", None, 1, "test") for i in range(4)]
    decided = decide(wallet, records, rates, None, {}, set())
    [crossing] = decided.crossings
    assert crossing.signal is Signal.LOW
    assert crossing.key == ("sms", "s2")  # 1,010 -> 1,005 -> 1,000 -> 995: the third goes below
    assert crossing.balance == 995
    assert decided.wallet.low_balance_since == NOW
    assert decided.wallet.low_balance_alerted_at == NOW


def test_chain_line_moves_the_wallet_on_by_one_row() -> None:
    wallet = LockedWallet("t1", "USD", 100, 0, 7, False, 0, None, 0, None, None, 0)
    line = chain_line(
        wallet,
        -30,
        reference_id="pp_1",
        description="plan fee",
        actor="system",
        entry_type=EntryType.PLAN_FEE,
        counter_account=CounterAccount.REVENUE_PLANS,
        reference_type="plan_period",
    )
    assert (line.seq, line.balance_before, line.balance_after, line.amount) == (8, 100, 70, -30)
    assert (wallet.ledger_seq, wallet.balance) == (8, 70)
    assert dataclasses.replace(line).reference_id == "pp_1"


def test_rate_record_rates_a_call_by_duration_and_units_by_quantity() -> None:
    rates = Rates("USD", Decimal(60), unit_prices={UsageKind.FAX: Decimal(15)})
    call = rate_record(UsageRecord("t", UsageKind.CALL, "c", 61, None, "x"), rates, quota_left_seconds=60)
    assert (call.quota_seconds, call.paid_seconds, call.amount.amount) == (60, 60, 60)
    fax = rate_record(UsageRecord("t", UsageKind.FAX, "f", None, 3, "x"), rates, quota_left_seconds=600)
    assert (fax.quota_seconds, fax.amount.amount) == (0, 45)
    assert date(2025, 3, 14) == TODAY


def test_a_wallet_copy_keeps_every_field_and_is_its_own() -> None:
    # Every field a distinct value, so that a field left out of LockedWallet.copy (or two swapped) shows.
    values: dict[str, object] = {}
    for n, f in enumerate(dataclasses.fields(LockedWallet)):
        kind = str(f.type)
        if "datetime" in kind:
            values[f.name] = NOW + timedelta(minutes=n)
        elif "date" in kind:
            values[f.name] = TODAY - timedelta(days=n)
        elif "bool" in kind:
            values[f.name] = n % 2 == 0
        elif "str" in kind:
            values[f.name] = f"value-{n}"
        else:
            values[f.name] = 1000 + n
    wallet = LockedWallet(**values)  # type: ignore[arg-type]
    copied = wallet.copy()
    assert dataclasses.asdict(copied) == dataclasses.asdict(wallet) == values
    copied.balance += 1
    assert wallet.balance == values["balance"]


def test_records_rated_alike_are_each_charged_their_own_rating() -> None:
    rates = Rates("USD", Decimal(60), unit_prices={UsageKind.SMS: Decimal("1.5")})
    quota = Quota(0, 90, NOW - timedelta(days=1), NOW + timedelta(days=1))
    records = [
        UsageRecord("t1", UsageKind.CALL, "c1", 60, None, "test"),  # 60 s of quota
        UsageRecord("t1", UsageKind.CALL, "c2", 60, None, "test"),  # 30 s of quota, 30 s paid
        UsageRecord("t1", UsageKind.CALL, "c3", 60, None, "test"),  # all paid
        UsageRecord("t1", UsageKind.SMS, "s1", None, 3, "test"),
        UsageRecord("t1", UsageKind.SMS, "s2", None, 3, "test"),
    ]
    wallet = LockedWallet("t1", "USD", 10_000, 0, 1, False, 0, TODAY, 0, None, None, 0)
    decided = decide_charges(
        wallet, records, rates=rates, quota=quota, holds={}, charged_before=set(), now=NOW
    )
    ratings = [d.rating for d in decided.decisions]
    assert [r.quota_seconds for r in ratings if r is not None] == [60, 30, 0, 0, 0]
    assert [r.amount.amount for r in ratings if r is not None] == [0, 30, 60, 5, 5]
    assert [d.charged for d in decided.decisions] == [0, 30, 60, 5, 5]
