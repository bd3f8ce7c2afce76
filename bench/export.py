"""GET /v1/transactions/export.csv of a tenant with 1,000,000 ledger rows: rows/s and the server's memory.

The history is written in raw SQL (bench/ledger_data.py, chained so that ledger verify passes), the real
server is started on it, and the export is streamed by a client that counts the rows as they arrive.
Meanwhile the server process's VmRSS is sampled from /proc; its VmHWM (peak RSS) is read at the end. Flat
memory means the peak does not grow with the rows: the RSS at 10 % of the rows is the RSS at 100 %.
Not a test: nothing is asserted about time.

Run: .venv/bin/python bench/export.py [--rows 1000000] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import asyncpg
import httpx
from harness import bench_database, describe, memory_of, run_cli, start_server, token
from ledger_data import write_history
from results import save


async def stream_export(base_url: str, tenant_id: str, pid: int, rows: int) -> dict[str, Any]:
    samples: list[tuple[int, int]] = []  # (rows received, server VmRSS kB)
    received = 0
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append((received, memory_of(pid)["VmRSS"]))
            await asyncio.sleep(0.1)  # sampling period

    before = memory_of(pid)
    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    first_byte = 0.0
    size = 0
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as client,  # between chunks
        client.stream("GET", "/v1/transactions/export.csv", headers=token("owner", tenant_id)) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for chunk in response.aiter_raw():
            if not first_byte:
                first_byte = time.perf_counter() - started
            received += chunk.count(b"\n")
            size += len(chunk)
    elapsed = time.perf_counter() - started
    done.set()
    await sampler
    after = memory_of(pid)
    received -= 1  # the header line
    at = {}
    for share in (0.1, 0.25, 0.5, 0.75, 1.0):
        kb = [rss for n, rss in samples if n <= received * share]
        at[f"{share:.0%}"] = round(max(kb) / 1024, 1) if kb else None
    return {
        "rows": received,
        "expected_rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_second": round(received / elapsed),
        "megabytes": round(size / 1e6, 1),
        "first_byte_ms": round(first_byte * 1000, 1),
        "server_rss_before_mb": round(before["VmRSS"] / 1024, 1),
        "server_peak_rss_mb": round(after["VmHWM"] / 1024, 1),
        "server_rss_after_mb": round(after["VmRSS"] / 1024, 1),
        "server_rss_mb_by_share_of_rows": at,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    async with bench_database(args.database_url) as db:
        machine = await db.machine()
        print(f"walletsvc CSV export bench on {describe(machine)}", flush=True)
        conn = await asyncpg.connect(db.dsn)
        try:
            written = await write_history(conn, args.rows, hot_share=1.0, prefix="export")
        finally:
            await conn.close()
        print(
            f"  {args.rows:,} ledger rows for {written.hot_tenant} written in {written.seconds:.1f} s",
            flush=True,
        )
        server = await start_server(db)
        try:
            runs = []
            for n in (1, 2):  # the second shows whether memory the first took is kept or grows
                run = await stream_export(server.base_url, written.hot_tenant, server.process.pid, args.rows)
                runs.append(run)
                print(
                    f"  export {n}: {run['rows']:,} rows ({run['megabytes']:,} MB) in {run['seconds']:.1f} s:"
                    f" {run['rows_per_second']:,} rows/s, first byte {run['first_byte_ms']:.0f} ms;"
                    f" server RSS {run['server_rss_before_mb']} MB before, peak {run['server_peak_rss_mb']} MB,"
                    f" by share of rows {run['server_rss_mb_by_share_of_rows']}",
                    flush=True,
                )
        finally:
            server.stop()
        verify = run_cli(db, "ledger", "verify")
        outcome = verify.stdout.strip().splitlines()[-1] if verify.stdout else verify.stderr[-500:]
        print(f"  ledger verify: {outcome}")
    path = save("export", {"machine": machine, "rows": args.rows, "runs": runs, "ledger_verify": outcome})
    print(f"figures: {path} (a shared machine: figures are noisy)")


if __name__ == "__main__":
    asyncio.run(main())
