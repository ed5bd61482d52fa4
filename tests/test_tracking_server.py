"""A shared tracking server: real PostgreSQL and a real `mlflow server` (proxied artifacts) on 127.0.0.1.

Runs, sweeps, resumes and the tools work through it; artifacts land on the server's side, none on the
client; a server that goes down mid-run loses nothing. Both servers are stopped at the end.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import ROOT
from mlflow.tracking import MlflowClient
from test_resume import overrides
from tracking_server import MlflowServer, postgres, postgres_available

from acai.tracking.outbox import FAST, Outbox, Undelivered

pytestmark = pytest.mark.slow  # real servers: kept in CI, skipped by `-m 'not slow'`

SRC = ROOT / "src"
SMOKE = ["experiment=smoke", "model=mlp", "model.hidden=[64]", "regularizer=acai"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if reason := postgres_available():
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("server")
    with postgres(base) as database, MlflowServer(database, base / "artifacts") as srv:
        yield srv


def on_server(srv: MlflowServer, client_dir: Path) -> list[str]:
    """Overrides pointing a run at the server; the client folder gets the checkpoints and nothing else."""
    return [f"tracking.uri={srv.uri}", f"tracking.artifact_location={client_dir}/mlruns",
            f"trainer.checkpoint_dir={client_dir}/ckpt"]


def run_cli(script: str, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(SRC / script), *args], cwd=cwd, capture_output=True, text=True,
                         timeout=timeout, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def served_run(server, tmp_path_factory):
    """One smoke run logged to the server from a client folder: (client folder, run)."""
    client_dir = tmp_path_factory.mktemp("client")
    run_cli("train.py", *SMOKE, *on_server(server, client_dir), cwd=client_dir)
    client = MlflowClient(server.uri)
    [run] = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    return client_dir, run


def test_a_run_on_the_server_keeps_its_artifacts_on_the_server_side(server, served_run):
    client_dir, run = served_run
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    stored = [f for f in files_under(server.artifacts) if run.info.run_id in f]
    for expected in ("latent_space.png", "config.yaml", "images/", "critic/", "latent_classifier/"):
        assert any(expected in f for f in stored), expected
    # MLflow 3 stores logged models beside the runs: the autoencoder and the pyfunc interpolator
    models = [f for f in files_under(server.artifacts) if "/models/m-" in f]
    assert any(f.endswith("MLmodel") for f in models) and any(f.endswith(".keras") for f in models)
    assert len({f.split("/models/")[1].split("/")[0] for f in models}) == 2
    # the client folder holds the training state only: no artifact store, no image, no model
    assert not (client_dir / "mlruns").exists()
    assert all(f.startswith("ckpt/") for f in files_under(client_dir)), files_under(client_dir)
    assert not any(f.endswith((".png", ".keras")) for f in files_under(client_dir))


def test_the_logged_model_loads_through_the_server(server, served_run):
    _, run = served_run
    mlflow.set_tracking_uri(server.uri)
    model = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    x = np.zeros((2, 32, 32, 1), np.float32)
    assert model.predict(x, verbose=0).shape == (2, 32, 32, 1)


def test_report_evaluate_and_interpolate_read_from_the_server(server, served_run, tmp_path):
    _, run = served_run
    uri = ["--tracking-uri", server.uri]
    run_cli("report.py", *uri, "--experiment", "smoke", "--out", str(tmp_path / "reports"), cwd=tmp_path)
    assert (tmp_path / "reports" / "report.md").is_file()
    evaluated = run_cli("evaluate.py", run.info.run_id, *uri, "evaluation.cluster=false", cwd=tmp_path)
    assert "mean_distance" in evaluated.stdout
    run_cli("interpolate.py", run.info.run_id, *uri, "--out", str(tmp_path / "grid.png"), cwd=tmp_path)
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_a_sweep_logs_every_job_to_the_server(server, tmp_path):
    run_cli("train.py", "-m", *SMOKE, "regularizer=none,acai", "tracking.experiment=server-sweep",
            *on_server(server, tmp_path), cwd=tmp_path)
    client = MlflowClient(server.uri)
    every = client.search_runs([client.get_experiment_by_name("server-sweep").experiment_id])
    parents = [r for r in every if "acai.sweep_parent" in r.data.tags]
    runs = [r for r in every if r not in parents]
    assert sorted(r.data.tags["regularizer"] for r in runs) == ["acai", "none"]
    assert {r.info.status for r in runs} == {"FINISHED"} and len({r.data.tags["sweep"] for r in runs}) == 1
    assert not (tmp_path / "mlruns").exists()
    # the sweep is one parent run on the server, its jobs its children, its summary on the server's side
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parents[0].info.run_id}
    assert parents[0].data.metrics["summary/runs"] == 2
    assert parents[0].data.metrics["reconstruction_error/acai/lines-mlp-z64/n"] == 1
    summary = {a.path for a in client.list_artifacts(parents[0].info.run_id, "summary")}
    assert {"summary/report.md", "summary/learning_curves.png"} <= summary, summary


def start_training(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SRC / "train.py"), *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def served_args(server: MlflowServer, tmp_path: Path, experiment: str, samples: int) -> list[str]:
    args = [a for a in overrides(tmp_path) if not a.startswith(("tracking.", "trainer.checkpoint_dir"))]
    return args + on_server(server, tmp_path) + [f"tracking.experiment={experiment}",
                                                 f"trainer.total_samples={samples}"]


def test_a_killed_run_on_the_server_resumes(server, tmp_path):
    args = served_args(server, tmp_path, "server-resume", 4096)
    proc = start_training(args, tmp_path)
    wait_for(lambda: any((tmp_path / "ckpt").glob("*/checkpoint")), proc, "the first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = run_cli("train.py", *args, cwd=tmp_path)
    assert "Resuming MLflow run" in done.stdout
    client = MlflowClient(server.uri)
    [run] = client.search_runs([client.get_experiment_by_name("server-resume").experiment_id])
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval/reconstruction_error")]
    assert steps == [1024, 2048, 3072, 4096]


def test_a_server_outage_mid_run_loses_no_metric(server, tmp_path):
    """Down after the first checkpoint, up again once a write was kept: training goes on, and every
    metric and image reaches the server (kept in the run's outbox meanwhile)."""
    proc = start_training(served_args(server, tmp_path, "server-outage", 8192), tmp_path)
    try:
        wait_for(lambda: any((tmp_path / "ckpt").glob("*/checkpoint")), proc, "the first checkpoint")
        server.stop()
        wait_for(lambda: any((tmp_path / "ckpt").glob("*/outbox/*.json")), proc, "a kept write")
        kept_while_down = len(list((tmp_path / "ckpt").glob("*/outbox/*.json")))
    finally:
        server.start()
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    assert "does not take writes: it does not answer" in output and "takes writes again" in output
    assert kept_while_down >= 1
    assert not any((tmp_path / "ckpt").glob("*/outbox"))
    client = MlflowClient(server.uri)
    [run] = client.search_runs([client.get_experiment_by_name("server-outage").experiment_id])
    assert run.info.status == "FINISHED"
    evals = [m.step for m in client.get_metric_history(run.info.run_id, "eval/reconstruction_error")]
    assert evals == list(range(1024, 8193, 1024))
    train_steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))
    assert train_steps == list(range(128, 8193, 128))  # every 8 steps of 16
    images = client.list_artifacts(run.info.run_id, "images")
    assert len([f for f in images if "interpolations" in f.path]) >= 8


def test_writes_kept_through_an_outage_that_outlasts_the_run_are_sent_by_the_next_process(server, tmp_path,
                                                                                          monkeypatch):
    """The end of a run waits `patience` for the server; still down, it stops with the writes kept on disk,
    and the next process (a rerun resumes the run) sends them before anything else."""
    for key in FAST:  # a failed delivery switches MLflow to fail-fast for the rest of its process
        monkeypatch.delenv(key, raising=False)
    mlflow.set_tracking_uri(server.uri)
    mlflow.set_experiment("server-outbox")
    with mlflow.start_run() as run:
        outbox = Outbox(tmp_path / "outbox", remote=True)
        outbox.log_metrics({"eval/x": 1.0}, step=1)  # the server is up: sent at once
        server.stop()
        try:
            outbox.log_metrics({"eval/x": 2.0}, step=2)
            with pytest.raises(Undelivered, match=r"1 kept write\(s\) wait in .*outbox.*rerun the same command"):
                outbox.deliver(patience=1.0)
            assert len(outbox.pending) == 1
        finally:
            server.start()
        Outbox(tmp_path / "outbox", remote=True).deliver()  # as a resumed process does first
    history = MlflowClient(server.uri).get_metric_history(run.info.run_id, "eval/x")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 2.0)]
    assert not (tmp_path / "outbox").exists()
