"""A real PostgreSQL server and a real `mlflow server` on it, for tests and CI.

The file store and SQLite hide what production sees: a tracking server reached over HTTP, a SQL database behind it,
artifacts proxied by the server (`mlflow-artifacts:/...`, so clients need no storage credentials) and a server that
can go away in the middle of a run. Everything here runs unprivileged in temporary directories on free ports, so it
neither needs nor touches a system PostgreSQL cluster (Debian's `main` on 5432) and leaves no process behind.

    if reason := postgres_available():
        pytest.skip(reason)
    with postgres(tmp_path) as db, MlflowServer(db, tmp_path / "artifacts") as server:
        mlflow.set_tracking_uri(server.uri)
        ...
        server.stop()  # the tracking server goes down mid-run ...
        server.start()  # ... and comes back on the same port, backend and artifact store
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

_PG_USER = "postgres"  # initdb and pg_ctl refuse to run as root; as root we run them as this account


def _pg_bin() -> Path | None:
    """Where initdb and pg_ctl live: the PATH if it has them (deliberate), else Debian's newest versioned dir."""
    if initdb := shutil.which("initdb"):
        return Path(initdb).parent

    def version(d: str) -> list[int]:  # numeric, so that 9.6 sorts below 15
        return [int(p) for p in Path(d).parent.name.split(".") if p.isdigit()]

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def postgres_available() -> str | None:
    """None if `postgres()` can run here, else a one-line reason to pass to `pytest.skip`."""
    if _pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql"
    if importlib.util.find_spec("psycopg") is None:
        return "python driver psycopg not installed; pip install 'psycopg[binary]>=3.1,<4'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_PG_USER)
        except KeyError:
            return f"running as root and there is no '{_PG_USER}' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is missing"
    return None


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it when binding port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    """The end of a log file, for error messages that say why a server did not come up."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"<no log: {e}>"


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (Linux /proc). Zombies do not count: once our child has exited,
    its orphans belong to init, which reaps them when it pleases (slowly, or never as a container's bare PID 1)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]  # after "pid (comm)"
            if int(pgrp) == pgid and state not in "ZX":
                return True
    return False


@contextlib.contextmanager
def postgres(base: Path) -> Iterator[str]:
    """Run a throw-away PostgreSQL server and yield `postgresql://mlflow@127.0.0.1:PORT/mlflow`.

    The cluster trusts every local connection (a test fixture, never exposed: it listens on 127.0.0.1 only and has
    no unix socket, which also spares us the 107-byte socket path limit that deep pytest tmp paths break).
    fsync is off: durability across an OS crash is not what tests check, speed is. The server log goes to
    `base/postgres.log`. As root the data directory lives in a fresh dir under the system temp dir, owned by
    `postgres`, because pytest's tmp_path sits under a 0700 root-owned directory that `postgres` cannot enter.
    """
    base.mkdir(parents=True, exist_ok=True)
    bin_dir = _pg_bin()
    if bin_dir is None:
        raise RuntimeError(postgres_available() or "PostgreSQL not found")
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", _PG_USER, "--"] if as_root else []
    if as_root:
        data = Path(tempfile.mkdtemp(prefix="pgdata-"))
        pw = pwd.getpwnam(_PG_USER)
        os.chown(data, pw.pw_uid, pw.pw_gid)
    else:
        data = base / "pgdata"
    log_path = base / "postgres.log"
    port = free_port()
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    with open(log_path, "ab") as log:  # opened by us, inherited by the server: works whoever the server runs as
        run = subprocess.run
        try:
            initdb = [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "mlflow", "-E", "UTF8"]
            if run([*prefix, *initdb, "--no-sync"], stdout=log, stderr=subprocess.STDOUT).returncode:
                raise RuntimeError(f"initdb failed:\n{_tail(log_path)}")
            opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
            if run([*pg_ctl, "-o", opts, "-w", "-t", "60", "start"], stdout=log, stderr=subprocess.STDOUT).returncode:
                raise RuntimeError(f"PostgreSQL did not start:\n{_tail(log_path)}")
            import psycopg  # optional dependency: checked by postgres_available()

            with psycopg.connect(f"postgresql://mlflow@127.0.0.1:{port}/postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE mlflow")
            yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
        finally:
            if (data / "postmaster.pid").exists():
                run([*pg_ctl, "-m", "fast", "-w", "-t", "60", "stop"], stdout=log, stderr=subprocess.STDOUT)
            if as_root:
                shutil.rmtree(data, ignore_errors=True)


class MlflowServer:
    """`python -m mlflow server` as a subprocess that a test can stop and start again on the same port.

    Artifacts are proxied (`--artifacts-destination`), so experiments created without an artifact_location get
    `mlflow-artifacts:/...` and clients write files through HTTP into `artifacts`, never into their own cwd.
    The server runs in its own process group so `stop()` reaches the gunicorn/uvicorn workers it forks, too.
    Its output is appended to `log` (default: `mlflow-server.log` next to `artifacts`) across restarts.
    """

    def __init__(
        self,
        backend_uri: str,
        artifacts: Path,
        port: int | None = None,
        log: Path | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> None:
        self.backend_uri = backend_uri
        self.artifacts = artifacts
        self.port = port or free_port()
        self.log = log or artifacts.parent / "mlflow-server.log"
        self.timeout = timeout
        # MLflow 3 also forks a job runner and 6 huey consumers (GenAI scorer jobs, not needed for tracking): on a
        # 2-core runner they slow every start, and each start leaves a temp dir in /dev/shm. Switch them off.
        self.env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The tracking URI for `mlflow.set_tracking_uri`."""
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        """True if the server answers GET /health with 200 right now."""
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:  # URLError, HTTPError, refused, reset, timeout
            return False

    def start(self) -> None:
        """Start the server and block until /health answers; RuntimeError with the log tail if it never does."""
        if self._proc is not None:
            raise RuntimeError(f"mlflow server already running at {self.uri}")
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri]
        cmd += ["--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                [*cmd, "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        deadline = time.monotonic() + self.timeout
        while not self.healthy():
            if (code := self._proc.poll()) is not None or time.monotonic() > deadline:
                why = "timed out" if code is None else f"exited with {code}"
                self.stop()
                raise RuntimeError(f"mlflow server on port {self.port} {why}; log tail:\n{_tail(self.log)}")
            time.sleep(0.2)

    def stop(self, timeout: float = 10) -> None:
        """Take the server down: SIGTERM to its process group, SIGKILL after `timeout`, until no member is left."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # workers can outlive their leader: kill what is left
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while _group_alive(pgid) and time.monotonic() < deadline:  # until the port is released
            time.sleep(0.1)

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
