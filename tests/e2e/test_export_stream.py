"""GET /v1/transactions/export.csv streamed from a real server: a long export is complete when the
database holds, and when the database connection is lost mid-stream the download ends broken (the chunked
body is cut off without its last chunk), never as a shorter CSV that looks complete."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.fixtures.auth import bearer, make_token
from tests.fixtures.cli_processes import Serving, cli_env, free_port, start_serve, stop_postgres
from tests.fixtures.constants import JWT_SECRET

ROWS = 150_000  # ~20 MB of CSV: far more than the socket buffers hold, so the server is mid-stream
FIRST = 10_000  # credits the tenant starts with


@dataclass
class Exporting:
    served: Serving
    workdir: Path
    tenant_id: str

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/walletsvc?host={self.workdir / 'data'}"

    def owner(self) -> dict[str, str]:
        return bearer(make_token(role="owner", tenant_id=self.tenant_id))


async def _bulk_history(dsn: str, tenant_id: str, rows: int) -> None:
    """`rows` more ledger rows of +1 each, chained after the opening credit (row 1), in one statement."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO ledger_entries (tenant_id, seq, type, amount, currency, balance_before, balance_after,"
                " counter_account, reference_type, reference_id, description, actor)"
                " SELECT $1, s, 'adjustment', 1, 'USD', $2 + s - 2, $2 + s - 1, 'adjustments', 'adjustment',"
                " 'bulk-' || s, 'bulk credit', 'user:e2e' FROM generate_series(2, $3 + 1) AS s",
                tenant_id,
                FIRST,
                rows,
            )
            await conn.execute(
                "UPDATE wallets SET balance = balance + $2, ledger_seq = ledger_seq + $2 WHERE tenant_id = $1",
                tenant_id,
                rows,
            )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("export")
    yield path
    stop_postgres(path / "data")  # only if a test failed half-way


@pytest.fixture(scope="module")
async def exporting(workdir: Path) -> AsyncIterator[Exporting]:
    env = cli_env(workdir, JWT_SECRET=JWT_SECRET, LOG_LEVEL="WARNING")
    served = start_serve(env, workdir, free_port())
    served.wait_ready()
    tenant_id = f"export-{uuid.uuid4().hex[:10]}"
    admin = bearer(make_token(role="super_admin"))
    try:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
            created = await http.post(
                "/v1/admin/tenants",
                json={"id": tenant_id, "name": "Export Ltd", "country": "USA", "currency": "USD"},
                headers=admin,
            )
            assert created.status_code == 201, created.text
            funded = await http.post(
                f"/v1/admin/tenants/{tenant_id}/adjustments",
                json={"amount": FIRST, "reason": "opening credit"},
                headers=admin,
            )
            assert funded.status_code == 201, funded.text
        found = Exporting(served=served, workdir=workdir, tenant_id=tenant_id)
        await _bulk_history(found.dsn, tenant_id, ROWS)
        yield found
    finally:
        served.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            served.process.wait(timeout=60)


async def test_a_long_export_streams_every_row_newest_first(exporting: Exporting) -> None:
    async with httpx.AsyncClient(base_url=exporting.served.base_url, timeout=60) as http:
        response = await http.get("/v1/transactions/export.csv", headers=exporting.owner())
    assert response.status_code == 200
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert len(table) == ROWS + 1
    assert [int(r["balance_after"]) for r in table[:2]] == [FIRST + ROWS, FIRST + ROWS - 1]
    assert table[-1]["reference_id"] != table[-2]["reference_id"]
    assert int(table[-1]["amount"]) == FIRST  # the opening credit, the oldest row, comes last


async def test_losing_the_database_mid_export_breaks_the_download(exporting: Exporting) -> None:
    received = 0

    async def read_the_rest(chunks: AsyncIterator[bytes]) -> None:
        nonlocal received
        async for chunk in chunks:
            received += len(chunk)

    async with (
        httpx.AsyncClient(base_url=exporting.served.base_url, timeout=60) as http,
        http.stream("GET", "/v1/transactions/export.csv", headers=exporting.owner()) as response,
    ):
        assert response.status_code == 200
        chunks = response.aiter_raw()
        received += len(await anext(chunks))
        killer = await asyncpg.connect(exporting.dsn)
        try:
            ended = await killer.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'walletsvc'"
                " AND pid <> pg_backend_pid()"
            )
        finally:
            await killer.close()
        assert ended >= 1  # the export's own connection among them
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            await read_the_rest(chunks)
    assert received > 0
    # The server itself goes on: the next request gets a fresh connection.
    async with httpx.AsyncClient(base_url=exporting.served.base_url, timeout=30) as http:
        for _ in range(50):
            if (await http.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)  # polling the pool's reconnection
        wallet = await http.get("/v1/wallet", headers=exporting.owner())
        assert wallet.status_code == 200, wallet.text
