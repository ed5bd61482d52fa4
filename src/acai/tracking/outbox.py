"""A run's metric and image writes that outlive a tracking server going down.

Against a remote store (`tracking.uri=http://...`) a write the server does not take is kept on disk, in
the run's checkpoint folder, and sent with the next write once the server answers again (tried at most
every `retry_every` seconds, each try failing fast), so training and checkpoints go on through an outage
and nothing is lost: at the end of the run the outbox is emptied, trying every few seconds for up to
`PATIENCE` seconds; if the server is still down then, the run stops with the outbox kept (and the run
left RUNNING), and rerunning the command resumes the run and sends it first. A local SQLite store writes
directly: its failures (a full disk) are real errors.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np

from acai.errors import TrackingError

FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
PATIENCE = 300.0  # seconds the end of a run waits for the server to take what was kept


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


class Outbox:
    """Sends `log_metrics`, `log_image` and `log_figure` of the active run, keeping what fails in `folder`."""

    def __init__(self, folder: Path, remote: bool, retry_every: float = 30.0):
        self.folder, self.remote, self.retry_every = Path(folder), remote, retry_every
        self._last_try = 0.0
        self._warned = False

    @property
    def pending(self) -> list[Path]:
        """Kept writes, oldest first (each a JSON description, with its image beside it)."""
        return sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []

    # ---- writes ----
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._send(lambda: mlflow.log_metrics(metrics, step=step), {"metrics": metrics, "step": step})

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        self._send(lambda: mlflow.log_image(image, key=key, step=step, synchronous=True),
                   {"image": key, "step": step, "data": ".npy"}, lambda path: np.save(path, image))

    def log_figure(self, fig, artifact_file: str) -> None:
        self._send(lambda: mlflow.log_figure(fig, artifact_file), {"figure": artifact_file, "data": ".png"},
                   lambda path: fig.savefig(path, format="png"))

    def _send(self, send: Callable[[], object], record: dict, save: Callable[[Path], object] | None = None) -> None:
        if not self.remote:
            send()
            return
        if not self.pending or self.flush():  # in order: never ahead of what waits in the outbox
            try:
                with fail_fast():
                    send()
                return
            except Exception as e:  # noqa: BLE001 - connection refused, timeout, 5xx: keep it for later
                self._warn(e)
        self._keep(record, save)

    def _keep(self, record: dict, save: Callable[[Path], object] | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}"
        if save is not None:
            record["data"] = name + record["data"]
            save(self.folder / record["data"])
        (self.folder / f"{name}.json").write_text(json.dumps(record))

    def _warn(self, error: Exception) -> None:
        self._last_try = time.monotonic()
        if not self._warned:
            first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
            print(f"Warning: the MLflow server does not take writes ({first}); training goes on, metrics and "
                  f"images are kept in {self.folder} and sent when it answers again", flush=True)
            self._warned = True

    # ---- sending what was kept ----
    def flush(self, now: bool = False) -> bool:
        """Send the kept writes in order; True when none is left. One quick try, at most every
        `retry_every` seconds unless `now`."""
        if not self.pending:
            return True
        if not now and time.monotonic() - self._last_try < self.retry_every:
            return False
        for meta in self.pending:
            try:
                with fail_fast():
                    self._replay(meta)
            except Exception as e:  # noqa: BLE001 - still down
                self._warn(e)
                return False
            for path in self.folder.glob(meta.stem + ".*"):
                path.unlink()
        print(f"The MLflow server answers again: every kept write was sent ({self.folder})", flush=True)
        self._warned = False
        shutil.rmtree(self.folder, ignore_errors=True)
        return True

    def _replay(self, meta: Path) -> None:
        record = json.loads(meta.read_text())
        data = self.folder / record.get("data", "")
        if "metrics" in record:
            mlflow.log_metrics(record["metrics"], step=record["step"])
        elif "image" in record:
            mlflow.log_image(np.load(data), key=record["image"], step=record["step"], synchronous=True)
        else:
            folder, _, name = record["figure"].rpartition("/")
            with tempfile.TemporaryDirectory() as tmp:  # the artifact keeps its own file name
                target = Path(tmp) / name
                shutil.copyfile(data, target)
                mlflow.log_artifact(str(target), folder or None)

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
                f"the MLflow server still does not answer; {len(self.pending)} kept write(s) wait in {self.folder} "
                "with the final checkpoint: rerun the same command once the server is up to send them and finish")
