"""Reliability: a SIGKILLed training run resumes into the same MLflow run; NaN losses fail cleanly."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from mlflow.tracking import MlflowClient

from acai.errors import TrainingError
from acai.training.run import train
from acai.training.spec import config_key

pytestmark = pytest.mark.slow  # real processes: kept in CI, skipped by `-m 'not slow'`

TRAIN = [sys.executable, str(ROOT / "src" / "train.py")]


def overrides(tmp_path, model: tuple[str, ...] = ("model=mlp", "model.hidden=[64]")) -> list[str]:
    return [f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_location={tmp_path}/mlruns",
            f"trainer.checkpoint_dir={tmp_path}/ckpt", *model, "regularizer=acai",
            "trainer.batch_size=16", "trainer.total_samples=4096", "trainer.eval_every=1024",
            "trainer.checkpoint_every=1024", "trainer.log_every=8", "trainer.verbose=0", "trainer.jit_compile=false",
            "evaluation.interpolation_pairs=8", "evaluation.cluster=false", "evaluation.reference_lines=1000",
            "dataset.test_limit=300", "tracking.log_model=false"]


def test_killed_run_resumes_into_the_same_mlflow_run(tmp_path):
    """Under MirroredStrategy over 2 logical CPU devices, so its mirrored variables are checkpointed and
    restored too (a single-device run's kill -9 and resume: tests/test_reliability.py)."""
    args = TRAIN + overrides(tmp_path) + ["trainer.strategy=mirrored"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", ACAI_CPU_DEVICES="2")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "ckpt").glob("*/checkpoint"))
        if found:
            marker = found[0]
            break
        time.sleep(0.05)
    assert marker is not None, "no checkpoint was written"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    [killed] = client.search_runs([client.get_experiment_by_name("acai").experiment_id])
    assert killed.info.status == "RUNNING"

    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Resuming MLflow run" in done.stdout
    runs = client.search_runs([killed.info.experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == killed.info.run_id
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["samples"] == 4096
    assert runs[0].data.tags["acai.replicas"] == "2"
    steps = [m.step for m in client.get_metric_history(killed.info.run_id, "eval/reconstruction_error")]
    assert steps == [1024, 2048, 3072, 4096]
    train_steps = [m.step for m in client.get_metric_history(killed.info.run_id, "train/loss")]
    assert len(train_steps) == len(set(train_steps)) == 4096 // (16 * 8)


def test_nan_loss_stops_with_the_loss_and_step_named_and_a_failed_run(compose_cfg, tmp_path):
    cfg = compose_cfg("model=mlp", "regularizer=none", "experiment=smoke", "trainer.lr=1e12",
                      "trainer.total_samples=4096", "trainer.eval_every=2048", f"trainer.checkpoint_dir={tmp_path}/c")
    with pytest.raises(TrainingError, match=r"loss '\w+' became (nan|inf) at step \d+"):
        train(cfg)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    [run] = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert run.info.status == "FAILED"
    assert "train/loss" in run.data.metrics or run.data.params


def test_cli_failure_is_one_line_without_traceback(tmp_path):
    out = subprocess.run(TRAIN + overrides(tmp_path, ("model=conv", "model.latent_dim=50")), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert lines == [lines[0]] and "model.latent_dim=50" in lines[0] and "multiple of 4" in lines[0]
    assert "Traceback" not in out.stderr


def test_rerun_sweep_finds_its_runs_and_can_skip_finished_ones(compose_cfg, tmp_path):
    base = ("experiment=smoke", "model=mlp", "regularizer=none", f"trainer.checkpoint_dir={tmp_path}/c")
    cfg_a = compose_cfg(*base, "tracking.sweep=multirun/first")
    cfg_b = compose_cfg(*base, "tracking.sweep=multirun/rerun", "tracking.skip_finished=true")
    # A rerun sweep has a new folder; its jobs must still match the runs of the first sweep.
    assert config_key(cfg_a) == config_key(cfg_b)
    assert config_key(cfg_a) != config_key(compose_cfg(*base, "seed=1"))
    first = train(cfg_a)
    assert train(cfg_b) == first  # already finished: skipped, nothing new logged
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("smoke").experiment_id
    assert [r.info.run_id for r in client.search_runs([experiment])] == [first]
    repeat = train(compose_cfg(*base, "tracking.sweep=multirun/rerun"))  # default: a rerun repeats it
    assert repeat != first and len(client.search_runs([experiment])) == 2
