"""Throw-away single-node SLURM cluster for tests and CI.

Why: the submitit/SLURM launch path can only be trusted when it has run against a real ``slurmctld``; mocking
``sbatch`` hides exactly the bugs (environment, paths, pickling, job arrays) that matter.  Debian's packages give
a working SLURM in a container (``apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge``)
but their default config lives in /etc and /run.  This helper instead keeps *everything* (config, munge key and
socket, state, spool, logs, pid files) under one directory and uses free ports on 127.0.0.1, so tests neither need
nor touch any system configuration.  Without accounting ``sacct`` fails, so submitit logs "Bypassing sacct error"
warnings; it still gets results from its pickles.

Usage::

    reason = slurm_available()
    if reason:
        pytest.skip(reason)
    with slurm_cluster(tmp_path / "slurm") as env:
        subprocess.run(["sbatch", "--wait", "--wrap", "hostname"], env=env, check=True)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
PARTITION = "test"
_CLIENT_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCANCEL_")


def slurm_available() -> str | None:
    """None if a cluster can be brought up here, else a one-line reason (for ``pytest.skip``)."""
    missing = [name for name in DAEMONS + CLIENTS if _which(name) is None]
    if missing:
        return f"SLURM not installed (no {', '.join(missing)}): apt-get install slurmctld slurmd slurm-client munge"
    if os.geteuid() != 0:
        return "slurmd must run as root to launch jobs"
    return None


def _which(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin directories, which a non-login PATH often lacks."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def _free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it when binding to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _real_memory_mb() -> int:
    """90% of MemTotal: slurmd drains a node that reports less memory than slurm.conf promises."""
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return max(1, int(total_kb / 1024 * 0.9))


def _slurm_conf(base: Path, node: str, munge_socket: Path) -> str:
    """slurm.conf that pins every path under ``base`` and needs neither accounting nor cgroups."""
    cpus = len(os.sched_getaffinity(0))
    return f"""\
ClusterName=acaitest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/run/slurmctld.pid
SlurmdPidFile={base}/run/slurmd.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# start batch jobs at once instead of up to 3 s later
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# trust CPUs/RealMemory below instead of draining the node over a topology mismatch
SlurmdParameters=config_overrides
ReturnToService=2
# seconds between SIGTERM and SIGKILL on scancel: quick teardown
KillWait=2
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_real_memory_mb()} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _log_tail(base: Path, lines: int = 15) -> str:
    """Last lines of every daemon log, for error messages that explain *why* bring-up failed."""
    parts = []
    for log in sorted((base / "log").iterdir()):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
    return "\n".join(parts)


def _stop(procs: list[subprocess.Popen[bytes]], env: dict[str, str]) -> None:
    """Cancel jobs, then stop the daemons newest first (TERM, KILL after a timeout) so nothing outlives the test."""
    if len(procs) == len(DAEMONS) and all(proc.poll() is None for proc in procs):
        # slurmd leaves running job steps alone when it stops, so cancel them and wait while they wind down.
        _run(["scancel", "--partition", PARTITION], env)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _run(["squeue", "--noheader"], env) and time.monotonic() < deadline:
            time.sleep(0.5)
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(command: list[str], env: dict[str, str]) -> str:
    """stdout of a SLURM client command, or '' if it failed (e.g. slurmctld not answering yet)."""
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _wait_for(ready: Callable[[], bool], procs: list[subprocess.Popen[bytes]], base: Path, what: str) -> None:
    """Poll ``ready()`` until true; fail fast with the logs if a daemon died or after ``START_TIMEOUT_S``."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        dead = [f"{Path(proc.args[0]).name} exited with {proc.returncode}" for proc in procs if proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            problem = "; ".join(dead) or f"timed out after {START_TIMEOUT_S:.0f} s"
            raise RuntimeError(f"SLURM test cluster: waiting for {what}: {problem}\n{_log_tail(base)}")
        time.sleep(0.2)


@contextlib.contextmanager
def slurm_cluster(base: Path) -> Iterator[dict[str, str]]:
    """Run munged, slurmctld and slurmd (all in the foreground, all state under ``base``) until the block exits.

    Yields a copy of ``os.environ`` with ``SLURM_CONF`` set; pass it as ``env=`` to sbatch/squeue/scancel, or copy
    it into ``os.environ`` for submitit, which shells out with the current environment.  Raises RuntimeError with
    the daemon log tails if the node is not idle within ``START_TIMEOUT_S``.
    """
    base = Path(base).resolve()
    for sub in ("munge", "state", "spool", "run", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    # munged refuses a key or socket directory that other users could read or write.
    (base / "munge").chmod(0o700)
    key = base / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    munge_socket = base / "munge" / "munge.socket"
    node = socket.gethostname().split(".")[0]
    conf = base / "slurm.conf"
    conf.write_text(_slurm_conf(base, node, munge_socket))
    # Drop inherited client settings (e.g. from an outer allocation in CI) that could point the clients elsewhere.
    env = {name: value for name, value in os.environ.items() if not name.startswith(_CLIENT_ENV_PREFIXES)}
    env["SLURM_CONF"] = str(conf)

    procs: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> None:
        # Daemons run in the foreground (-D/--foreground) so they stay our children and can be waited for.
        with open(base / "log" / f"{command[0]}.out", "ab") as out:
            argv = [_which(command[0]) or command[0], *command[1:]]
            procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT))

    # Every munged file option, so that munged never falls back to /etc/munge, /run/munge or /var/lib/munge.
    munge_files = {
        "key-file": key,
        "socket": munge_socket,
        "pid-file": base / "run" / "munged.pid",
        "log-file": base / "log" / "munged.log",
        "seed-file": base / "munge" / "munged.seed",
    }
    try:
        # --force: tolerate a group-writable ancestor of ``base`` (e.g. a CI workspace); munged then only warns.
        start("munged", "--foreground", "--force", *(f"--{option}={path}" for option, path in munge_files.items()))
        _wait_for(munge_socket.exists, procs, base, "the munged socket")
        start("slurmctld", "-D", "-c", "-f", str(conf))  # -c: ignore any saved state, start clean
        start("slurmd", "-D", "-N", node, "-f", str(conf))
        _wait_for(lambda: _run(["sinfo", "-h", "-n", node, "-o", "%T"], env) == "idle", procs, base, "an idle node")
        yield env
    finally:
        _stop(procs, env)
