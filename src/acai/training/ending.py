"""How a run ends when it does not finish: stopped by a signal (KILLED) or by a failed write (FAILED).

Either way the run is marked in the store, its last checkpoint is kept, and the user reads one line that
says where it stopped and how to go on (the same command resumes it).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import tensorflow as tf
from mlflow.exceptions import MlflowException

from acai.errors import Interrupted, TrackingError, first_line
from acai.training.callbacks import StopOnSignal


class Stopped(Interrupted):
    """A stop by signal, recorded in the store and worded for the phase it happened in."""


def typed_line(error: BaseException) -> str:
    """`Type: first line of the message`, for a one-line report of an error from a library."""
    return f"{type(error).__name__}: {first_line(error, 300)}".rstrip(": ")


def disk_full(error: BaseException) -> bool:
    """ENOSPC from Python, or from TensorFlow's own file writes (which raise OpErrors, not OSErrors)."""
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)


def write_fault(error: BaseException) -> bool:
    """What the disk or the store raise when a write fails (full, read-only, gone): the run then ends
    FAILED with one line. TensorFlow's other OpErrors are bugs and keep their traceback."""
    return (isinstance(error, (OSError, MlflowException, sqlite3.Error, tf.errors.PermissionDeniedError))
            or disk_full(error))


def forget_active_run() -> None:
    """A run MLflow could not mark ended (its store down or read-only) stays this process's active run, and
    the next `start_run` in the process (a sweep's next job, a test) would fail on it: let it go."""
    from mlflow.tracking import fluent

    fluent._active_run_stack.get().clear()


def end_run(status: str) -> str | None:
    """Mark the active run `status`; None when done, else why it could not be (a read-only store)."""
    try:
        mlflow.end_run(status)
        return None
    except Exception as e:  # noqa: BLE001 - reported in the run's one line, never instead of it
        forget_active_run()
        return typed_line(e)


@dataclass
class Phase:
    """Where a run is (`start-up`, `training`, `final logging`) and what its final logging has done: what
    the one line of a stop or a failure reports."""

    run_id: str
    evaluations: int
    checkpoint_dir: Path
    artifact_uri: str
    name: str = "start-up"
    final_done: set[str] = field(default_factory=set)

    def stop_message(self, e: Interrupted, done: int, at_once: bool, unmarked: str | None) -> str:
        """The one line of a stop by signal: where it stopped, what the run was marked, how to go on."""
        how = f"stopped{' at once' if at_once else ''} by {e.signal_name}"
        steps = ", ".join(sorted(self.final_done)) or "none"
        where = {"start-up": "during start-up", "training": f"at step {e.step}",
                 "final logging": f"during the final logging (done: {steps})"}[self.name]
        marked = (f"MLflow run {self.run_id} marked KILLED" if unmarked is None
                  else f"MLflow run {self.run_id} could not be marked KILLED ({unmarked})")
        rest = ("training is complete and its last checkpoint is kept: rerun the same command to log the rest"
                if self.name == "final logging" else f"its last checkpoint ({done} of {self.evaluations} "
                "evaluations) is kept: rerun the same command to resume")
        return f"{how} {where}: {marked}; {rest}"

    def fault_message(self, e: BaseException, unmarked: str | None) -> str:
        """The one line of a write that failed (a full disk, a read-only store or artifact folder)."""
        what = (f"no space left on the device (checkpoints in {self.checkpoint_dir}, artifacts in "
                f"{self.artifact_uri})" if disk_full(e) else f"a file or MLflow store operation failed "
                f"({typed_line(e)})")
        marked = (f"MLflow run {self.run_id} marked FAILED" if unmarked is None
                  else f"MLflow run {self.run_id} could not be marked FAILED either ({unmarked})")
        fix = "free space" if disk_full(e) else "fix it"
        return (f"{what} during the {self.name}: {marked}; the last complete checkpoint and everything logged so "
                f"far are kept: {fix} and rerun to resume (the same command)")


@contextmanager
def marked_when_cut_short(phase: Phase, stop: StopOnSignal, evaluations_done) -> Iterator[None]:
    """Inside the active run: a signal marks it KILLED and a failed write FAILED, each with its one line
    (`Stopped`, `TrackingError`); any other error keeps its traceback. `evaluations_done()` reads the
    checkpointed count at the moment of the stop."""
    try:
        yield
    except Interrupted as e:
        with stop.shield():
            unmarked = end_run("KILLED")
        raise Stopped(phase.stop_message(e, evaluations_done(), stop.count > 1, unmarked), e.signum,
                      e.step) from None
    except Exception as e:
        if not write_fault(e):
            raise
        with stop.shield():
            unmarked = end_run("FAILED")
        raise TrackingError(phase.fault_message(e, unmarked)) from None
