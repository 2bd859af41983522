"""A project-local PostgreSQL cluster for development and tests.

Used when DATABASE_URL is unset: ``python3 -m mpi.localdb start|stop|status|url``.
Standard library only, because the Makefile runs it before the virtualenv exists.

The cluster lives in ``.pgdata/`` (git-ignored), listens only on a Unix socket
(no TCP port to collide with another checkout or the system server) and runs with
durability switched off: it is a disposable development database, never production.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PORT = 54329  # only names the socket file; TCP is off
DB_NAME = "mpi"
DB_USER = "mpi"
# Dev/test speed: the cluster is throw-away, so durability is not wanted.
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c listen_addresses='' -c max_connections=100 -c shared_buffers=256MB "
    "-c maintenance_work_mem=256MB -c work_mem=16MB -c jit=off"
)


def _is_root() -> bool:
    return os.geteuid() == 0


def _checkout_key() -> str:
    return hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:10]


def data_root() -> Path:
    """The cluster folder: ``.pgdata`` in the project, or a link to a folder elsewhere.

    As root, initdb must run as the ``postgres`` user, which cannot enter a project
    that sits under a 0700 folder such as /root; the data then lives in /var/tmp and
    ``.pgdata`` points there.
    """
    return BASE_DIR / ".pgdata"


def socket_dir() -> Path:
    # A Unix socket path must stay under 107 bytes; a deep checkout gets a short one.
    inside = data_root() / "run"
    if len(str(inside / f".s.PGSQL.{PORT}")) < 100:
        return inside
    return Path(tempfile.gettempdir()) / f"mpi-pg-{_checkout_key()}"


def database_url() -> str:
    from urllib.parse import quote

    return f"postgres://{DB_USER}@{quote(str(socket_dir()), safe='')}:{PORT}/{DB_NAME}"


def _bindir() -> Path | None:
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates += [v / "bin" for v in versions]
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    return None


def _ensure_binaries() -> Path:
    bindir = _bindir()
    if bindir:
        return bindir
    if _is_root() and shutil.which("apt-get"):
        print("PostgreSQL binaries not found: installing Debian's postgresql package...", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql", "postgresql-contrib"],
            check=True,
            env=env,
        )
        bindir = _bindir()
        if bindir:
            return bindir
    sys.exit(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install PostgreSQL 15+ "
        "(Debian: apt-get install postgresql) or set DATABASE_URL to an existing server."
    )


def _run_as_owner(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    if _is_root():
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, **kwargs)


def _postgres_can(test: str, path: Path) -> bool:
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", test, str(path)])
    return probe.returncode == 0


def _prepare_dirs() -> Path:
    """Create the cluster folder with the right owner; return the data directory."""
    root = data_root()
    if not root.exists():
        if _is_root() and not _postgres_can("-x", BASE_DIR):
            target = Path("/var/tmp") / f"mpi-pgdata-{_checkout_key()}"
            target.mkdir(parents=True, exist_ok=True)
            root.symlink_to(target)
        else:
            root.mkdir()
    sock = socket_dir()
    sock.mkdir(parents=True, exist_ok=True)
    if _is_root():
        pg = pwd.getpwnam("postgres")
        for p in {root.resolve(), sock}:
            os.chown(p, pg.pw_uid, pg.pw_gid)
        if not _postgres_can("-w", root.resolve()):
            sys.exit(f"The postgres user cannot write to {root.resolve()}; fix its permissions.")
    return root / "data"


def _running(bindir: Path, data: Path) -> bool:
    if not (data / "PG_VERSION").exists():
        return False
    status = _run_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "status"], capture_output=True)
    return status.returncode == 0


def start() -> None:
    bindir = _ensure_binaries()
    data = _prepare_dirs()
    if not (data / "PG_VERSION").exists():
        print(f"Creating a local PostgreSQL cluster in {data} ...", flush=True)
        _run_as_owner(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                DB_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
        )
    if not _running(bindir, data):
        log = data_root().resolve() / "postgres.log"
        _run_as_owner(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-k {socket_dir()} -p {PORT} {SERVER_OPTIONS}",
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"Local PostgreSQL started (socket in {socket_dir()}).", flush=True)
    _ensure_database(bindir)


def _ensure_database(bindir: Path) -> None:
    psql = [str(bindir / "psql"), "-h", str(socket_dir()), "-p", str(PORT), "-U", DB_USER]
    exists = _run_as_owner(
        [*psql, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'"],
        capture_output=True,
        text=True,
        check=True,
    )
    if exists.stdout.strip() != "1":
        _run_as_owner([*psql, "-d", "postgres", "-qc", f"CREATE DATABASE {DB_NAME}"], check=True)


def stop() -> None:
    bindir = _bindir()
    data = data_root() / "data"
    if bindir and _running(bindir, data):
        _run_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], check=True)
    else:
        print("Local PostgreSQL is not running.")


def status() -> None:
    bindir = _bindir()
    running = bool(bindir) and _running(bindir, data_root() / "data")
    print(f"local cluster: {'running' if running else 'stopped'}; url: {database_url()}")


if __name__ == "__main__":
    commands = {"start": start, "stop": stop, "status": status, "url": lambda: print(database_url())}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python3 -m mpi.localdb {{{'|'.join(commands)}}}")
    commands[sys.argv[1]]()
