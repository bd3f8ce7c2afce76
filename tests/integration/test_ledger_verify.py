"""ledger verify finds each kind of broken invariant (broken on purpose, inside a rolled-back test)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.ledger_entries import adjustment
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.tenants import Tenant
from walletsvc.services.ledger_verify import verify_ledger


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
