"""Where the CPU went during a measurement, read from /proc (Linux): how many of the machine's cores were
busy, and the CPU time per unit (request or charge) of the bench's own client (this process), of the
walletsvc servers (their process groups) and of PostgreSQL (every process named `postgres`: the server
on the machine or the embedded one). Client, server and database share the machine's cores, so these
figures bound what any change to one of them can gain: a rate is at most cores / (CPU a unit of all
three). Where /proc cannot be read the meter reports nothing."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class Reading:
    at: float  # time.perf_counter()
    busy: float  # seconds of all cores busy since boot (not idle, not waiting for I/O)
    client: float
    server: float
    database: float


class CpuMeter:
    def __init__(self) -> None:
        self.servers: set[int] = set()  # process groups of the walletsvc servers (Server.process.pid)

    def read(self) -> Reading | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            client = server = database = 0.0
            me = os.getpid()
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    stat = (entry / "stat").read_text()
                    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
                    fields = stat[stat.rindex(")") + 2 :].split()
                    seconds = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
                except (OSError, ValueError, IndexError):
                    continue  # ended meanwhile
                if int(entry.name) == me:
                    client += seconds
                elif int(fields[2]) in self.servers:
                    server += seconds
                elif comm == "postgres":
                    database += seconds
            cores = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            ticks = [int(t) for t in cores]
            busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / _TICK  # all but idle and iowait
            return Reading(time.perf_counter(), busy, client, server, database)
        return None

    @staticmethod
    def per_unit(before: Reading | None, after: Reading | None, units: int) -> dict[str, Any] | None:
        """CPU microseconds a unit by client, server, database and the rest of the machine, and the
        cores busy on average."""
        if before is None or after is None or units <= 0 or after.at <= before.at:
            return None

        def us(a: float, b: float) -> float:
            return round((b - a) / units * 1e6, 1)

        ours = (after.client - before.client) + (after.server - before.server)
        ours += after.database - before.database
        return {
            "client_us": us(before.client, after.client),
            "server_us": us(before.server, after.server),
            "database_us": us(before.database, after.database),
            # The rest of the busy cores: the kernel's own work (loopback networking, softirqs) and any
            # other process on this shared machine.
            "other_us": round(max(0.0, (after.busy - before.busy) - ours) / units * 1e6, 1),
            "cores_busy": round((after.busy - before.busy) / (after.at - before.at), 2),
        }
