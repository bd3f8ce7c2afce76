"""The bank test: money stays exact while servers die under load.

Two real `walletsvc serve` processes share one PostgreSQL database; a stateful Stripe + Razorpay stand-in
answers them over HTTP. Workers send randomized charges, call holds and hangups, admin adjustments,
top-ups (paid, failed, confirmed by duplicated, reordered and forged webhooks, the Stripe return and the
Razorpay verify call), top-up refunds and charge refunds, retrying as a good client does, while a
server is SIGKILLed and restarted and the servers' database connections are cut with
pg_terminate_backend. Then every provider event is delivered, `walletsvc reconcile` runs, and:

- `walletsvc ledger verify` exits 0;
- each wallet holds what the test's model says, given the acknowledged operations: every acknowledged
  charge exactly once, every captured top-up credited once, refunds never paying out twice;
- per provider, what the stand-in captured minus refunded equals what walletsvc credited minus debited;
- no request answered 500, none got an answer a correct walletsvc never gives, no forged confirmation
  was accepted, and every operation was answered in the end.

BANK_SEED replays a run's operations and faults (the seed is printed); BANK_OPS sets how many operations
(the default takes about a minute on a 2-core machine); BANK_WORKERS how many run at once.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.bank_checks import BankCheck, answer_problems
from tests.fixtures.bank_cluster import BankCluster, BankDatabase, BankSecrets
from tests.fixtures.bank_report import report
from tests.fixtures.bank_workload import Workload, fault_schedule
from tests.fixtures.provider_server import FaultPlan, ProviderStandIn

DEFAULT_OPS = 2500
DEFAULT_WORKERS = 8


@pytest.fixture
async def bank_cluster(
    database_url: str, tmp_path: Path, seed: int
) -> AsyncIterator[tuple[BankCluster, ProviderStandIn]]:
    secrets = BankSecrets()
    stand_in = ProviderStandIn(
        stripe_secret_key=secrets.stripe_secret_key,
        razorpay_key_id=secrets.razorpay_key_id,
        razorpay_key_secret=secrets.razorpay_key_secret,
        faults=FaultPlan(seed, fail_rate=0.03, drop_rate=0.05),
    )
    base = stand_in.serve()
    database = await BankDatabase.create(database_url, ["a", "b"])
    cluster = BankCluster.build(database, secrets, base, tmp_path)
    try:
        await cluster.start()
        yield cluster, stand_in
    finally:
        await asyncio.to_thread(cluster.stop)
        stand_in.close()
        await database.drop()


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("BANK_SEED") or random.SystemRandom().randrange(2**32))


async def test_money_stays_exact_under_crashes_cut_connections_and_hostile_webhooks(
    bank_cluster: tuple[BankCluster, ProviderStandIn], seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, stand_in = bank_cluster
    ops = int(os.environ.get("BANK_OPS") or DEFAULT_OPS)
    workers = int(os.environ.get("BANK_WORKERS") or DEFAULT_WORKERS)
    faults = fault_schedule(
        seed, ops, kills=2, terminations=max(4, ops // 200), crashes=3, servers=len(cluster.servers)
    )
    with capsys.disabled():
        print(f"\nbank test: BANK_SEED={seed} BANK_OPS={ops} BANK_WORKERS={workers}", flush=True)
    workload = Workload(
        seed=seed, ops=ops, workers=workers, cluster=cluster, stand_in=stand_in, faults=faults
    )
    try:
        await workload.setup()
        await workload.run()
        problems = await workload.settle()
    finally:
        await workload.client.aclose()

    verify = await asyncio.to_thread(cluster.cli, "ledger", "verify")
    if verify.returncode != 0:
        failed = [
            line for line in verify.stdout.splitlines() if "FAIL" in line or line.startswith("         ")
        ]
        problems.append(f"walletsvc ledger verify exited {verify.returncode}: " + "\n".join(failed[:40]))
    assert cluster.database.control is not None
    check = BankCheck(workload, cluster.database.control)
    problems += await check.run()
    problems += answer_problems(workload)

    text = report(workload, check, verify.stdout, problems)
    with capsys.disabled():
        print(text, flush=True)
    if problems:
        logs = "\n".join(f"--- server {s.name} log tail ---\n{s.log_tail(3000)}" for s in cluster.servers)
        pytest.fail(
            f"{len(problems)} money-safety problems (BANK_SEED={seed}):\n" + "\n".join(problems) + "\n" + logs
        )
