"""What a run shows on the terminal: a start header, one line per evaluation, a summary (the progress
line is the `Progress` callback).

TensorFlow's C++ core and absl write start-up chatter straight to file descriptor 2 (the oneDNN and
CUDA-driver notes, "failed call to cuInit" on CPU-only machines, Grappler's "remapper failed"), where no
Python setting reaches it. `quiet_native_logs` routes fd 2 through a small filter process that drops
those known lines and passes everything else through unchanged; being a separate process, it still
delivers the last lines of a run that crashes or is killed. `ACAI_RAW_STDERR=1` turns it off.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import subprocess
import sys

from acai.evaluation.metrics import console_columns

# Dropped from fd 2: TensorFlow's C++ info and warning lines (what TF_CPP_MIN_LOG_LEVEL=2 is meant to hide
# but no longer reaches), absl's pre-initialisation banner, the CPU-feature note's second line, and the
# two known harmless errors. Any other line, errors included, passes.
NOISE = (r"^[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "
         r"|^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
         r"|^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
         r"|^E\d{4} [^]]*\] failed call to cuInit: "
         r"|^E\d{4} [^]]*\] remapper failed: ")

FILTER = f"""
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole process group: keep forwarding
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # until the run itself has written its last line
noise = re.compile({NOISE!r})
for line in sys.stdin.buffer:
    if not noise.match(line.decode("utf-8", "replace")):
        os.write(2, line)
"""

# absl: "Sharding callback duration" at checkpoints; tensorflow: MirroredStrategy's "Collective all_reduce" notes
QUIET_LOGGERS = ("absl", "tensorflow", "mlflow.store.db.utils", "alembic.runtime.migration",
                 "mlflow.system_metrics")  # + its start/stop notes at every run


def quiet_loggers() -> None:
    """Python loggers' INFO notes off the console: "Sharding callback duration" at every checkpoint, store
    migrations. Also called in each job of a sweep (acai.tracking.sweep), whose worker processes (joblib)
    never run this module's start-up and whose Hydra job logging prints INFO to stdout."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_native_logs() -> None:
    """Filter fd 2 of this process and its children (call before TensorFlow is imported)."""
    quiet_loggers()
    if os.environ.get("ACAI_RAW_STDERR") or os.environ.get("ACAI_STDERR_FILTERED"):
        return
    os.environ["ACAI_STDERR_FILTERED"] = "1"  # child processes write into the same filter
    try:
        proc = subprocess.Popen([sys.executable, "-c", FILTER], stdin=subprocess.PIPE, start_new_session=False)
    except OSError:
        return  # no filter is better than no run
    sys.stderr.flush()
    original = os.dup(2)
    os.dup2(proc.stdin.fileno(), 2)
    proc.stdin.close()

    def restore() -> None:  # at exit: hand fd 2 back, let the filter drain, then return to the shell
        sys.stderr.flush()
        os.dup2(original, 2)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    atexit.register(restore)


def quiet_tensorflow(filter_stderr: bool) -> None:
    """The start of every script, before TensorFlow is imported: TF_CPP_MIN_LOG_LEVEL=2 unless set (no C++
    info lines) and, for a script run as a command (`filter_stderr`), its start-up chatter filtered off fd 2
    (`quiet_native_logs`), which TensorFlow writes at import."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if filter_stderr:
        quiet_native_logs()


def duration(seconds: float) -> str:
    """3725 -> '1:02:05', 95 -> '1:35'."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def metrics_line(metrics: dict[str, float], shown: tuple[tuple[str, str, str | None], ...] | None = None) -> str:
    """'MD=31.7e-3 smooth=nan recon=0.0838 plateau clf=9.4%': what was measured, NaN as 'nan', flags when set.

    `shown`: (metric, label, format) in line order; by default every metric declared with a `Shown`
    (`acai.evaluation.metrics.console_columns`). A format of None marks a flag (1.0/0.0), shown as its bare
    label when set: `plateau` while the reconstruction is no better than the mean image's."""
    parts = []
    for key, label, fmt in console_columns() if shown is None else shown:
        if key not in metrics:
            continue
        value = metrics[key]
        if fmt is None:
            parts += [label] if value else []
        else:
            parts.append(f"{label}={fmt.format(value) if math.isfinite(value) else 'nan'}")
    return " ".join(parts)


def header(run, experiment: str, uri: str, artifacts: str, *, samples: int, eval_every: int,
           evaluations: int) -> str:
    """What runs where, and how to look at it, printed once the MLflow run exists."""
    # ?workflowType=machine_learning: MLflow 3's UI would open the experiment in its GenAI (traces) view, which
    # shows no runs table; the experiment tag `mlflow.experimentKind` does not switch it, this parameter does
    page = f"#/experiments/{run.info.experiment_id}?workflowType=machine_learning"
    browse = (f"{uri.rstrip('/')}/{page}" if uri.startswith(("http://", "https://"))
              else f"mlflow ui --backend-store-uri {uri}\n             then http://127.0.0.1:5000/{page}")
    return (f"Run {run.info.run_name}  id {run.info.run_id}  experiment {experiment!r}\n"
            f"  store      {uri}\n"
            f"  artifacts  {artifacts.removeprefix('file://')}\n"
            f"  budget     {samples:,} samples, {evaluations} evaluations (one every {eval_every:,})\n"
            f"  browse     {browse}")


def summary(run_id: str, wall: float, train: float, images_per_second: float, metrics: dict[str, float], *,
            shown: tuple[tuple[str, str, str | None], ...] | None = None) -> str:
    """The end of a run: its id and where the time went, then what the final evaluation measured."""
    return (f"MLflow run {run_id} finished in {duration(wall)} (training {duration(train)}, "
            f"{images_per_second:,.0f} img/s)\nfinal  {metrics_line(metrics, shown)}")
