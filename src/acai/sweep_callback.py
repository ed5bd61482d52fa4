"""The Hydra callback of every `-m` sweep (conf/config.yaml): before any job, the store, the experiment and
the sweep's parent run, once; when the sweep ends, the parent's summary (`acai.reporting.sweep_summary`).

Creating the store once in the launching process matters: parallel jobs that each create a brand-new
SQLite store at the same moment fail (`duplicate column name: step`), and file locks are not to be trusted
on a cluster's shared file system.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from acai.config import TrackingConfig, section
from acai.tracking.sweep import PARENT_ID, check_slurm, find_parent, open_parent, report_command, sweep_tag

T = TypeVar("T")


def summarize(client: MlflowClient, parent_id: str, tracking_uri: str, experiment: str,
              sweep_dir: str | None = None) -> bool:
    """Report on the parent's children and give it the result; False when no child has finished yet."""
    # here, not at the top: Hydra builds this callback for every run, and only a sweep's end reports
    from acai.reporting.report import build_report
    from acai.reporting.runs import NoRuns
    from acai.reporting.sweep_summary import log_summary

    with tempfile.TemporaryDirectory() as out:
        try:
            built = build_report(tracking_uri, experiment, f"tags.`{PARENT_ID}` = '{parent_id}'", out=out,
                                 log=False)
        except NoRuns:
            return False
        log_summary(client, parent_id, built, sweep_dir)
    return True


def or_exit(step: Callable[[], T]) -> T:
    """`step()`, or one line and exit status 2 on a user error: before any job is launched, as a run's own."""
    from acai.errors import AcaiError

    try:
        return step()
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def open_sweep_experiment(config: DictConfig) -> tuple[MlflowClient, str]:
    """The sweep's store and experiment (created if new)."""
    from acai.tracking.mlflow_run import open_experiment

    experiment_id = or_exit(lambda: open_experiment(section(config.tracking, TrackingConfig, "tracking")))
    return MlflowClient(), experiment_id


class SweepTracking(Callback):
    """Hydra callback (conf/config.yaml): the store, the experiment and the parent run, once, before any job;
    the parent's summary when the sweep ends; and TensorFlow's INFO notes quiet in every job, in whichever
    process the launcher runs it."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from acai.console import quiet_loggers

        quiet_loggers()  # joblib's workers: Hydra's job logging would print absl's checkpoint notes to stdout

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        or_exit(lambda: check_slurm(str(config.hydra.launcher.get("_target_", ""))))
        tag = sweep_tag(config.hydra.sweep.dir)
        client, experiment_id = open_sweep_experiment(config)
        parent = open_parent(client, experiment_id, config, tag)
        tracking = section(config.tracking, TrackingConfig, "tracking")
        print(f"Sweep {tag}: every job's run carries the tag sweep={tag} and is a child of its parent run {parent}\n"
              f"  compare: {report_command(tag, tracking)}   (UI search: tags.sweep = '{tag}')", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        tag = sweep_tag(config.hydra.sweep.dir)
        client, experiment_id = open_sweep_experiment(config)
        parent = find_parent(client, experiment_id, tag)
        if parent is None:
            return
        if summarize(client, parent, client.tracking_uri, config.tracking.experiment, config.hydra.sweep.dir):
            print(f"Sweep {tag}: its summary (tables, figures, learning curves) is in its parent run {parent}",
                  flush=True)
        client.set_terminated(parent, "FINISHED")
