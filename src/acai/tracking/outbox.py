"""A run's metric and image writes that outlive a tracking server going down.

Against a remote store (`tracking.uri=http://...`) a write the server does not take is kept on disk, in
the run's checkpoint folder, and sent with the next write once the server answers again (tried at most
every `retry_every` seconds, each try failing fast), so training and checkpoints go on through an outage
and nothing is lost: at the end of the run the outbox is emptied, trying every few seconds for up to
`PATIENCE` seconds; if the server is still down then, the run stops with the outbox kept (and the run
left RUNNING), and rerunning the command resumes the run and sends it first. A local SQLite store writes
directly: its failures (a full disk) are real errors.

What a failed write means decides what happens to it:

* no answer (connection refused or reset, timeout) or a server error (5xx, 408, 429): the server may take it
  later, so it is kept and retried in order;
* a refusal (any other 4xx, or MLflow's client rejecting it): it will never be taken, so it is set aside in
  `outbox/refused/` with one line, and the writes after it go on;
* a kept write that cannot be read back (cut short, empty, not JSON, its data file missing or unreadable) is
  set aside in `outbox/unreadable/` with one line, and the writes after it go on.

Kept writes are written atomically (temporary file, fsync, rename; the data file before its record), so a
full disk or a kill leaves no half-written record. A write that cannot be kept stops the run at once with
one line naming the outbox (`Unkept`), instead of losing it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

import mlflow
import numpy as np
import requests
from mlflow.exceptions import MlflowException

from acai.errors import TrackingError, first_line

FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
PATIENCE = 300.0  # seconds the end of a run waits for the server to take what was kept
UNREADABLE, REFUSED = "unreadable", "refused"  # subfolders of the outbox for writes that are never sent again
TRANSIENT_4XX = (408, 429)  # a timeout or rate limit: worth another try, like a 5xx


@contextmanager
def fail_fast() -> Iterator[None]:
    """One try, no back-off: MLflow's client would otherwise retry a refused connection for minutes."""
    saved = {k: os.environ.get(k) for k in FAST}
    os.environ.update(FAST)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Undelivered(TrackingError):
    """The run ended with writes the server would not take: they are kept, the run stays resumable."""


class Unkept(Undelivered):
    """A write the server did not take cannot be kept either (no space, no permission): the run stops now,
    resumable, rather than lose it. A subclass of Undelivered so the run reports it the same way."""


class Unreadable(Exception):
    """A kept write cannot be read back: it is set aside, never retried (internal, never reaches the user)."""


def reason(error: BaseException) -> str:
    """Why a write failed, for a note: the error's first line (160 characters at most), else its type."""
    return first_line(error, 160, default=type(error).__name__)


def diagnose(error: BaseException) -> tuple[int | None, str]:
    """(HTTP status, what happened) for a failed write; the status is None when the server did not answer.

    Walks the exception chain because MLflow wraps the requests error it got (connection refused, a 5xx
    that exhausted its retries, an artifact upload's HTTPError) in an MlflowException without a status."""
    seen: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and e not in seen:
        seen.append(e)
        if isinstance(e, requests.HTTPError) and e.response is not None:
            status = e.response.status_code
            return status, f"it answers HTTP {status} ({reason(e)})"
        if isinstance(e, requests.exceptions.RetryError):  # MLflow's retry of a 5xx/429 ran out
            found = re.search(r"too many (\d{3}) error responses", str(e))
            status = int(found.group(1)) if found else 500
            return status, f"it answers HTTP {status}"
        if isinstance(e, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            found = re.search(r"\[Errno -?\d+\] ([^'\")]+)|(timed out)", str(e))  # requests nests it deep
            return None, f"it does not answer ({found.group(1) or found.group(2) if found else reason(e)})"
        e = e.__cause__ or e.__context__
    if isinstance(error, MlflowException):  # the server's JSON error, or MLflow's client rejecting the write
        status = error.get_http_status_code()
        return status, f"it answers HTTP {status} ({reason(error)})"
    return None, f"the write failed ({reason(error)})"


def refused(status: int | None) -> bool:
    """A 4xx other than a timeout or rate limit: the server will never take this write."""
    return status is not None and 400 <= status < 500 and status not in TRANSIENT_4XX


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (where the file system allows opening a directory)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`path` appears whole or not at all: a full disk or a kill leaves at most a `.tmp` file (never read)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


class Outbox:
    """Sends `log_metrics`, `log_image` and `log_figure` of the active run, keeping what fails in `folder`."""

    def __init__(self, folder: Path, remote: bool, retry_every: float = 30.0):
        self.folder, self.remote, self.retry_every = Path(folder), remote, retry_every
        self._last_try = 0.0
        self._warned = False
        self._failure = "it does not answer"  # why the last try failed, for the end-of-run message

    @property
    def pending(self) -> list[Path]:
        """Kept writes, oldest first (each a JSON description, with its image beside it)."""
        return sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []

    # ---- writes ----
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        # The time of the measurement, kept with the write: a replay of a write the server took after all (a
        # timeout, a kill before its record was removed) is then the same row, which the server stores once.
        stamp = int(time.time() * 1000)
        self._send(lambda: mlflow.log_metrics(metrics, step=step, timestamp=stamp),
                   {"metrics": metrics, "step": step, "timestamp": stamp})

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        stamp = int(time.time() * 1000)
        self._send(lambda: mlflow.log_image(image, key=key, step=step, timestamp=stamp, synchronous=True),
                   {"image": key, "step": step, "timestamp": stamp, "data": ".npy"},
                   lambda f: np.save(f, image, allow_pickle=False))

    def log_figure(self, fig, artifact_file: str) -> None:
        self._send(lambda: mlflow.log_figure(fig, artifact_file), {"figure": artifact_file, "data": ".png"},
                   lambda f: fig.savefig(f, format="png"))

    def _send(self, send: Callable[[], object], record: dict,
              save: Callable[[BinaryIO], object] | None = None) -> None:
        if not self.remote:
            send()
            return
        if not self.pending or self.flush():  # in order: never ahead of what waits in the outbox
            try:
                with fail_fast():
                    send()
                return
            except Exception as e:  # noqa: BLE001 - sorted by diagnose(): kept, or set aside if refused
                status, why = diagnose(e)
                if refused(status):
                    meta = self._keep(record, save, self.folder / REFUSED)
                    print(f"Warning: the MLflow server refused a write ({why}): kept in {meta}, not sent again",
                          flush=True)
                    return
                self._warn(why)
        self._keep(record, save, self.folder)

    def _keep(self, record: dict, save: Callable[[BinaryIO], object] | None, folder: Path) -> Path:
        """Write the data file, then its record, each atomically: a record never points to a missing file."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}"
            if save is not None:
                record["data"] = name + record["data"]
                write_atomically(folder / record["data"], save)
            meta = folder / f"{name}.json"
            write_atomically(meta, lambda f: f.write(json.dumps(record).encode()))
            return meta
        except OSError as e:
            raise self._unkept("keep a write the MLflow server did not take", e) from None

    def _unkept(self, what: str, error: OSError) -> Unkept:
        os.environ.update(FAST)  # ending the run (FAILED) gets one quick try: the server may well be down
        why = error.strerror or reason(error)
        if isinstance(error, FileExistsError) and error.filename and not Path(error.filename).is_dir():
            why = "a file is in the way of a folder"  # what mkdir's bare "File exists" means here
        where = f": {error.filename}" if error.filename and Path(error.filename) != self.folder else ""
        return Unkept(
            f"cannot {what} in the outbox {self.folder} ({why}{where}); training "
            "stopped with its last checkpoint kept (the MLflow run is marked FAILED, or left RUNNING if the server "
            "does not answer): free space or make the folder writable, then rerun the same command to resume")

    def _warn(self, why: str) -> None:
        self._last_try = time.monotonic()
        self._failure = why
        if not self._warned:
            print(f"Warning: the MLflow server does not take writes: {why}; training goes on, metrics and "
                  f"images are kept in {self.folder} and sent when it takes them again", flush=True)
            self._warned = True

    # ---- sending what was kept ----
    def flush(self, now: bool = False) -> bool:
        """Send the kept writes in order; True when none is left. One quick try, at most every
        `retry_every` seconds unless `now`. Unreadable and refused ones are set aside, never in the way."""
        if not self.pending:
            return True
        if not now and time.monotonic() - self._last_try < self.retry_every:
            return False
        sent = 0
        for meta in self.pending:
            try:
                send = self._load(meta)
            except Unreadable as e:
                self._set_aside(meta, UNREADABLE, f"it cannot be read back ({e})")
                continue
            try:
                with fail_fast():
                    send()
            except Exception as e:  # noqa: BLE001 - sorted by diagnose(): still down, or refused for good
                status, why = diagnose(e)
                if refused(status):
                    self._set_aside(meta, REFUSED, f"the MLflow server refused it ({why})")
                    continue
                self._warn(why)
                return False
            try:
                for path in self.folder.glob(meta.stem + ".*"):
                    path.unlink()
            except OSError as e:
                raise self._unkept("remove a write that was sent", e) from None
            sent += 1
        if sent:
            print(f"The MLflow server takes writes again: every readable kept write was sent ({sent}, from "
                  f"{self.folder})", flush=True)
        self._warned = False
        self._tidy()
        return True

    def _load(self, meta: Path) -> Callable[[], object]:
        """Read a kept write and everything it needs, before anything is sent: the send that it returns
        fails only on the server's side. Unreadable names what is wrong."""
        try:
            text = meta.read_bytes()
        except OSError as e:
            raise Unreadable(e.strerror or reason(e)) from None
        if not text:
            raise Unreadable("empty file")
        try:
            record = json.loads(text)
        except ValueError as e:  # cut short, not JSON, not UTF-8
            raise Unreadable(f"not JSON: {reason(e)}") from None
        if not isinstance(record, dict):
            raise Unreadable("not a kept write")
        step, stamp = record.get("step"), record.get("timestamp")
        if not isinstance(stamp, int | None):
            raise Unreadable(f"bad timestamp {stamp!r}")
        if "metrics" in record:
            metrics = record["metrics"]
            if (not isinstance(step, int) or not isinstance(metrics, dict) or not metrics
                    or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values())):
                raise Unreadable("not a kept metrics write")
            return lambda: mlflow.log_metrics(metrics, step=step, timestamp=stamp)
        data = self._data(record)
        if isinstance(record.get("image"), str) and isinstance(step, int):
            try:
                image = np.load(data, allow_pickle=False)
            except (OSError, ValueError, EOFError) as e:
                raise Unreadable(f"its image {data.name}: {reason(e)}") from None
            return lambda: mlflow.log_image(image, key=record["image"], step=step, timestamp=stamp, synchronous=True)
        if isinstance(record.get("figure"), str) and record["figure"]:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(data) as png:
                    png.verify()  # the whole file: a PNG cut short fails here
            except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as e:
                raise Unreadable(f"its figure {data.name}: {reason(e)}") from None
            return lambda: self._log_figure_file(data, record["figure"])
        raise Unreadable("not a kept write")

    def _data(self, record: dict) -> Path:
        name = record.get("data")
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise Unreadable(f"bad data file name {name!r}")
        if not (self.folder / name).is_file():
            raise Unreadable(f"its data file {name} is missing")
        return self.folder / name

    @staticmethod
    def _log_figure_file(data: Path, artifact_file: str) -> None:
        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:  # the artifact keeps its own file name
            target = Path(tmp) / name
            shutil.copyfile(data, target)
            mlflow.log_artifact(str(target), folder or None)

    def _set_aside(self, meta: Path, subfolder: str, why: str) -> None:
        """Move a kept write (record and data) out of the way, saying where: it is never tried again."""
        aside = self.folder / subfolder
        files = [meta, *(p for p in self.folder.glob(meta.stem + ".*") if p != meta)]
        try:
            aside.mkdir(exist_ok=True)
            for path in files:
                os.replace(path, aside / path.name)
        except OSError as e:
            raise self._unkept("set aside a kept write", e) from None
        fsync_dir(self.folder)
        print(f"Warning: kept write {meta} is set aside, {why}: moved to {aside / meta.name}; the other kept "
              "writes go on", flush=True)

    def _tidy(self) -> None:
        """Everything sent: drop what is left at the top (a `.tmp` or a data file whose record was never
        written, both from a process killed while keeping), keep what was set aside for the user."""
        for path in self.folder.iterdir() if self.folder.is_dir() else []:
            if not path.is_dir():
                with suppress(OSError):
                    path.unlink()
        for sub in (UNREADABLE, REFUSED):
            with suppress(OSError):
                (self.folder / sub).rmdir()  # only if empty
        with suppress(OSError):
            self.folder.rmdir()  # only if nothing was set aside

    def deliver(self, patience: float = PATIENCE) -> None:
        """At the end of a run: everything kept must reach the server, or the run stops here, resumable."""
        deadline = time.monotonic() + patience
        if not self.flush(now=True):
            print(f"Waiting up to {patience:.0f} s for the MLflow server to take {len(self.pending)} kept write(s)",
                  flush=True)
        while self.pending and time.monotonic() < deadline and not self.flush(now=True):
            time.sleep(2.0)
        if self.pending:
            os.environ.update(FAST)  # the run is left RUNNING (resumable); ending it would only retry for minutes
            raise Undelivered(
                f"the MLflow server still does not take the kept writes: {self._failure}; {len(self.pending)} kept "
                f"write(s) wait in {self.folder} with the final checkpoint: rerun the same command once the server "
                "takes writes again to send them and finish")
