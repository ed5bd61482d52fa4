"""A `-m` sweep's start, in the launching process: its store and experiment, then its tag.

Every job's MLflow run carries the tag. The store and experiment are created here, once, before any job
starts: parallel jobs (joblib, submitit_local, SLURM) that each create a brand-new SQLite store at the
same moment fail (`duplicate column name: step`), and file locks are not to be trusted on a cluster's
shared file system.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from acai.config import PROJECT_ROOT


def sweep_tag(sweep_dir: str) -> str:
    """The sweep folder, relative to the repository root when inside it (`multirun/2026-11-25/20-16-30`):
    short enough to type into `src/report.py --sweep` and the UI's search box."""
    path = Path(sweep_dir).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


PING_TIMEOUT_S = 15


def check_slurm(launcher: str) -> None:
    """A SLURM launcher needs a controller that answers: without one, sbatch retries for tens of seconds
    per job and submitit ends in a traceback. `scontrol ping` answers in a moment either way."""
    import subprocess

    from acai.errors import ConfigError

    if "slurm" not in launcher.lower():
        return
    fix = "start slurmctld or point SLURM_CONF at the cluster's slurm.conf; on one machine use hydra/launcher=parallel"
    try:
        done = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=PING_TIMEOUT_S)
    except FileNotFoundError:
        raise ConfigError("hydra/launcher", "slurm", f"needs SLURM's client tools (no scontrol here); {fix}") from None
    except subprocess.TimeoutExpired:
        raise ConfigError("hydra/launcher", "slurm", f"no SLURM controller answered scontrol ping within "
                          f"{PING_TIMEOUT_S} s; {fix}") from None
    said = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip() and "*" not in ln]
    if done.returncode or any(" is DOWN" in ln for ln in said):
        raise ConfigError("hydra/launcher", "slurm", f"no SLURM controller answers (scontrol ping: "
                          f"{said[0] if said else f'exit status {done.returncode}'}); {fix}")


class PrepareSweep(Callback):
    """Hydra callback (conf/config.yaml): opens the store and experiment, prints the sweep tag, once; and
    quiets TensorFlow's INFO notes in every job, in whichever process the launcher runs it."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from acai.console import quiet_loggers

        quiet_loggers()  # joblib's workers: Hydra's job logging would print absl's checkpoint notes to stdout

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from acai.config import TrackingConfig, section
        from acai.errors import AcaiError
        from acai.tracking.mlflow_run import open_experiment

        try:
            check_slurm(str(config.hydra.launcher.get("_target_", "")))
            open_experiment(section(config.tracking, TrackingConfig, "tracking"))
        except AcaiError as e:  # before any job is launched: one line, as a run's own errors
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        tag = sweep_tag(config.hydra.sweep.dir)
        print(f"Sweep {tag}: every job's run carries the tag sweep={tag}\n"
              f"  compare: python src/report.py --sweep {tag}   (UI search: tags.sweep = '{tag}')", flush=True)
