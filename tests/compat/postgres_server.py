"""A throwaway PostgreSQL server for change-data-capture tests: a fresh cluster (initdb) in a temporary
directory, listening on 127.0.0.1 on a free port, ``wal_level=logical`` so a logical replication slot
(Debezium's pgoutput) can stream its changes. Debian's PostgreSQL binaries (``apt-get install postgresql``);
run as the ``postgres`` user when the tests run as root, since the server refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType

from tests.support.poll import wait_for
from tests.support.ports import free_port

START_TIMEOUT_S = 30.0
SQL_TIMEOUT_S = 30.0
USER = "postgres"  # the superuser initdb creates; trust authentication on loopback


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine; the message says how to get them."""


def bindir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian keeps them off PATH, one per major)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise PostgresMissing("no /usr/lib/postgresql/*/bin/initdb: run `apt-get install -y postgresql`")
    return found[-1].parent


class PostgresServer:
    def __init__(self, base: Path) -> None:
        self.bin = bindir()
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        self.log_path = base / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # The server refuses to run as root: hand the directory to the postgres user.
        self.user: str | None = USER if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self) -> PostgresServer:
        self.base.mkdir(parents=True, exist_ok=True)
        self._chown(self.base)
        init = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust", "--no-sync"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            user=self.user,
        )
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
        cmd = [
            str(self.bin / "postgres"), "-D", str(self.data),
            "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
            "-c", f"unix_socket_directories={self.base}",
            # Logical decoding for the CDC connector's replication slot.
            "-c", "wal_level=logical", "-c", "max_wal_senders=4", "-c", "max_replication_slots=4",
            # A throwaway database: durability is not what is tested here.
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, user=self.user)
        wait_for("PostgreSQL to accept connections", self._ready, START_TIMEOUT_S, self.log)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, f"postgres exited:\n{self.log()}"
        probe = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return probe.returncode == 0

    def sql(self, statements: str, db: str = "postgres") -> str:
        """Runs ``statements`` with psql (stopping at the first error) and returns its output."""
        psql = shutil.which("psql") or str(self.bin / "psql")
        cmd = [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", db, "-v", "ON_ERROR_STOP=1"]
        cmd += ["-qAt", "-c", statements]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SQL_TIMEOUT_S, check=False)
        assert proc.returncode == 0, f"psql failed on {statements!r}:\n{proc.stderr}"
        return proc.stdout

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGQUIT: immediate shutdown, no checkpoint; the data directory is thrown away anyway.
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
