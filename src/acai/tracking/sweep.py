"""A `-m` sweep as one experiment: its tag, its parent run, and how its jobs find it.

The Hydra callback that creates the store and the parent run and, at the end, gives the parent its summary
is `acai.sweep_callback.SweepTracking`; the summary itself is `acai.reporting.sweep_summary`.

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
from pathlib import Path

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from acai.config import DEFAULT_TRACKING_URI, PROJECT_ROOT, TrackingConfig

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
