"""A `-m` sweep's start, in the launching process: its store and experiment, then its tag.

Every job's MLflow run carries the tag. The store and experiment are created here, once, before any job
starts: parallel jobs (joblib, submitit_local, SLURM) that each create a brand-new SQLite store at the
same moment fail (`duplicate column name: step`), and file locks are not to be trusted on a cluster's
shared file system.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from acai.config import DEFAULT_TRACKING_URI, PROJECT_ROOT, TrackingConfig


def sweep_tag(sweep_dir: str) -> str:
    """The sweep folder, relative to the repository root when inside it (`multirun/2026-11-25/20-16-30`):
    short enough to type into `src/report.py --sweep` and the UI's search box."""
    path = Path(sweep_dir).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def report_command(tag: str, tracking: TrackingConfig, cwd: Path | None = None) -> str:
    """`python src/report.py --sweep <tag>` that works as printed from `cwd` (the folder the sweep was started
    in): the store and experiment named when they are not the report's defaults, the script's path from there."""
    from acai.tracking.mlflow_run import resolve_uri

    script = PROJECT_ROOT / "src" / "report.py"
    cwd = (cwd or Path.cwd()).resolve()
    args = [str(script.relative_to(cwd)) if script.is_relative_to(cwd) else str(script), "--sweep", tag]
    if tracking.experiment != TrackingConfig.experiment:
        args += ["--experiment", tracking.experiment]
    if (uri := resolve_uri(tracking.uri)) != DEFAULT_TRACKING_URI:
        args += ["--tracking-uri", uri]
    return "python " + shlex.join(args)


class PrepareSweep(Callback):
    """Hydra callback (conf/config.yaml): opens the store and experiment, prints the sweep tag, once."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from acai.config import section
        from acai.errors import AcaiError
        from acai.tracking.mlflow_run import open_experiment

        try:
            tracking = section(config.tracking, TrackingConfig, "tracking")
            open_experiment(tracking)
        except AcaiError as e:  # before any job is launched: one line, as a run's own errors
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        tag = sweep_tag(config.hydra.sweep.dir)
        print(f"Sweep {tag}: every job's run carries the tag sweep={tag}\n"
              f"  compare: {report_command(tag, tracking)}   (UI search: tags.sweep = '{tag}')", flush=True)
