"""The charge writer's statements, on the raw asyncpg connection, set-wise over many wallets: one statement
locks the wallets (in tenant order) with their plans and prices, one writes every charge, ledger row,
hold settlement, quota and wallet of the round (rows from jsonb and arrays), and the commit. Each statement's text
is fixed, so asyncpg prepares it once per connection; no statement is sent per record.

A round of one busy wallet that the writer knows from its last round is written in one statement
without the lock (`_WRITE_KNOWN`, one round trip where the locked round takes four): it writes the
wallet's charges and ledger rows only where the wallet, its subscription, its plan and its currency's
defaults are still the row versions the writer decided on (`xmin`, which any committed change of a row
replaces). A wallet changed meanwhile is left untouched, whole, and the writer charges it again under
the lock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic_core import to_json

from walletsvc.db.repositories.plans import rates_from_mapping
from walletsvc.db.repositories.usage import charge_from_mapping
from walletsvc.domain.charging import ChargeKey, Decisions, LockedWallet, Quota, UsageCharge
from walletsvc.domain.rating import Rates

_RATE_COLUMNS = (
    "per_minute_rate",
    "billing_increment_seconds",
    "minimum_billable_seconds",
    "connection_fee",
    "sms_price",
    "email_price",
    "fax_page_price",
    "file_transfer_price",
)

# Built from the constant column list above: no input reaches this text. ORDER BY before FOR UPDATE: the
# rows are locked in tenant order, so two writers locking overlapping sets never deadlock.
_LOCK = f"""
SELECT w.tenant_id, w.currency, w.balance, w.reserved, w.ledger_seq, w.flagged, w.owed, w.spent_day,
       w.spent_today, w.max_concurrent_calls, w.daily_spend_cap, w.low_balance_threshold,
       w.low_balance_since, w.low_balance_alerted_at,
       w.auto_topup_enabled, w.auto_topup_threshold, w.auto_topup_paused_until,
       s.plan_id, s.period_start, s.period_end, s.quota_used_seconds, p.included_minutes,
       w.xmin::text AS w_version, s.xmin::text AS s_version, p.xmin::text AS p_version,
       d.xmin::text AS d_version,
       {", ".join(f"p.{c} AS p_{c}" for c in _RATE_COLUMNS)},
       {", ".join(f"d.{c} AS d_{c}" for c in _RATE_COLUMNS)}
  FROM wallets w
  LEFT JOIN subscriptions s ON s.tenant_id = w.tenant_id
  LEFT JOIN plans p ON p.id = s.plan_id
  LEFT JOIN billing_defaults d ON d.currency = w.currency
 WHERE w.tenant_id = ANY($1::text[])
 ORDER BY w.tenant_id
   FOR UPDATE OF w
"""  # noqa: S608

_EXISTING = """
SELECT c.* FROM usage_charges c
  JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant_id, kind, reference_id)
    ON c.tenant_id = k.tenant_id AND c.kind = k.kind AND c.reference_id = k.reference_id
"""

_ACTIVE_HOLDS = """
SELECT h.tenant_id, h.call_id, h.amount FROM holds h
  JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, call_id)
    ON h.tenant_id = k.tenant_id AND h.call_id = k.call_id
 WHERE h.status = 'active'
"""

# The rows of a round's new charges and of their ledger lines come as two jsonb arrays of rows, $1 and $2
# of both writes (RoundWrites.parameters): one parameter each instead of an array per column, which
# asyncpg encodes element by element (a third of that in an `isinstance` per element); measured on the
# batch route, 10 % less server CPU a record. JSON numbers are read back as integers (`::bigint`), never
# as floats.
_CHARGE_ROWS = """SELECT e->>0, e->>1, e->>2, (e->>3)::int, (e->>4)::int, (e->>5)::int, (e->>6)::int,
           (e->>7)::int, (e->>8)::bigint, e->>9, (e->>10)::bigint, (e->>11)::bigint, e->>12,
           (e->>13)::bigint, e->>14
      FROM jsonb_array_elements($1::jsonb) AS e"""

# The ledger rows of a round's new charges (`c`): a charge skipped (charged before, or its wallet
# changed) takes its ledger row with it, by the join.
_LEDGER = """ledger AS (
    INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,
                                counter_account, reference_type, reference_id, description, actor)
    SELECT c.tenant_id, (x->>3)::bigint, x->>7, (x->>4)::bigint, c.currency, (x->>5)::bigint,
           (x->>6)::bigint, x->>8, x->>9, c.id::text, x->>10, c.created_by
      FROM jsonb_array_elements($2::jsonb) AS x
      JOIN c ON c.tenant_id = x->>0 AND c.kind = x->>1 AND c.reference_id = x->>2
     ORDER BY c.tenant_id, (x->>3)::bigint  -- ids in sequence order: history is listed by id"""

# Everything a round writes, in one statement: the data-modifying CTEs all run, in one round trip. A
# reference charged meanwhile is skipped by ON CONFLICT (its ledger row with it, by the join); fewer
# charges come back than went in, and the writer rolls the round back and starts over looking first.
_WRITE = f"""
WITH c AS (
    INSERT INTO usage_charges (tenant_id, kind, reference_id, quantity, duration_seconds, billable_seconds,
                               quota_seconds, paid_seconds, amount, currency, charged, owed, plan_id,
                               hold_amount, created_by)
    {_CHARGE_ROWS}
    ON CONFLICT ON CONSTRAINT usage_charges_once DO NOTHING
    RETURNING *
), {_LEDGER}
), settled AS (
    UPDATE holds h SET status = 'settled', closed_at = now()
      FROM unnest($3::text[], $4::text[]) AS x(tenant_id, call_id)
     WHERE h.tenant_id = x.tenant_id AND h.call_id = x.call_id AND h.status = 'active'
), quota AS (
    UPDATE subscriptions s
       SET quota_used_seconds = x.used, period_start = x.period_start, period_end = x.period_end,
           updated_at = now()
      FROM unnest($5::text[], $6::int[], $7::timestamptz[], $8::timestamptz[])
           AS x(tenant_id, used, period_start, period_end)
     WHERE s.tenant_id = x.tenant_id
), wallet AS (
    UPDATE wallets w
       SET balance = x.balance, reserved = x.reserved, ledger_seq = x.ledger_seq, flagged = x.flagged,
           owed = x.owed, spent_day = x.spent_day, spent_today = x.spent_today,
           low_balance_since = x.low_since, low_balance_alerted_at = x.alerted_at, updated_at = now()
      FROM unnest($9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::boolean[], $14::bigint[],
                  $15::date[], $16::bigint[], $17::timestamptz[], $18::timestamptz[])
           AS x(tenant_id, balance, reserved, ledger_seq, flagged, owed, spent_day, spent_today, low_since,
                alerted_at)
     WHERE w.tenant_id = x.tenant_id
 RETURNING w.tenant_id, w.xmin::text AS version
)
SELECT c.tenant_id, c.kind, c.reference_id, c.id, c.created_at, NULL AS version FROM c
 UNION ALL
SELECT wallet.tenant_id, NULL, NULL, NULL, NULL, wallet.version FROM wallet
"""  # noqa: S608 - built from the constant _LEDGER above: no input reaches this text

# A round of wallets the writer knows, in one statement and one round trip (no BEGIN, no lock, no
# COMMIT: a statement on its own is a transaction). The wallet is written only where it, its
# subscription, its plan and its currency's defaults are the row versions the round was decided on;
# its charges and ledger rows only where its wallet was. A reference charged before fails the
# statement (the unique constraint, no ON CONFLICT): nothing of it is written, and the writer charges
# those wallets again under the lock, looking first. No hold is settled and no quota written here: a
# round that would is written under the lock.
_WRITE_KNOWN = f"""
WITH wallet AS (
    UPDATE wallets w
       SET balance = x.balance, reserved = x.reserved, ledger_seq = x.ledger_seq, flagged = x.flagged,
           owed = x.owed, spent_day = x.spent_day, spent_today = x.spent_today,
           low_balance_since = x.low_since, low_balance_alerted_at = x.alerted_at, updated_at = now()
      FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::boolean[], $8::bigint[],
                  $9::date[], $10::bigint[], $11::timestamptz[], $12::timestamptz[], $13::text[],
                  $14::text[], $15::text[], $16::text[])
           AS x(tenant_id, balance, reserved, ledger_seq, flagged, owed, spent_day, spent_today, low_since,
                alerted_at, w_version, s_version, p_version, d_version)
     WHERE w.tenant_id = x.tenant_id
       AND w.tenant_id = ANY($3::text[])  -- the wallets by their key, whatever the plan
       AND w.xmin::text = x.w_version
       AND (SELECT s.xmin::text FROM subscriptions s WHERE s.tenant_id = w.tenant_id)
           IS NOT DISTINCT FROM x.s_version
       AND (SELECT p.xmin::text FROM subscriptions s JOIN plans p ON p.id = s.plan_id
             WHERE s.tenant_id = w.tenant_id) IS NOT DISTINCT FROM x.p_version
       AND (SELECT d.xmin::text FROM billing_defaults d WHERE d.currency = w.currency)
           IS NOT DISTINCT FROM x.d_version
 RETURNING w.tenant_id, w.xmin::text AS version
), c AS (
    INSERT INTO usage_charges (tenant_id, kind, reference_id, quantity, duration_seconds, billable_seconds,
                               quota_seconds, paid_seconds, amount, currency, charged, owed, plan_id,
                               hold_amount, created_by)
    {_CHARGE_ROWS}
      JOIN wallet ON wallet.tenant_id = e->>0
    RETURNING *
), {_LEDGER}
)
SELECT c.tenant_id, c.kind, c.reference_id, c.id, c.created_at, NULL AS version FROM c
 UNION ALL
SELECT wallet.tenant_id, NULL, NULL, NULL, NULL, wallet.version FROM wallet
"""  # noqa: S608 - built from the constant _LEDGER above: no input reaches this text


# Plans. The writer's statements are fixed texts whose parameters are arrays of any length, and PostgreSQL,
# left to choose, plans them again at most executions (it judges a custom plan for the arrays at hand
# cheaper), which costs more than running them. Measured with pg_stat_statements, 32 clients: over 10,000
# wallets 0.5 ms of planning for a 0.3 ms lock and 0.9 ms for a 1.6 ms write; on one hot wallet 0.8 ms for
# a 1.9 ms known write, at every call. So the writer plans them generically: a locked round for its own
# transaction, set in the BEGIN's round trip (SET LOCAL); the known statement, which is a transaction of
# its own, for as long as the writer holds the connection (plan_generically, then plan_by_default before
# it goes back to the pool, whose other users plan as PostgreSQL chooses). Each generic plan reaches the
# wallets by their key whatever the arrays hold (the known statement names them by `= ANY`, or its
# generic plan may scan the wallets).
_BEGIN = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan"
_GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"
_DEFAULT_PLANS = "RESET plan_cache_mode"


@dataclass(frozen=True, slots=True)
class RowVersions:
    """The row versions (`xmin`) a round decided on: the wallet's, and its subscription's, plan's and
    currency defaults' (None where there is no such row)."""

    wallet: str
    subscription: str | None
    plan: str | None
    defaults: str | None


@dataclass(slots=True)
class LockedAccount:
    """What a charge round decides on for one wallet, read with its row locked: the wallet, its
    subscription's quota and the prices that apply (the plan's, or the currency's stored defaults),
    with the row versions they were read from."""

    wallet: LockedWallet
    plan_id: str | None
    quota: Quota | None
    plan_rates: Rates | None
    default_rates: Rates | None
    versions: RowVersions

    def after(self, decided: Decisions, wallet_version: str) -> LockedAccount:
        """The account once `decided` is written and committed (its wallet row now at `wallet_version`),
        as the next round may decide on it. Only for a round that wrote no quota (`quota_changed`):
        the subscription's version is the one read."""
        return LockedAccount(
            wallet=decided.wallet,
            plan_id=self.plan_id,
            quota=decided.quota,
            plan_rates=self.plan_rates,
            default_rates=self.default_rates,
            versions=RowVersions(
                wallet_version, self.versions.subscription, self.versions.plan, self.versions.defaults
            ),
        )


# How many columns each part of `_WRITE` and `_WRITE_KNOWN` after the charges and lines ($1, $2) takes,
# in its parameter order.
_WIDTHS = {"holds": 2, "quotas": 4, "wallets": 10}
_KNOWN_WIDTHS = {"wallets": 14}


@dataclass(slots=True)
class Written:
    """What a round's statement wrote: each new charge's id and time by (tenant, (kind, reference_id)),
    and the version of each wallet row it wrote."""

    charges: dict[tuple[str, ChargeKey], tuple[int, datetime]]
    wallets: dict[str, str]


@dataclass(slots=True)
class RoundWrites:
    """The rows of `_WRITE` (or, `known`, of `_WRITE_KNOWN`), gathered wallet by wallet from the
    decisions, sent as columns."""

    known: bool = False
    charges: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    holds: list[tuple[str, str]] = field(default_factory=list)
    quotas: list[tuple[Any, ...]] = field(default_factory=list)
    wallets: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def expected_charges(self) -> int:
        return len(self.charges)

    @property
    def empty(self) -> bool:
        return not (self.charges or self.holds or self.quotas or self.wallets)

    def add(self, account: LockedAccount, decided: Decisions) -> None:
        wallet = decided.wallet
        tenant_id, currency, plan_id = wallet.tenant_id, wallet.currency, account.plan_id
        for d in decided.decisions:
            rating = d.rating
            if rating is None:
                continue
            record = d.record
            kind = record.key[0]
            self.charges.append(
                (
                    tenant_id,
                    kind,
                    record.reference_id,
                    rating.quantity,
                    record.duration_seconds,
                    rating.billable_seconds,
                    rating.quota_seconds,
                    rating.paid_seconds,
                    rating.amount.amount,
                    currency,
                    d.charged,
                    d.owed,
                    plan_id,
                    d.hold_released,
                    record.actor,
                )
            )
            line = d.line
            if line is not None:
                self.lines.append(
                    (
                        tenant_id,
                        kind,
                        record.reference_id,
                        line.seq,
                        line.amount,
                        line.balance_before,
                        line.balance_after,
                        line.entry_type.value,
                        line.counter_account.value,
                        line.reference_type,
                        line.description,
                    )
                )
        if self.known:
            # `_WRITE_KNOWN` settles no hold and writes no quota, and always writes the wallet: the
            # versions it was decided on are checked there.
            if decided.holds_released or decided.quota_changed:
                raise ValueError("a round that settles holds or writes quota is written under the lock")
            v = account.versions
            self.wallets.append((*_wallet_columns(wallet), v.wallet, v.subscription, v.plan, v.defaults))
            return
        self.holds.extend((tenant_id, call_id) for call_id in decided.holds_released)
        if decided.quota_changed and decided.quota is not None:
            q = decided.quota
            self.quotas.append((tenant_id, q.used_seconds, q.period_start, q.period_end))
        if decided.wallet_changed:
            self.wallets.append(_wallet_columns(wallet))

    def parameters(self) -> list[Any]:
        """The statement's parameters: the charges' and the ledger lines' rows as two JSON arrays, then
        each other part's rows turned into one array per column."""
        parameters: list[Any] = [to_json(self.charges).decode(), to_json(self.lines).decode()]
        for part, width in (_KNOWN_WIDTHS if self.known else _WIDTHS).items():
            rows: list[tuple[Any, ...]] = getattr(self, part)
            parameters += [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width
        return parameters


class ChargeStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def plan_generically(self) -> None:
        """This connection plans its statements generically until plan_by_default (see `_BEGIN`)."""
        await self.conn.execute(_GENERIC_PLANS)

    async def plan_by_default(self) -> None:
        await self.conn.execute(_DEFAULT_PLANS)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A locked round's transaction (see `_BEGIN`): committed when the block ends, rolled back when
        it raises. A cancelled block is not rolled back here: its statement may still be running on the
        connection, which the writer then throws away. Inside a transaction of the caller's, a savepoint
        of it, as asyncpg's own would be: it is the caller's to commit."""
        if self.conn.is_in_transaction():
            async with self.conn.transaction():
                yield
            return
        await self.conn.execute(_BEGIN)
        try:
            yield
        except Exception:
            await self.conn.execute("ROLLBACK")
            raise
        await self.conn.execute("COMMIT")

    async def lock(self, tenant_ids: Sequence[str]) -> dict[str, LockedAccount]:
        """Lock these wallets, in tenant order, in one statement; a tenant with no wallet is absent."""
        rows = await self.conn.fetch(_LOCK, list(tenant_ids))
        return {row["tenant_id"]: _account(row) for row in rows}

    async def existing(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, ChargeKey], UsageCharge]:
        """The charges already written for these (tenant, kind, reference_id)."""
        if not keys:
            return {}
        rows = await self.conn.fetch(
            _EXISTING, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
        )
        return {(r["tenant_id"], (r["kind"], r["reference_id"])): charge_from_mapping(r) for r in rows}

    async def active_holds(self, calls: Sequence[tuple[str, str]]) -> dict[str, dict[str, int]]:
        """tenant -> call id -> amount, of the active holds of these (tenant, call id)."""
        if not calls:
            return {}
        rows = await self.conn.fetch(_ACTIVE_HOLDS, [c[0] for c in calls], [c[1] for c in calls])
        holds: dict[str, dict[str, int]] = {}
        for r in rows:
            holds.setdefault(r["tenant_id"], {})[r["call_id"]] = r["amount"]
        return holds

    async def write(self, writes: RoundWrites) -> Written:
        """Write the round (in the caller's transaction, or, `writes.known`, as a transaction of its
        own). Under the lock, fewer charges come back than planned when some were charged before, and
        the caller must then roll back; `known`, a wallet changed meanwhile is absent from the answer,
        its charges too, and a reference charged before raises UniqueViolationError, nothing written."""
        rows = await self.conn.fetch(_WRITE_KNOWN if writes.known else _WRITE, *writes.parameters())
        written = Written(charges={}, wallets={})
        for r in rows:
            if r[1] is None:
                written.wallets[r[0]] = r[5]
            else:
                written.charges[(r[0], (r[1], r[2]))] = (r[3], r[4])
        return written


def _wallet_columns(wallet: LockedWallet) -> tuple[Any, ...]:
    return (
        wallet.tenant_id,
        wallet.balance,
        wallet.reserved,
        wallet.ledger_seq,
        wallet.flagged,
        wallet.owed,
        wallet.spent_day,
        wallet.spent_today,
        wallet.low_balance_since,
        wallet.low_balance_alerted_at,
    )


def _account(row: Any) -> LockedAccount:
    wallet = LockedWallet(
        tenant_id=row["tenant_id"],
        currency=row["currency"],
        balance=row["balance"],
        reserved=row["reserved"],
        ledger_seq=row["ledger_seq"],
        flagged=row["flagged"],
        owed=row["owed"],
        spent_day=row["spent_day"],
        spent_today=row["spent_today"],
        max_concurrent_calls=row["max_concurrent_calls"],
        daily_spend_cap=row["daily_spend_cap"],
        low_balance_threshold=row["low_balance_threshold"],
        low_balance_since=row["low_balance_since"],
        low_balance_alerted_at=row["low_balance_alerted_at"],
        auto_topup_enabled=row["auto_topup_enabled"],
        auto_topup_threshold=row["auto_topup_threshold"],
        auto_topup_paused_until=row["auto_topup_paused_until"],
    )

    def rates(prefix: str) -> Rates | None:
        if row[f"{prefix}per_minute_rate"] is None:
            return None
        return rates_from_mapping({c: row[f"{prefix}{c}"] for c in _RATE_COLUMNS}, wallet.currency)

    plan_id = row["plan_id"]
    quota = None
    if plan_id is not None and row["period_start"] is not None and row["period_end"] is not None:
        quota = Quota(
            used_seconds=row["quota_used_seconds"] or 0,
            included_seconds=(row["included_minutes"] or 0) * 60,
            period_start=row["period_start"],
            period_end=row["period_end"],
        )
    return LockedAccount(
        wallet=wallet,
        plan_id=plan_id,
        quota=quota,
        plan_rates=rates("p_") if plan_id is not None else None,
        default_rates=rates("d_"),
        versions=RowVersions(row["w_version"], row["s_version"], row["p_version"], row["d_version"]),
    )
