"""`walletsvc ledger verify` right after a bulk write, at growing sizes: it must stay linear.

For each size (10k, 100k, 1M ledger rows by default) a fresh database gets that history (bench/ledger_data.py:
one hot tenant with half the rows, the rest in tenants of 200; top-ups, top-up refunds, charges and charge
refunds, so every ledger check has rows to read), and the real command runs at once, before autovacuum
has analysed anything. Prints the write time, the verify time, seconds per 100k rows, and the slowest
checks (from the command's own progress lines). Not a test: nothing is asserted about time.

Run: .venv/bin/python bench/ledger_verify.py [--sizes 10000,100000,1000000]
         [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from typing import Any

import asyncpg
from harness import bench_database, describe, run_cli
from ledger_data import write_history
from results import save

CHECK_LINE = re.compile(r"^check (\S+): ([\d.]+) s$")


async def one_size(rows: int, server_url: str | None) -> dict[str, Any]:
    async with bench_database(server_url) as db:
        conn = await asyncpg.connect(db.dsn)
        try:
            written = await write_history(conn, rows)
        finally:
            await conn.close()
        started = time.perf_counter()
        verify = run_cli(db, "ledger", "verify", "--progress")
        seconds = time.perf_counter() - started
        if verify.returncode != 0:
            raise SystemExit(f"ledger verify failed at {rows:,} rows:\n{verify.stdout}\n{verify.stderr}")
        checks = {
            m.group(1): float(m.group(2))
            for line in verify.stderr.splitlines()
            if (m := CHECK_LINE.match(line.strip()))
        }
        analysed = [line for line in verify.stderr.splitlines() if line.startswith("statistics")]
        checks_total = sum(checks.values())
        result = {
            "rows": rows,
            "tenants": written.tenants,
            "write_seconds": round(written.seconds, 2),
            "verify_seconds": round(seconds, 2),
            "seconds_per_100k_rows": round(seconds / rows * 100_000, 2),
            "statistics": analysed[0] if analysed else None,
            "checks_total_seconds": round(checks_total, 1),
            "checks_seconds": checks,
            "machine": await db.machine(),
        }
    slowest = sorted(checks.items(), key=lambda kv: -kv[1])[:3]
    print(
        f"  {rows:>10,} rows  {written.tenants:>6,} tenants   written in {written.seconds:6.1f} s   "
        f"verify {seconds:6.1f} s, of which the checks {checks_total:5.1f} s"
        + (f"   slowest: {', '.join(f'{k} {v:.1f} s' for k, v in slowest)}" if slowest else ""),
        flush=True,
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    where = "a PostgreSQL server" if args.database_url else "embedded PostgreSQL"
    print(f"walletsvc ledger verify right after a bulk write, {where}", flush=True)
    runs = [await one_size(rows, args.database_url) for rows in sizes]
    print(f"machine: {describe(runs[-1]['machine'])} (a shared machine: figures are noisy)")
    if len(runs) > 1:
        first, last = runs[0], runs[-1]
        growth = last["rows"] / first["rows"]
        print(
            f"  rows x{growth:,.0f} -> verify time x{last['verify_seconds'] / first['verify_seconds']:,.1f}"
            f" (the command's start-up, about {first['verify_seconds']:.1f} s, is in every figure)"
        )
    path = save("ledger-verify", {"runs": runs})
    print(f"figures: {path}")


if __name__ == "__main__":
    asyncio.run(main())
