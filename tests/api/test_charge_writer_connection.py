"""The charge writer keeps one pooled connection across the rounds it writes back to back, and hands it
back to the pool when it has nothing left to write."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ref
from walletsvc.config import Settings
from walletsvc.db.engine import Database
from walletsvc.domain.charging import ChargeOutcome, UsageRecord
from walletsvc.domain.rating import UsageKind
from walletsvc.services.charging import ChargeWriter


async def test_one_writer_writes_its_rounds_on_one_checkout_and_then_returns_it(
    create_tenant: TenantFactory, database_url: str, settings: Settings
) -> None:
    wallets = [await create_tenant(currency="USD", country="USA", balance=1_000) for _ in range(3)]
    database = Database.connect(database_url, pool_size=2, max_overflow=0)
    checkouts: list[Any] = []
    checkins: list[Any] = []
    event.listen(database.engine.sync_engine, "checkout", lambda *args: checkouts.append(args))
    event.listen(database.engine.sync_engine, "checkin", lambda *args: checkins.append(args))
    # One writer, one wallet a round: three rounds, one after the other.
    writer = ChargeWriter(
        database, settings.model_copy(update={"charge_writers": 1, "charge_batch_wallets": 1})
    )
    try:
        records = [UsageRecord(w["id"], UsageKind.SMS, ref("sms"), None, 1, "test") for w in wallets]
        answers = await writer.charge_many(records)
        assert all(isinstance(a, ChargeOutcome) for a in answers)
        async with database.engine.connect() as conn:
            rounds = (
                await conn.execute(
                    text("SELECT count(DISTINCT xmin::text) FROM usage_charges WHERE tenant_id = ANY(:t)"),
                    {"t": [w["id"] for w in wallets]},
                )
            ).scalar_one()
        assert rounds == 3  # three transactions...
        assert len(checkouts) == 2  # ...on the writer's one checkout (the other is the count above)
        assert len(checkins) == 2  # the writer handed its connection back
    finally:
        await database.dispose()
