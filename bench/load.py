"""Load shapes: closed loop (N clients, each sending its next request when the last one is answered) and
open loop (requests sent at a fixed arrival rate, whatever the answers do)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from cpu import CpuMeter

Conn = TypeVar("Conn")


@contextlib.contextmanager
def no_client_pauses() -> Iterator[None]:
    """No cyclic garbage collection in the load generator while it measures. Its own full collections
    (tens of milliseconds on this shared machine, with thousands of requests in flight) stalled the
    sender and every answer it was reading, and showed up as the server's p99 (measured: open-loop p99
    87 ms with the client collecting, 19 ms without, the same server)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def summarise(latencies: list[float], elapsed: float) -> dict[str, Any]:
    latencies.sort()
    n = len(latencies)
    return {
        "rate": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p90_ms": round(latencies[max(0, int(n * 0.90) - 1)] * 1000, 2),
        "p99_ms": round(latencies[max(0, int(n * 0.99) - 1)] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "count": n,
        "seconds": round(elapsed, 2),
    }


def show(name: str, r: dict[str, Any], unit: str = "/s") -> None:
    print(
        f"  {name:<46} {r['rate']:>9,.0f}{unit}   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"
        f"   ({r['count']:,} in {r['seconds']:.1f} s)",
        flush=True,
    )
    if cpu := r.get("cpu"):
        print(
            f"  {'':<46} CPU a unit: server {cpu['server_us']:,.0f} us, database {cpu['database_us']:,.0f} us,"
            f" client {cpu['client_us']:,.0f} us, other {cpu['other_us']:,.0f} us; {cpu['cores_busy']:.2f} cores busy",
            flush=True,
        )


async def closed_loop(
    name: str,
    clients: int,
    seconds: float,
    one: Callable[[int, int], Awaitable[None]],
    *,
    per_call: int = 1,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """`clients` tasks call `one(client, i)` back to back for `seconds`. `per_call` is how many units
    (charges) one call carries: the rate is in units, the latencies are per call. With a `meter`, the
    CPU a unit of client, server and database, and the cores busy, over the same window."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await one(n, i)
            latencies.append(time.perf_counter() - started)
            i += 1

    with no_client_pauses():
        before = meter.read() if meter else None
        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
        after = meter.read() if meter else None
    result = summarise(latencies, elapsed)
    result["clients"] = clients
    if per_call != 1:
        result["rate"] = round(result["rate"] * per_call, 1)
        result["count"] *= per_call
    cpu = CpuMeter.per_unit(before, after, result["count"])
    if cpu:
        result["cpu"] = cpu
    show(name, result)
    return result


async def open_loop(
    name: str,
    rate: float,
    seconds: float,
    connections: list[Conn],
    one: Callable[[Conn, int], Awaitable[None]],
    warm: Callable[[Conn], Awaitable[None]],
) -> dict[str, Any]:
    """Send request i at start + i / rate on the first free connection, for `seconds`, whatever the
    earlier answers do. Each latency is measured from the request's scheduled send time, not from when a
    connection became free or when the sender got round to it: time spent queued behind a slow server
    counts (no coordinated omission). More requests in flight than connections wait for one, and that
    wait counts too.

    Before the clock starts, `warm` sends one request on every connection, so that each is open (the
    server closes a connection after 5 s idle) and the schedule does not begin with 64 TCP handshakes;
    and the clock starts after the client's own garbage collection, not before it. Both used to open
    the measured window with the sender tens of milliseconds late and a burst of requests, and that
    burst was most of the p99 (measured: over 10,000 wallets, sender up to 81 ms late at the start and
    p99 64 ms; with both fixed, sender at most 4 ms late and p99 19 ms, the same server)."""
    free: asyncio.Queue[Conn] = asyncio.Queue()
    for conn in connections:
        free.put_nowait(conn)
    latencies: list[float] = []
    total = int(rate * seconds)
    late = 0.0

    async def send(i: int, scheduled: float) -> None:
        conn = await free.get()
        try:
            await one(conn, i)
        finally:
            free.put_nowait(conn)
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    with no_client_pauses():
        await asyncio.gather(*(warm(conn) for conn in connections))
        start = time.perf_counter() + 0.05
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            tasks.append(asyncio.create_task(send(i, scheduled)))
        await asyncio.gather(*tasks)
    result = summarise(latencies, time.perf_counter() - start)
    result.update(
        offered_rate=round(rate, 1), connections=len(connections), sender_max_late_ms=round(late * 1000, 2)
    )
    show(f"{name} (offered {rate:,.0f}/s)", result)
    return result
