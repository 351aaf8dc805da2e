"""A private PostgreSQL server for a test: Debian's `postgresql`, a cluster made by `initdb` in a
temporary directory, started by `pg_ctl` on 127.0.0.1 and a free port, stopped at the end.

PostgreSQL refuses to run as root: as root (CI), the cluster belongs to the `postgres` user
the Debian package creates, and its commands run through `runuser`.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .servers import free_port

__all__ = ["Postgres", "postgres_server"]


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    def environ(self) -> dict[str, str]:
        """The variables examples/django_shop reads its DATABASES from."""
        return {
            "SHOP_DB_HOST": self.host,
            "SHOP_DB_PORT": str(self.port),
            "SHOP_DB_USER": self.user,
            "SHOP_DB_PASSWORD": self.password,
            "SHOP_DB_NAME": self.database,
        }


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/system-deps")
    return Path(found[-1]).parent


def _as_owner(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A running server with a database and a password user, gone afterwards (a directory
    of its own under /tmp: pytest's are the test user's alone, closed to `postgres`)."""
    binaries = _bin()
    root = Path(tempfile.mkdtemp(prefix="pg-cluster-"))
    try:
        with _cluster(binaries, root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _cluster(binaries: Path, root: Path) -> Iterator[Postgres]:
    data = root / "pgdata"
    sockets = root / "pgsock"
    for directory in (data, sockets):
        directory.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for directory in (data, sockets):
            shutil.chown(directory, "postgres")
    password_file = root / "pw"
    password_file.write_text("shop-secret\n")
    if os.geteuid() == 0:
        shutil.chown(password_file, "postgres")
    subprocess.run(
        _as_owner(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "shop",
                "--pwfile",
                str(password_file),
                "-A",
                "scram-sha-256",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {sockets} -F -c fsync=off"
    subprocess.run(
        _as_owner(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        environment = {**os.environ, "PGPASSWORD": "shop-secret"}
        subprocess.run(
            [
                str(binaries / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "shop",
                "shop",
            ],
            check=True,
            capture_output=True,
            env=environment,
            timeout=60,
        )
        yield Postgres("127.0.0.1", port, "shop", "shop-secret", "shop")
    finally:
        subprocess.run(
            _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
