"""Every phase of a run has training's guarantees: start-up and the final logging included. Real processes,
real signals, real write faults: a stop or a failure is one line and a KILLED or FAILED run, the rerun does
what was left and repeats nothing, and a FINISHED run's checkpoints are pruned.

The write faults are made as root can feel them (tests run as root, where chmod stops nothing): a file
put where MLflow's model folder must be created (ENOTDIR: a broken or unwritable artifact store), and the
artifact folder on a 1 MB tmpfs in the child's own mount namespace (`unshare -m`), filled by the test (a
real ENOSPC; MLflow refuses a symlink to /dev/full as outside the artifact folder)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient
from test_reliability import ENV, RUN, TRAIN, eval_steps, runs, store, wait_for

pytestmark = pytest.mark.slow  # real processes: kept in CI, skipped by `-m 'not slow'`

LOGGED = [o for o in RUN if not o.startswith("tracking.log_model")] + ["tracking.log_model=true"]
STEPS = [1024, 2048, 3072, 4096]


def start(tmp: Path, overrides: list[str], pause: str | None = None) -> subprocess.Popen:
    """The run as a child process; with `pause`, it waits before that step while `tmp/pause` exists."""
    env = {**ENV, "ACAI_PAUSE_BEFORE": f"{pause}:{tmp / 'pause'}"} if pause else ENV
    return subprocess.Popen([*TRAIN, *overrides, *store(tmp)], cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def paused(tmp: Path, proc: subprocess.Popen) -> None:
    wait_for(lambda: (tmp / "pause").exists() or proc.poll() is not None, what="the pause")
    assert proc.poll() is None, proc.communicate()[1][-2000:]


def rerun(tmp: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run([*TRAIN, *overrides, *store(tmp)], cwd=tmp, env=ENV, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def one_line(err: str, prefix: str) -> str:
    """The single line of a fault: it starts with `prefix`, it is the last line, and no traceback."""
    lines = [ln for ln in err.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return lines[0]


def only_once(client: MlflowClient, run_id: str, *metrics: str) -> None:
    for metric in metrics:
        assert len(client.get_metric_history(run_id, metric)) == 1, metric


def models(client: MlflowClient, run) -> list[tuple[str, LoggedModelStatus]]:
    found = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    return sorted((m.name, m.status) for m in found)


def test_sigterm_in_the_final_logging_then_the_rerun_logs_the_rest_once(tmp_path):
    proc = start(tmp_path, LOGGED, pause="model")  # after the final metrics and the latent plot
    paused(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    line = one_line(err, "stopped by")
    client, (run,) = runs(tmp_path)
    assert line.startswith("stopped by SIGTERM during the final logging (done: latent_plot, metrics): "
                           f"MLflow run {run.info.run_id} marked KILLED; training is complete"), line
    assert run.info.status == "KILLED"
    assert {"acai.final.metrics", "acai.final.latent_plot"} <= set(run.data.tags)
    assert "acai.final.model" not in run.data.tags and models(client, run) == []
    assert any((tmp_path / "ckpt").glob("*/ckpt-4.index"))  # kept for the rerun

    done = rerun(tmp_path, LOGGED)
    assert f"Resuming MLflow run {run.info.run_id}" in done.stdout
    client, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED"
    only_once(client, run.info.run_id, "final/reconstruction_error", "samples", "time/wall_seconds",
              "time/final_seconds")
    assert models(client, run) == [("interpolator", LoggedModelStatus.READY), ("model", LoggedModelStatus.READY)]
    assert eval_steps(client, run.info.run_id) == STEPS
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == []  # pruned: the weights are a logged model


def test_a_write_error_in_the_final_logging_fails_the_run_in_one_line_and_the_rerun_keeps_one_model(tmp_path):
    proc = start(tmp_path, LOGGED, pause="model")
    paused(tmp_path, proc)
    blocker = tmp_path / "mlruns" / "models"  # where MLflow creates each logged model's folder
    blocker.write_text("not a folder")
    (tmp_path / "pause").unlink()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-2000:]
    line = one_line(err, "error:")
    client, (run,) = runs(tmp_path)
    assert "a file or MLflow store operation failed (" in line and "during the final logging" in line, line
    assert f"MLflow run {run.info.run_id} marked FAILED" in line and "fix it and rerun to resume" in line
    assert run.info.status == "FAILED"
    assert all(status != LoggedModelStatus.READY for _, status in models(client, run))

    blocker.unlink()
    done = rerun(tmp_path, LOGGED)
    assert f"Resuming MLflow run {run.info.run_id}" in done.stdout
    client, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED"
    assert models(client, run) == [("interpolator", LoggedModelStatus.READY), ("model", LoggedModelStatus.READY)]
    only_once(client, run.info.run_id, "final/reconstruction_error", "samples", "time/final_seconds")


def tiny_disk(folder: Path) -> list[str]:
    """A command prefix that runs the child in its own mount namespace with `folder` a 1 MB tmpfs (the test
    fills it through /proc/<pid>/root); skips where mounting is not permitted."""
    folder.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {folder}"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private tmpfs mount here: {probe.stderr.strip()[:200]}")
    return ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"', str(folder)]


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as f:  # noqa: PTH123
        with pytest.raises(OSError, match="No space left"):
            while True:
                f.write(b"\0" * 65536)
                f.flush()


def test_a_full_disk_at_start_up_fails_the_run_in_one_line_and_the_rerun_completes_it(tmp_path):
    """The artifact folder on a real 1 MB filesystem, filled once the run exists (a real ENOSPC)."""
    mlruns = tmp_path / "mlruns"
    prefix = tiny_disk(mlruns)
    env = {**ENV, "ACAI_PAUSE_BEFORE": f"config:{tmp_path / 'pause'}"}  # the run exists; no config logged yet
    proc = subprocess.Popen([*prefix, *TRAIN, *RUN, *store(tmp_path)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    paused(tmp_path, proc)
    fill(Path(f"/proc/{proc.pid}/root{mlruns}"))  # the child's view of the folder: its tmpfs
    (tmp_path / "pause").unlink()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-2000:]
    line = one_line(err, "error:")
    client, (run,) = runs(tmp_path)
    assert line.startswith("error: no space left on the device") and "during the start-up" in line, line
    assert f"MLflow run {run.info.run_id} marked FAILED" in line and "free space and rerun to resume" in line
    assert run.info.status == "FAILED"

    done = rerun(tmp_path, RUN)  # the tmpfs went with the child: space again
    assert f"Resuming MLflow run {run.info.run_id} after 0 of 4" in done.stdout
    client, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.params["trainer.total_samples"] == "4096"
    assert "total_samples: 4096" in (mlruns / run.info.run_id / "artifacts" / "config.yaml").read_text()
    assert eval_steps(client, run.info.run_id) == STEPS
    ckpt = next(p for p in (tmp_path / "ckpt").iterdir() if p.is_dir())  # no logged model: the latest is kept
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]


def test_sigterm_at_start_up_marks_the_run_killed_in_one_line(tmp_path):
    proc = start(tmp_path, RUN, pause="config")
    paused(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    _, (run,) = runs(tmp_path)
    line = one_line(err, "stopped by")
    assert line.startswith(f"stopped by SIGTERM during start-up: MLflow run {run.info.run_id} marked KILLED"), line
    assert run.info.status == "KILLED"


def test_double_ctrl_c_is_one_line_and_resume_goes_on_in_the_store_given(tmp_path):
    proc = start(tmp_path, RUN)
    wait_for(lambda: any((tmp_path / "ckpt").glob("*/ckpt-1.index")), what="a first checkpoint")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # in quick succession
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    line = one_line(err, "stopped")
    assert line.startswith(("stopped by SIGINT at step ", "stopped at once by SIGINT at step ")), line
    client, (run,) = runs(tmp_path)
    assert run.info.status == "KILLED" and "marked KILLED" in line
    run_id = run.info.run_id

    refused = subprocess.run([*TRAIN, f"resume={run_id}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                              f"tracking.artifact_location={tmp_path}/elsewhere", "trainer.lr=1"],
                             cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    line = one_line(refused.stderr, "error:")
    assert f"tracking.artifact_location={tmp_path}/elsewhere trainer.lr=1 would be ignored: drop them" in line
    assert "a run keeps the artifact folder it began with" in line

    shutil.copy(tmp_path / "mlflow.db", tmp_path / "moved.db")  # the store copied elsewhere
    moved = f"sqlite:///{tmp_path}/moved.db"
    done = subprocess.run([*TRAIN, f"resume={run_id}", f"tracking.uri={moved}"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"store      {moved}" in done.stdout and f"Resuming MLflow run {run_id}" in done.stdout
    again = MlflowClient(moved).get_run(run_id)
    assert again.info.status == "FINISHED" and eval_steps(MlflowClient(moved), run_id) == STEPS
    assert client.get_run(run_id).info.status == "KILLED"  # the original store is left as it was
    assert os.path.exists(tmp_path / "mlflow.db")


def test_a_second_signal_stops_at_once_unless_the_stop_is_being_recorded_and_a_third_kills():
    """StopOnSignal in a real process, signalling itself: the first signal is only noted, a second raises
    at once (also in the middle of a sleep), none does while shielded, and a third gets the default action."""
    code = """
import os, signal, sys, time
from acai.errors import Interrupted
from acai.training.callbacks import StopOnSignal

stop = StopOnSignal()
with stop.installed():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    print("noted", stop.signum == signal.SIGINT, flush=True)
    with stop.shield():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
    print("shielded", stop.count, flush=True)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("not stopped", flush=True)
    except Interrupted as e:
        print("at once", e.signal_name, flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
    print("survived a third", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["noted True", "shielded 2", "at once SIGTERM"], done.stderr[-2000:]
    assert done.returncode == -signal.SIGINT
