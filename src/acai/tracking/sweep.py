"""A `-m` sweep as one experiment: its store, its tag, its parent run and the summary the parent holds.

In the launching process, before any job starts (`SweepTracking.on_multirun_start`), the store and
experiment are created once (parallel jobs that each create a brand-new SQLite store at the same moment
fail, `duplicate column name: step`, and file locks are not to be trusted on a cluster's shared file
system), and the sweep gets a parent run: every job's run becomes its child (MLflow's
`mlflow.parentRunId`), whatever the launcher, because each job finds its parent in the store by the
sweep's tag rather than through anything the launcher must pass on. Rerunning the same sweep (the same
command: the same overrides, sweeper and experiment) reuses its parent, so resumed jobs stay its
children. When the sweep ends (`on_multirun_end`) the parent is given the report of its children: the
tables, figures and learning curves `src/report.py` writes (`acai.reporting`), mean ± std over seeds as
metrics, and for an Optuna sweep the best parameters and value. A sweep cut short gets them when it is rerun, or from
`python src/report.py --sweep <tag>`.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from hydra.experimental.callback import Callback
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from acai.config import DEFAULT_TRACKING_URI, PROJECT_ROOT, TrackingConfig, section

T = TypeVar("T")
PARENT_TAG = "acai.sweep_parent"  # on a sweep's parent run: the tag of the sweep it last ran as
KEY_TAG = "acai.sweep_key"  # on a sweep's parent run: what makes a rerun "the same sweep"
PARENT_ID = "mlflow.parentRunId"  # MLflow's own link, which its UI shows as an expandable parent
# Overrides that label or steer a sweep without changing what it trains: a rerun with them is the same sweep.
STEERING = ("tracking.sweep", "tracking.skip_finished", "trainer.verbose")


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


def sweep_key(config: DictConfig) -> str:
    """The same sweep command gives the same key: the experiment, the overrides as typed (less the sweep
    folder and Hydra's own settings) and the sweeper with its search space (not its number of trials)."""
    overrides = sorted(o for o in config.hydra.overrides.task if not o.lstrip("+~").startswith(STEERING))
    sweeper = OmegaConf.to_container(config.hydra.sweeper, resolve=False)
    sweeper.pop("n_trials", None)  # an Optuna sweep rerun with more trials is the same study, continued
    data = [config.tracking.experiment, overrides, sweeper]
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def find_parent(client: MlflowClient, experiment_id: str, tag: str) -> str | None:
    """The parent run of the sweep whose jobs carry `sweep=<tag>`, if that sweep has one."""
    runs = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{tag}'", max_results=1)
    return runs[0].info.run_id if runs else None


def open_parent(client: MlflowClient, experiment_id: str, config: DictConfig, tag: str) -> str:
    """The sweep's parent run: the one an earlier run of the same sweep made, or a new one."""
    key = sweep_key(config)
    found = client.search_runs([experiment_id], f"tags.`{KEY_TAG}` = '{key}'", max_results=1,
                               order_by=["attributes.start_time DESC"])
    if found:
        run_id = found[0].info.run_id
        client.set_tag(run_id, PARENT_TAG, tag)
        client.update_run(run_id, status="RUNNING")
        return run_id
    overrides = " ".join(o for o in config.hydra.overrides.task if not o.lstrip("+~").startswith(STEERING))
    run = client.create_run(experiment_id, run_name=f"sweep {overrides}"[:250].strip(),
                            tags={PARENT_TAG: tag, KEY_TAG: key, "mlflow.note.content": f"`-m` sweep, last as {tag}"})
    return run.info.run_id


def summarize(client: MlflowClient, parent_id: str, tracking_uri: str, experiment: str,
              sweep_dir: str | None = None) -> bool:
    """Report on the parent's children and give it the result; False when no child has finished yet."""
    from acai.reporting.report import build_report
    from acai.reporting.runs import NoRuns

    with tempfile.TemporaryDirectory() as out:
        try:
            built = build_report(tracking_uri, experiment, f"tags.`{PARENT_ID}` = '{parent_id}'", out=out,
                                 log=False)
        except NoRuns:
            return False
        log_summary(client, parent_id, built, sweep_dir)
    return True


def log_summary(client: MlflowClient, parent_id: str, built: Any, sweep_dir: str | None = None) -> None:
    """The parent's summary: the report's files under `summary/`, mean/std/n of every table cell as metrics
    (`<measurement>/<regularizer>/<dataset>-<model>-z<latent>/mean`) and, after an Optuna sweep (its
    `optimization_results.yaml` in the sweep folder), the best parameters and value."""
    from acai.reporting.measurements import MEASUREMENTS

    for path in built.files:
        client.log_artifact(parent_id, str(path), "summary")
    metrics: dict[str, float] = {"summary/runs": float(len(built.per_run))}
    for m in MEASUREMENTS:
        for row in built.tables[m.key].itertuples():
            if row.n:
                name = f"{m.key}/{row.regularizer}/{row.dataset}-{row.model}-z{row.latent_dim}"
                metrics |= {f"{name}/mean": row.mean, f"{name}/std": row.std, f"{name}/n": float(row.n)}
    best = Path(sweep_dir) / "optimization_results.yaml" if sweep_dir else None
    if best is not None and best.is_file():
        result = yaml.safe_load(best.read_text()) or {}
        if "best_value" in result:
            metrics["best/value"] = float(result["best_value"])
        for name, value in (result.get("best_params") or {}).items():
            client.log_param(parent_id, f"best.{name}", value)
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for start in range(0, len(items), 500):
        client.log_batch(parent_id, metrics=items[start:start + 500])


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
