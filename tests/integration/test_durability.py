"""`synchronous_commit` stays on for the service's connections: a commit is acknowledged only once its WAL
is on disk, so an answered charge survives a crash of the database (tests/e2e crashes it to check)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from tests.fixtures.tenants import TenantFactory
from tests.fixtures.usage import ref, usage_key
from walletsvc.db.engine import Database

SOURCE = Path(__file__).resolve().parents[2] / "src" / "walletsvc"
TURNED_OFF = re.compile(r"synchronous_commit\W{1,6}(off|local|remote_write)", re.IGNORECASE)


async def test_every_connection_of_the_app_commits_synchronously(
    app: Any, client: httpx.AsyncClient, create_tenant: TenantFactory, admin_headers: dict[str, str]
) -> None:
    tenant = await create_tenant(currency="USD", country="USA", balance=1_000)
    key = await usage_key(client, admin_headers, tenant["id"])
    charged = await client.post(
        "/v1/usage", json={"kind": "sms", "reference_id": ref(), "quantity": 1}, headers=key
    )
    assert charged.status_code == 201, charged.text

    db: Database = app.state.db
    engine = db.engine

    async def show() -> str:
        async with engine.connect() as conn:
            await asyncio.sleep(0)  # hold this connection while the others are checked out too
            value = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
            return str(value)

    # Several at once, so that the pool hands out the connections the charge and others used.
    assert set(await asyncio.gather(*(show() for _ in range(8)))) == {"on"}
    async with engine.connect() as conn:
        # Not turned off for the service's role or database either (ALTER ROLE / DATABASE ... SET).
        overrides = (
            await conn.execute(
                text(
                    "SELECT s.setconfig FROM pg_db_role_setting s"
                    " WHERE (s.setdatabase = 0 OR s.setdatabase = (SELECT oid FROM pg_database"
                    "        WHERE datname = current_database()))"
                    "   AND (s.setrole = 0 OR s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user))"
                )
            )
        ).scalars()
        assert not [c for config in overrides for c in config if c.startswith("synchronous_commit=")]


def test_no_code_turns_synchronous_commit_off() -> None:
    # A `SET LOCAL synchronous_commit = off` in one transaction would not show on a pooled connection.
    offending = [
        f"{path.relative_to(SOURCE)}:{n}"
        for path in SOURCE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if TURNED_OFF.search(line)
    ]
    assert offending == []
