"""WalletRepository.apply: the wallet row and its ledger row change together, or not at all."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.ledger_entries import adjustment
from walletsvc.db.engine import Database
from walletsvc.db.repositories.idempotency import Claim, IdempotencyStore
from walletsvc.db.repositories.ledger import LedgerFilter, LedgerRepository
from walletsvc.db.repositories.tenants import TenantRepository
from walletsvc.db.repositories.wallets import WalletRepository
from walletsvc.domain.errors import AlreadyExists, CurrencyMismatch, InsufficientFunds, NotFound
from walletsvc.domain.tenants import Tenant


async def test_new_wallet_is_empty_in_the_tenant_currency(db_session: AsyncSession, tenant: Tenant) -> None:
    wallet = await WalletRepository(db_session).get(tenant.id)
    assert (wallet.balance, wallet.reserved, wallet.currency, wallet.flagged) == (0, 0, "INR", False)


async def test_credit_then_debit_chains_balances(db_session: AsyncSession, tenant: Tenant) -> None:
    wallets = WalletRepository(db_session)
    _w1, e1 = await wallets.apply(adjustment(tenant.id, 1_000))
    w2, e2 = await wallets.apply(adjustment(tenant.id, -250))
    assert (e1.seq, e1.balance_before, e1.balance_after) == (1, 0, 1_000)
    assert (e2.seq, e2.balance_before, e2.balance_after) == (2, 1_000, 750)
    assert w2.balance == 750 == (await wallets.get(tenant.id)).balance
    assert e2.actor == "user:admin"
    assert e2.counter_account == "adjustments"


async def test_debit_beyond_balance_raises_and_writes_nothing(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    wallets = WalletRepository(db_session)
    await wallets.apply(adjustment(tenant.id, 100))
    with pytest.raises(InsufficientFunds) as refused:
        await wallets.apply(adjustment(tenant.id, -101))
    assert (refused.value.available, refused.value.requested) == (100, 101)
    assert (await wallets.get(tenant.id)).balance == 100
    entries, _ = await LedgerRepository(db_session).page(LedgerFilter(tenant_id=tenant.id), limit=10)
    assert [e.amount for e in entries] == [100]


async def test_reserved_money_is_not_available_for_debits(db_session: AsyncSession, tenant: Tenant) -> None:
    wallets = WalletRepository(db_session)
    await wallets.apply(adjustment(tenant.id, 1_000))
    await db_session.execute(text("UPDATE wallets SET reserved = 900 WHERE tenant_id = :t"), {"t": tenant.id})
    with pytest.raises(InsufficientFunds):
        await wallets.apply(adjustment(tenant.id, -101))
    _, entry = await wallets.apply(adjustment(tenant.id, -100))
    assert entry.balance_after == 900


async def test_allow_negative_adjustment_goes_below_zero(db_session: AsyncSession, tenant: Tenant) -> None:
    _, entry = await WalletRepository(db_session).apply(adjustment(tenant.id, -500, allow_negative=True))
    assert entry.balance_after == -500
    assert entry.allow_negative


async def test_other_currency_is_a_mismatch_not_a_conversion(
    db_session: AsyncSession, tenant: Tenant
) -> None:
    with pytest.raises(CurrencyMismatch):
        await WalletRepository(db_session).apply(adjustment(tenant.id, 100, currency="USD"))


async def test_unknown_wallet_is_not_found(db_session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await WalletRepository(db_session).apply(adjustment("nobody-here", 100))


async def test_duplicate_tenant_is_refused(db_session: AsyncSession, tenant: Tenant) -> None:
    with pytest.raises(AlreadyExists):
        await TenantRepository(db_session).add(
            tenant_id=tenant.id,
            name="again",
            country="IND",
            currency="INR",
            data_residency_region=None,
            payments_provider=None,
            low_balance_threshold=0,
        )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount = amount + 1 WHERE tenant_id = :t",
        "DELETE FROM ledger_entries WHERE tenant_id = :t",
        "TRUNCATE ledger_entries",
    ],
)
async def test_database_refuses_to_change_ledger_rows(
    db_session: AsyncSession, tenant: Tenant, statement: str
) -> None:
    await WalletRepository(db_session).apply(adjustment(tenant.id, 100))
    with pytest.raises(DBAPIError, match="append-only"):
        async with db_session.begin_nested():
            await db_session.execute(text(statement), {"t": tenant.id})


async def test_database_refuses_inconsistent_arithmetic(db_session: AsyncSession, tenant: Tenant) -> None:
    with pytest.raises(DBAPIError, match="ledger_balance_arithmetic"):
        async with db_session.begin_nested():
            await db_session.execute(
                text(
                    "INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before,"
                    " balance_after, counter_account, reference_type, reference_id, description, actor)"
                    " VALUES (:t, 1, 'adjustment', 100, 'INR', 0, 99, 'adjustments', 'x', 'x', 'x', 'x')"
                ),
                {"t": tenant.id},
            )


async def test_ledger_pages_walk_newest_first(db_session: AsyncSession, tenant: Tenant) -> None:
    wallets = WalletRepository(db_session)
    for amount in range(1, 8):
        await wallets.apply(adjustment(tenant.id, amount))
    ledger = LedgerRepository(db_session)
    seen: list[int] = []
    before = None
    while True:
        entries, before = await ledger.page(LedgerFilter(tenant_id=tenant.id, before_id=before), limit=3)
        seen += [e.amount for e in entries]
        if before is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]


async def test_old_idempotency_keys_are_purged_and_recent_ones_kept(db: Database) -> None:
    store = IdempotencyStore(db.engine, lock_timeout=timedelta(seconds=30))
    scope = f"purge-test-{uuid.uuid4().hex[:8]}"
    for key in ("old", "new"):
        claim = await store.claim(
            scope=scope, key=key, tenant_id=None, method="POST", path="/x", fingerprint="f"
        )
        assert isinstance(claim, Claim)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE idempotency_keys SET created_at = now() - interval '4 days' WHERE scope = :s AND key = 'old'"
            ),
            {"s": scope},
        )
    assert await store.purge_older_than(timedelta(days=3)) >= 1
    async with db.engine.connect() as conn:
        left = (
            (await conn.execute(text("SELECT key FROM idempotency_keys WHERE scope = :s"), {"s": scope}))
            .scalars()
            .all()
        )
    assert left == ["new"]
