"""Sweeps through Hydra's submitit launchers: a real single-node SLURM (tests/slurm_cluster.py) and local
processes. Each sweep starts on a brand-new SQLite store: the launching process creates it and the
experiment before the jobs, which would otherwise race to create it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient
from slurm_cluster import slurm_available, slurm_cluster
from test_sweep import TINY, TRAIN, store

pytestmark = pytest.mark.slow  # real processes and daemons: kept in CI, skipped by `-m 'not slow'`

# what a CPU-only test node can give each job
SMALL_JOBS = ["hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=null",
              "hydra.launcher.timeout_min=10"]


def sweep(tmp_path, launcher: list[str], env: dict[str, str]) -> tuple[list, float]:
    """A 2-job sweep into a new store under tmp_path: (its runs, wall seconds)."""
    start = time.perf_counter()
    done = subprocess.run([*TRAIN, "-m", "regularizer=none,acai", *TINY, *store(tmp_path),
                           f"hydra.sweep.dir={tmp_path}/multirun", *launcher], cwd=tmp_path,
                          env=dict(env, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in (tmp_path / "multirun").rglob("*.err"))
    assert done.returncode == 0, done.stderr[-3000:] + logs
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    return jobs_of(client), seconds


def jobs_of(client: MlflowClient) -> list:
    """The jobs' runs, each a child of the sweep's one parent run (which holds the summary, not a result)."""
    every = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    parents = [r for r in every if "acai.sweep_parent" in r.data.tags]
    jobs = [r for r in every if r not in parents]
    assert len(parents) == 1 and {r.data.tags.get("mlflow.parentRunId") for r in jobs} == {parents[0].info.run_id}
    return jobs


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    # SLURM installed but not the `cluster` extra: the sweep would only fail on the missing launcher
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the cluster extra is not installed")
    if reason := slurm_available():
        pytest.skip(f"no SLURM here: {reason}")
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


def test_a_slurm_sweep_lands_every_job_in_one_new_store(slurm, tmp_path):
    runs, seconds = sweep(tmp_path, ["hydra/launcher=slurm", *SMALL_JOBS], slurm)
    assert sorted(r.data.tags["regularizer"] for r in runs) == ["acai", "none"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    jobs = {r.data.tags.get("slurm.job_id") for r in runs}
    assert None not in jobs and len(jobs) == 2, "each run is its own SLURM job"
    print(f"SLURM 2-job smoke sweep: {seconds:.1f} s wall")


def test_a_local_submitit_sweep_runs_its_jobs_at_once_into_one_new_store(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the cluster extra is not installed")
    runs, _ = sweep(tmp_path, ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"], dict(os.environ))
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 2
    # both job processes were up before either run ended (Hydra writes a job's .hydra/ as the job starts)
    started = [(tmp_path / "multirun" / job / ".hydra" / "config.yaml").stat().st_mtime for job in ("0", "1")]
    assert max(started) < min(r.info.end_time for r in runs) / 1000, "the jobs did not run at the same time"


def test_a_submitit_launcher_without_its_extra_is_one_line_naming_it(tmp_path):
    hide = ("import runpy, sys; sys.modules['hydra_plugins.hydra_submitit_launcher'] = None; "
            f"sys.argv = ['train.py', '-m', 'hydra/launcher=slurm']; runpy.run_path({str(TRAIN[1])!r}, "
            "run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", hide], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["error: hydra/launcher=slurm needs hydra-submitit-launcher, which is "
                                               "not installed: pip install -e '.[cluster]'"]


def test_a_slurm_sweep_without_a_controller_is_one_line_in_seconds(tmp_path):
    """sbatch used to retry for 20 s per job and end in submitit's traceback; a hung controller would hang."""
    import shutil

    from slurm_cluster import _slurm_conf

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the cluster extra is not installed")
    if shutil.which("scontrol") is None:
        pytest.skip("SLURM's client tools are not installed")
    conf = tmp_path / "slurm.conf"  # a cluster whose controller is not running
    conf.write_text(_slurm_conf(tmp_path, "node0", tmp_path / "munge.socket"))
    start = time.perf_counter()
    done = subprocess.run([*TRAIN, "-m", "hydra/launcher=slurm", *SMALL_JOBS, *TINY, *store(tmp_path),
                           f"hydra.sweep.dir={tmp_path}/multirun"], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, SLURM_CONF=str(conf)), timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1:] == [ln for ln in done.stderr.splitlines() if "error" in ln.lower()]
    assert done.stderr.strip().splitlines()[-1].startswith("error: hydra/launcher='slurm' is not valid: no SLURM "
                                                            "controller answers (scontrol ping: ")
    assert "Traceback" not in done.stderr and time.perf_counter() - start < 120
    assert not (tmp_path / "mlflow.db").exists()  # nothing was prepared, nothing was submitted


def test_a_parallel_sweep_keeps_tensorflows_checkpoint_notes_off_the_console(tmp_path):
    """joblib runs the jobs in worker processes where train.py's start-up never ran: Hydra's job logging
    printed absl's "Sharding callback duration" at every checkpoint there."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the joblib launcher is not installed")
    done = subprocess.run([*TRAIN, "-m", "hydra/launcher=parallel", "regularizer=none,acai", *TINY, *store(tmp_path),
                           f"hydra.sweep.dir={tmp_path}/multirun"], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = jobs_of(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"))
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 2  # they did checkpoint
    assert "Sharding callback" not in done.stdout + done.stderr
