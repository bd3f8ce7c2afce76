"""ledger verify finds each kind of broken invariant (broken on purpose, inside a rolled-back test)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.ledger_entries import adjustment
from walletsvc.db.engine import Database
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.tenants import Tenant
from walletsvc.services.ledger_verify import (
    CHECKS,
    PLANNER_SETTINGS,
    VERIFIED_TABLES,
    check_statement,
    verify_ledger,
)


async def _broken(session: AsyncSession, tenant_id: str) -> dict[str, list[dict[str, object]]]:
    conn = await session.connection()
    results, counts = await verify_ledger(conn, snapshot=False)
    assert counts["wallets"] >= 1
    return {
        r.check.name: [row for row in r.offending if row.get("tenant_id") == tenant_id]
        for r in results
        if any(row.get("tenant_id") == tenant_id for row in r.offending)
    }


_INSERT = text(
    "INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,"
    " counter_account, reference_type, reference_id, description, actor)"
    " VALUES (:t, :seq, :type, :amount, :currency, :before, :after, 'adjustments', 'x', 'x', 'forged', 'x')"
)


async def test_a_healthy_wallet_passes(db_session: AsyncSession, tenant: Tenant) -> None:
    wallets = WalletRepository(db_session)
    await wallets.apply(adjustment(tenant.id, 500))
    await wallets.apply(adjustment(tenant.id, -200))
    assert await _broken(db_session, tenant.id) == {}


async def test_balance_edited_behind_the_ledger_is_found(db_session: AsyncSession, tenant: Tenant) -> None:
    await WalletRepository(db_session).apply(adjustment(tenant.id, 500))
    await db_session.execute(text("UPDATE wallets SET balance = 501 WHERE tenant_id = :t"), {"t": tenant.id})
    broken = await _broken(db_session, tenant.id)
    assert broken.keys() == {"balance_equals_ledger_sum"}
    assert broken["balance_equals_ledger_sum"][0]["ledger_sum"] == 500


async def test_a_forged_row_breaks_the_chain_and_the_sequence(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    await WalletRepository(db_session).apply(adjustment(tenant.id, 500))
    await db_session.execute(
        _INSERT,
        {
            "t": tenant.id,
            "seq": 3,
            "type": "adjustment",
            "amount": 10,
            "currency": "INR",
            "before": 0,
            "after": 10,
        },
    )
    broken = await _broken(db_session, tenant.id)
    assert {"chain_unbroken", "sequence_contiguous", "balance_equals_ledger_sum"} <= broken.keys()


async def test_a_charge_below_zero_is_found(db_session: AsyncSession, tenant: Tenant) -> None:
    await db_session.execute(
        _INSERT,
        {
            "t": tenant.id,
            "seq": 1,
            "type": "usage_charge",
            "amount": -10,
            "currency": "INR",
            "before": 0,
            "after": -10,
        },
    )
    await db_session.execute(
        text("UPDATE wallets SET balance = -10, ledger_seq = 1 WHERE tenant_id = :t"), {"t": tenant.id}
    )
    broken = await _broken(db_session, tenant.id)
    assert broken.keys() == {"negative_only_by_adjustment"}


async def test_a_row_in_another_currency_is_found(db_session: AsyncSession, tenant: Tenant) -> None:
    await db_session.execute(
        _INSERT,
        {
            "t": tenant.id,
            "seq": 1,
            "type": "adjustment",
            "amount": 10,
            "currency": "USD",
            "before": 0,
            "after": 10,
        },
    )
    await db_session.execute(
        text("UPDATE wallets SET balance = 10, ledger_seq = 1 WHERE tenant_id = :t"), {"t": tenant.id}
    )
    assert (await _broken(db_session, tenant.id)).keys() == {"currency_matches_wallet"}


JAN, MID_JAN = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)
FEB, MID_FEB = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 15, tzinfo=UTC)
_PERIOD = text(
    "INSERT INTO plan_periods (tenant_id, id, period_start, period_end, plan_id, currency, fee, charged, owed,"
    " quota_used_seconds, included_minutes, closed_by)"
    " VALUES (:t, :id, :s, :e, 'plan-x', 'INR', :fee, :charged,"
    " :owed, 0, 0, 'test')"
)
_PLAN = text(
    "INSERT INTO plans (id, name, currency, monthly_price, per_minute_rate)"
    " VALUES ('plan-x', 'Verify', 'INR', 500, 1) ON CONFLICT (id) DO NOTHING"
)


async def _closed_period(session: AsyncSession, values: dict[str, object]) -> None:
    await session.execute(_PLAN)
    await session.execute(_PERIOD, values)


_FEE_ROW = text(
    "INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,"
    " counter_account, reference_type, reference_id, description, actor)"
    " VALUES (:t, :seq, 'plan_fee', :amount, 'INR', :before, :after, 'revenue:plans', 'plan_period', :ref,"
    " 'forged', 'x')"
)


async def _fee_rows(session: AsyncSession, tenant_id: str, period_id: str, amounts: list[int]) -> None:
    """Funded by an adjustment of 10_00, then plan_fee rows for `period_id`, the wallet kept in step."""
    await WalletRepository(session).apply(adjustment(tenant_id, 10_00))
    balance, seq = 10_00, 1
    for amount in amounts:
        seq += 1
        await session.execute(
            _FEE_ROW,
            {
                "t": tenant_id,
                "seq": seq,
                "amount": amount,
                "before": balance,
                "after": balance + amount,
                "ref": period_id,
            },
        )
        balance += amount
    await session.execute(
        text("UPDATE wallets SET balance = :b, ledger_seq = :s WHERE tenant_id = :t"),
        {"t": tenant_id, "b": balance, "s": seq},
    )


async def test_a_closed_period_whose_fee_was_charged_once_passes(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    await _closed_period(
        db_session,
        {"t": tenant.id, "id": "pp_1", "s": JAN, "e": FEB, "fee": 500, "charged": 500, "owed": 0},
    )
    await _fee_rows(db_session, tenant.id, "pp_1", [-500])
    assert await _broken(db_session, tenant.id) == {}


async def test_a_plan_fee_charged_twice_for_one_period_is_found(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    await _closed_period(
        db_session,
        {"t": tenant.id, "id": "pp_1", "s": JAN, "e": FEB, "fee": 500, "charged": 500, "owed": 0},
    )
    await _fee_rows(db_session, tenant.id, "pp_1", [-500, -500])
    broken = await _broken(db_session, tenant.id)
    assert broken.keys() == {"plan_fee_once_per_period"}
    assert broken["plan_fee_once_per_period"][0]["paid_in_ledger"] == 1000


async def test_a_plan_fee_row_without_a_closed_period_is_found(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    await _fee_rows(db_session, tenant.id, "pp_missing", [-500])
    broken = await _broken(db_session, tenant.id)
    assert broken.keys() == {"plan_fee_once_per_period"}
    assert broken["plan_fee_once_per_period"][0]["problem"] == "plan_fee row without a period"


async def test_two_closed_periods_over_the_same_time_are_found(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    for period_id, start, end in (("pp_1", JAN, FEB), ("pp_2", MID_JAN, MID_FEB)):
        await _closed_period(
            db_session,
            {"t": tenant.id, "id": period_id, "s": start, "e": end, "fee": 0, "charged": 0, "owed": 0},
        )
    broken = await _broken(db_session, tenant.id)
    assert broken.keys() == {"plan_fee_once_per_period"}
    assert {row["period_id"] for row in broken["plan_fee_once_per_period"]} == {"pp_1", "pp_2"}


async def test_an_owed_plan_fee_missing_from_the_wallet_is_found(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    await _closed_period(
        db_session,
        {"t": tenant.id, "id": "pp_1", "s": JAN, "e": FEB, "fee": 500, "charged": 0, "owed": 500},
    )
    broken = await _broken(db_session, tenant.id)
    assert broken.keys() == {"owed_matches_charges"}
    assert broken["owed_matches_charges"][0]["owed_by_fees"] == 500


# --- linear on any size: plans, statistics, progress ------------------------------------------------


async def test_no_check_is_planned_as_a_nested_loop(db_session: AsyncSession) -> None:
    # Whole-table checks as verify runs them: a nested loop here went quadratic on fresh, unanalysed
    # tables (60,000 ledger rows: over 5 minutes for one check). Hash and merge joins stay linear.
    conn = await db_session.connection()
    for name, value in PLANNER_SETTINGS.items():
        await conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    plans = {
        check.name: "\n".join(
            str(line) for line in (await conn.execute(text("EXPLAIN " + check_statement(check)))).scalars()
        )
        for check in CHECKS
    }
    assert {name: plan for name, plan in plans.items() if "Nested Loop" in plan} == {}


async def test_verify_inside_a_transaction_gives_back_its_planner_settings(db_session: AsyncSession) -> None:
    conn = await db_session.connection()
    await verify_ledger(conn, snapshot=False)
    assert (await conn.execute(text("SHOW enable_nestloop"))).scalar_one() == "on"


async def test_a_long_run_reports_each_check_as_it_ends(db_session: AsyncSession, tenant: Tenant) -> None:
    await WalletRepository(db_session).apply(adjustment(tenant.id, 500))
    conn = await db_session.connection()
    lines: list[str] = []
    await verify_ledger(conn, snapshot=False, progress=lines.append, long_run_rows=1)
    assert [line.split(":")[0] for line in lines] == [f"check {check.name}" for check in CHECKS]
    assert all(line.endswith(" s") for line in lines)

    quiet: list[str] = []
    await verify_ledger(conn, snapshot=False, progress=quiet.append, long_run_rows=10**12)
    assert quiet == []


async def test_verify_with_its_own_snapshot_analyses_the_tables_first(db: Database) -> None:
    lines: list[str] = []
    async with db.engine.connect() as conn:
        results, _ = await verify_ledger(conn, progress=lines.append, long_run_rows=0)
    assert lines[0].startswith("statistics refreshed: ")
    assert len(lines) == 1 + len(CHECKS)
    assert all(r.ok for r in results), {r.check.name: r.offending for r in results if not r.ok}
    async with db.engine.connect() as conn:
        analysed = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM pg_class WHERE relname = ANY(:t) AND relkind = 'r' AND reltuples >= 0"
                ),
                {"t": list(VERIFIED_TABLES)},
            )
        ).scalar_one()
    assert analysed == len(VERIFIED_TABLES)  # ANALYZE sets reltuples (-1: never analysed)
