"""The embedded PostgreSQL (the `pgserver` package), used when DATABASE_URL is unset.

pgserver keeps one server per data folder, shared by every process that asks for it: each process adds
its pid to `.handle_pids.json` in the folder, removes it at exit (atexit), and the last one out stops the
server. A process killed with SIGKILL runs no atexit hook, so its pid stayed in the list for good and no
later process was ever "the last one": the server outlived every clean stop. `start_embedded` therefore
forgets the pids of processes that are gone before it joins, so the server's life follows its users'
again: a restart after a kill adopts the running server, and the next clean stop stops it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse

log = logging.getLogger(__name__)

DATABASE_NAME = "walletsvc"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_USERS_FILE = ".handle_pids.json"  # pgserver's list of the processes using the server in a data folder

# platformdirs warns on every import of pgserver when XDG_RUNTIME_DIR is unset (containers, cron, ssh
# without a login session) and falls back to /tmp/runtime-UID, which works: not worth a line on every run.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def start_embedded(data_dir: Path, database: str = DATABASE_NAME, *, throwaway: bool = False) -> str:
    """Start (or join) the embedded server in data_dir, make sure `database` exists, return its URL.

    The server is stopped when the last live process using it exits cleanly; a `throwaway` one (a
    benchmark's) is then deleted, data folder and all.
    """
    import pgserver  # imported late: only the embedded mode needs it

    if not _NAME.match(database):
        raise ValueError(f"not a plain database name: {database!r}")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    forget_dead_users(data_dir)
    server = pgserver.get_server(  # type: ignore[attr-defined]
        str(data_dir), cleanup_mode="delete" if throwaway else "stop"
    )
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608 - checked above
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
        log.info("embedded database created", extra={"database": database})
    socket_dir = parse_qs(urlparse(server.get_uri()).query)["host"][0]
    return f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}"


def is_embedded_url(url: str, data_dir: Path) -> bool:
    """Whether `url` is the embedded server's in data_dir (its socket lives there): what `walletsvc serve`
    hands its worker as DATABASE_URL is still the embedded database."""
    sockets = parse_qs(urlparse(url).query).get("host", [])
    return any(Path(socket).resolve() == data_dir.resolve() for socket in sockets)


def forget_dead_users(data_dir: Path) -> list[int]:
    """Drop from pgserver's list of users of the server in data_dir every process that no longer runs
    (killed, or a zombie) or whose pid now belongs to another program. Returns the pids dropped."""
    from pgserver.postgres_server import PostgresServer

    path = data_dir / _USERS_FILE
    # pgserver's own inter-process lock: the one it holds while it adds and removes pids.
    with PostgresServer._lock:
        if not path.exists():
            return []
        try:
            pids = [int(pid) for pid in json.loads(path.read_text())]
        except (ValueError, TypeError):  # a torn or hand-edited file: start the list again
            path.write_text("[]")
            return []
        dropped = [pid for pid in pids if not _is_live_python(pid)]
        if dropped:
            path.write_text(json.dumps([pid for pid in pids if pid not in dropped]))
    if dropped:
        log.info("embedded server: forgot processes that had ended", extra={"pids": dropped})
    return dropped


def _is_live_python(pid: int) -> bool:
    if pid == os.getpid():
        return True
    import psutil  # type: ignore[import-untyped]  # pgserver's dependency

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # A pid the kernel handed to another program since: every user of the server is a Python process.
        command = process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # another user's process: cannot tell, so keep it
        return True
    return bool(command) and "python" in Path(command[0]).name.lower()
