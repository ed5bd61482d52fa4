"""One writer per configuration: an exclusive lock on `<checkpoint_dir>/<config key>.lock`.

The lock is a kernel file lock (`flock`), not a file whose existence is the lock: the kernel drops it
when its process ends in any way (exit, Ctrl-C, `kill -9`, the OOM killer), so it never goes stale and
needs no heartbeat or timeout. The file holds its owner (pid, host, start, MLflow run) for the message
that a second command gets, and for tools that ask whether a RUNNING run still has a live process.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from acai.errors import ConfigError, TrainingError


def lock_path(checkpoint_dir: str | Path, key: str) -> Path:
    return Path(checkpoint_dir).expanduser().resolve() / f"{key}.lock"


def make_writable_folder(folder: Path, setting: str = "trainer.checkpoint_dir") -> None:
    """Create the checkpoint folder up front: a path that is a file or cannot be written fails now,
    not at the first checkpoint after training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(setting, str(folder), "must be a folder, and a file is in the way") from None
    except OSError as e:
        raise ConfigError(setting, str(folder), f"cannot be created ({e.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(setting, str(folder), "must be a writable folder")


def read_owner(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def is_held(path: str | Path) -> bool:
    """Whether a live process holds this lock (False for a missing file: nobody holds it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the shared lock taken by the probe
    return False


class RunLock:
    """Held for the whole of one training process; `describe` records what it is doing."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None
        self.owner: dict[str, Any] = {}

    def acquire(self) -> RunLock:
        make_writable_folder(self.path.parent)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise TrainingError(self.busy_message()) from None
            except OSError as e:  # ENOLCK, EOPNOTSUPP: a filesystem without file locks
                os.close(fd)
                raise ConfigError("trainer.checkpoint_dir", str(self.path.parent),
                                  f"must be on a filesystem with file locks ({e.strerror})") from None
            # Another process may have released and removed the file between our open and flock:
            # then we locked an orphan, and must lock the file that the path names now.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                self.describe(pid=os.getpid(), host=socket.gethostname(), since=time.strftime("%Y-%m-%d %H:%M:%S"))
                return self
            os.close(fd)

    def busy_message(self) -> str:
        owner = read_owner(self.path)
        who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} since {owner.get('since', '?')}"
        run = f" (MLflow run {owner['run_id']})" if owner.get("run_id") else ""
        return (f"this configuration is being trained by {who}{run}; lock {self.path}. Wait for it, or stop it "
                "and rerun this command to resume; for a second, separate run of it set tracking.run_name")

    def describe(self, **info: Any) -> None:
        """Add to the owner record (e.g. the MLflow run id once it is known)."""
        self.owner.update(info)
        data = json.dumps(self.owner).encode()
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: nobody else can have locked this inode
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


@contextmanager
def run_lock(path: Path) -> Iterator[RunLock]:
    lock = RunLock(path).acquire()
    try:
        yield lock
    finally:
        lock.release()


@contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """Serialise the first use of a shared file (creating and migrating an SQLite store): blocking."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def run_state(run) -> str:
    """An MLflow run's status as a person needs it: a RUNNING run whose lock no live process holds was
    killed (SIGKILL, out of memory, a lost machine) and only MLflow does not know it yet."""
    status = run.info.status
    if status != "RUNNING":
        return status.lower()
    lock = run.data.tags.get("acai.lock")
    if lock is None:
        return "running"
    return "running" if is_held(lock) else "running with no live process (killed)"
