"""`walletsvc serve` underneath: take the port before anything else, run uvicorn on that socket, say
where the service is once it answers, and (with --with-worker) run `walletsvc worker` beside it.

The port is bound first so that a clash is one line at once, not a banner, migrations and then uvicorn's
bind error. The banner waits for the service's own answer, so every URL in it works when it is printed,
with one worker or many.
"""

from __future__ import annotations

import errno
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from walletsvc.cli_errors import CliError

_SUPERVISOR_PID = "WALLETSVC_SUPERVISOR_PID"
ANNOUNCE_TIMEOUT = 600.0  # a banner that never came would only mean the server never answered


def bind_port(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (not yet listening), or a CliError saying why it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts need no wait
    try:
        sock.bind((host, port))
    except socket.gaierror:
        sock.close()
        raise CliError(f'cannot resolve --host "{host}"; pass an address such as 127.0.0.1') from None
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} is in use; pass --port or stop the other process"
        elif exc.errno == errno.EACCES:
            message = f"port {port} needs privileges here; pass --port with a port above 1023"
        elif exc.errno == errno.EADDRNOTAVAIL:
            message = f"{host} is not an address of this machine; pass --host 127.0.0.1 (0.0.0.0: all)"
        else:
            message = f"cannot listen on {host}:{port} ({exc.strerror}); pass another --host or --port"
        raise CliError(message) from None
    sock.set_inheritable(True)  # uvicorn's workers are started with it
    return sock


def local_base_url(host: str, port: int) -> str:
    """The base URL a browser or curl on this machine uses for a server listening on host:port."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding to it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def answers(url: str, *, timeout: float) -> tuple[int | None, str]:
    """The HTTP status `url` answers with (None when nothing answered), and why not, for a message."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked by callers
            status: int = response.status
            return status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, OSError) and reason.strerror:
            return None, reason.strerror.lower()
        return None, str(reason)
    except (TimeoutError, OSError) as exc:
        return None, str(exc) or type(exc).__name__


def announce_when_ready(base_url: str, banner: Callable[[], list[str]]) -> threading.Thread:
    """Print the banner on stderr as soon as base_url/healthz answers (a daemon thread; it gives up after
    ANNOUNCE_TIMEOUT, by which time the server has long failed or been stopped)."""

    def watch() -> None:
        deadline = time.monotonic() + ANNOUNCE_TIMEOUT
        while time.monotonic() < deadline:
            status, _ = answers(f"{base_url}/healthz", timeout=2)
            if status == 200:
                for line in banner():
                    print(line, file=sys.stderr, flush=True)
                return
            time.sleep(0.2)  # polling our own startup

    thread = threading.Thread(target=watch, name="walletsvc-banner", daemon=True)
    thread.start()
    return thread


def create_worker_app() -> Any:
    """The app for one of several uvicorn workers, which also stops when its parent supervisor is gone:
    killed with SIGKILL, the supervisor cannot stop them, and orphaned workers would keep the port (and
    an old configuration) alive."""
    from walletsvc.app import create_app

    # Named by the supervisor, not read here: it may already be gone by the time a slow worker starts.
    supervisor = int(os.environ.get(_SUPERVISOR_PID, os.getppid()))

    def watch_parent() -> None:
        while os.getppid() == supervisor:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown

    threading.Thread(target=watch_parent, name="walletsvc-parent-watch", daemon=True).start()
    return create_app()


def run_uvicorn(sock: socket.socket, *, workers: int) -> int:
    """Serve the app on the bound socket until a signal stops it; 3 (uvicorn's code) if it never started."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from walletsvc.coalesced_http import CoalescingHttpToolsProtocol

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        "walletsvc.app:create_app" if workers == 1 else "walletsvc.serving:create_worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        http=CoalescingHttpToolsProtocol,
    )
    server = uvicorn.Server(config)
    if workers > 1:
        os.environ[_SUPERVISOR_PID] = str(os.getpid())  # the workers inherit it
        if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn took the target too
            Multiprocess(config, target=server.run, sockets=[sock]).run()  # type: ignore[call-arg]
        else:
            Multiprocess(config, sockets=[sock]).run()
        return 0
    server.run(sockets=[sock])
    return 0 if server.started else 3


class WorkerChild:
    """`walletsvc worker` as a child of `walletsvc serve --with-worker`: one command runs the whole service
    on one machine (the README's run command). Production runs the worker as its own process instead.

    The child gets the resolved DATABASE_URL (the embedded server's, which this process owns and stops
    last) and stops when this process is gone, even after a SIGKILL of it. A child that dies is started
    again after RESTART_DELAY, so a crash does not silently leave the service without its worker.
    """

    RESTART_DELAY = 5.0
    STOP_TIMEOUT = 30.0

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._process = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="walletsvc-worker-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, _PARENT_PID: str(os.getpid())}
        command = [sys.executable, "-m", "walletsvc.cli", "worker", "--concurrency", str(self.concurrency)]
        return subprocess.Popen(command, env=env)  # noqa: S603 - our own CLI, with fixed arguments

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None or process.poll() is None:
                self._stopping.wait(1.0)
                continue
            print(
                f"walletsvc: the worker exited with {process.returncode}; starting it again in "
                f"{self.RESTART_DELAY:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            if self._stopping.wait(self.RESTART_DELAY):
                return
            self._process = self._spawn()

    def stop(self) -> None:
        """SIGTERM (the worker finishes the jobs in hand), then SIGKILL after STOP_TIMEOUT."""
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_PARENT_PID = "WALLETSVC_PARENT_PID"


def parent_gone() -> Callable[[], bool] | None:
    """For a worker started by `serve --with-worker`: a check that its parent is gone (None otherwise)."""
    parent = os.environ.get(_PARENT_PID)
    if not parent:
        return None
    expected = int(parent)
    return lambda: os.getppid() != expected
