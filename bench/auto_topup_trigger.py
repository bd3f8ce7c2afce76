"""What the auto top-up trigger costs the charge writer: charges per second on one hot wallet with auto
top-up off, on and above its threshold, and on and below it with one in flight (the wallet paused).

In process (ChargeWriter, no HTTP), on a fresh database of the server given. Not a test: it prints figures.
Run: .venv/bin/python bench/auto_topup_trigger.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg
from sqlalchemy import text

from walletsvc.config import Settings
from walletsvc.db.engine import Database, normalise_url, unit_of_work
from walletsvc.db.migrate import upgrade_to_head
from walletsvc.domain.rating import UsageKind
from walletsvc.services.charging import ChargeWriter, UsageRecord
from walletsvc.services.tenants import open_tenant

MODES = {
    "auto top-up off": "UPDATE wallets SET auto_topup_enabled = false WHERE tenant_id = :t",
    "on, above the threshold": (
        "UPDATE wallets SET auto_topup_enabled = true, auto_topup_threshold = 1, auto_topup_paused_until = NULL"
        " WHERE tenant_id = :t"
    ),
    "on, below it, one in flight": (
        "UPDATE wallets SET auto_topup_enabled = true, auto_topup_threshold = 10000000000000,"
        " auto_topup_paused_until = 'infinity' WHERE tenant_id = :t"
    ),
}


async def measure(writer: ChargeWriter, tenant_id: str, clients: int, seconds: float, tag: str) -> float:
    count = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < deadline:
            record = UsageRecord(
                tenant_id=tenant_id,
                kind=UsageKind.SMS,
                reference_id=f"{tag}-{n}-{i}",
                duration_seconds=None,
                quantity=1,
                actor="bench",
            )
            await writer.charge(record)
            count += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plain = args.database_url.replace("postgresql+asyncpg", "postgresql")
    name = f"walletsvc_bench_at_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(plain)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = normalise_url(f"{plain.rsplit('/', 1)[0]}/{name}")
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        db = Database.connect(url)
        settings = Settings(database_url=url)  # type: ignore[arg-type]
        tenant_id = f"bench-{uuid.uuid4().hex[:6]}"
        async with unit_of_work(db) as session:
            await open_tenant(session, tenant_id=tenant_id, name="Bench", country="USA", currency="USD")
            await session.execute(
                text("UPDATE wallets SET balance = 1000000000000 WHERE tenant_id = :t"), {"t": tenant_id}
            )
            await session.execute(
                text(
                    "INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before,"
                    " balance_after, counter_account, reference_type, reference_id, description, actor)"
                    " VALUES (:t, 1, 'adjustment', 1000000000000, 'USD', 0, 1000000000000, 'adjustments',"
                    " 'adjustment', 'bench', 'bench funding', 'bench')"
                ),
                {"t": tenant_id},
            )
            await session.execute(
                text("UPDATE wallets SET ledger_seq = 1 WHERE tenant_id = :t"), {"t": tenant_id}
            )
        writer = ChargeWriter(db, settings)
        await measure(writer, tenant_id, args.clients, 2, "warm")
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        for r in range(args.rounds):
            for mode, statement in MODES.items():
                async with unit_of_work(db) as session:
                    await session.execute(text(statement), {"t": tenant_id})
                rates[mode].append(
                    await measure(writer, tenant_id, args.clients, args.seconds, f"{r}-{mode[:6]}")
                )
        async with db.engine.connect() as conn:
            attempts = await conn.scalar(
                text("SELECT count(*) FROM auto_topups WHERE tenant_id = :t"), {"t": tenant_id}
            )
        base = statistics.median(rates["auto top-up off"])
        print(f"one hot wallet, {args.clients} clients, {args.rounds} x {args.seconds:.0f} s, medians:")
        for mode, values in rates.items():
            rate = statistics.median(values)
            print(f"  {mode:<30} {rate:8.0f} charges/s  ({rate / base:.2f} of off)")
        print(f"  auto top-ups started meanwhile: {attempts} (the wallet was paused or above the threshold)")
        await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
