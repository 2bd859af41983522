"""gunicorn on loopback for the benchmark, configured as in production (gunicorn.conf.py).

Differences, each for the measurement's sake: a free port on 127.0.0.1; no per-client
rate limit (``MPI_API_RATE=off``: the load generator is one client); request lines at
WARNING (writing a JSON line per request would be measured too); workers never
recycled (``GUNICORN_MAX_REQUESTS=0``), so each worker's peak RSS (VmHWM) covers the
whole run instead of resetting every 2,000 requests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def child_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a process working on the benchmark database (commands, gunicorn)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPI_PROCESS", "DATABASE_REPLICA_URL")}
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(DATABASE_URL=database_url, MPI_API_RATE="off", REQUEST_LOG_LEVEL="WARNING")
    if not env.get("SECRET_KEY"):
        env["MPI_ALLOW_DEV_SECRET_KEY"] = "true"  # a throw-away database on loopback
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (gunicorn's workers), from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            out.append(int(entry))
    return sorted(out)


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the process's peak resident set size, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    workers: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        return children(self.process.pid)

    def worker_peak_rss(self) -> dict[int, float]:
        return {pid: mb for pid in self.worker_pids() if (mb := peak_rss_mb(pid)) is not None}


def _wait_ready(server: Server, deadline: float) -> None:
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({server.process.returncode}); see {server.log}")
        try:
            with urlopen(f"{server.base}/readyz", timeout=5) as response:
                if response.status == 200 and len(server.worker_pids()) >= server.workers:
                    return
        except (URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not become ready; see {server.log}")
        time.sleep(0.2)


@contextmanager
def gunicorn(
    *, database_url: str, workers: int, log: Path, settings_module: str = "mpi.settings"
) -> Iterator[Server]:
    port = free_port()
    env = child_env(
        database_url,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS=str(workers),
        GUNICORN_MAX_REQUESTS="0",
        GUNICORN_LOG_LEVEL="warning",
        DJANGO_SETTINGS_MODULE=settings_module,
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "mpi.wsgi:application", "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        server = Server(port, process, workers, log)
        try:
            _wait_ready(server, time.monotonic() + 120)
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
