"""Never two writers on one run, nothing lost on any kill: real processes, real signals, real locks."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from mlflow.tracking import MlflowClient

from acai.locks import RunLock, is_held, lock_path, run_state
from acai.training.run import train
from acai.training.spec import config_key

pytestmark = pytest.mark.slow  # real processes: kept in CI, skipped by `-m 'not slow'`

sys.path.insert(0, str(ROOT / "src"))

TRAIN = [sys.executable, str(ROOT / "src" / "train.py")]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT / "src")}
# mlp ACAI, 4 evaluations of 1024 samples, a checkpoint at each: ~15-30 s on 2 busy cores
RUN = ["experiment=smoke", "model=mlp", "model.hidden=[256]", "regularizer=acai", "trainer.total_samples=4096",
       "trainer.eval_every=1024", "trainer.checkpoint_every=1024", "trainer.log_every=8", "tracking.log_model=false"]


def store(tmp: Path) -> list[str]:
    return [f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"tracking.artifact_location={tmp}/mlruns",
            f"trainer.checkpoint_dir={tmp}/ckpt"]


def start(tmp: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*TRAIN, *RUN, *store(tmp), *extra], cwd=tmp, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 240, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def runs(tmp: Path):
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name("smoke")
    return client, (client.search_runs([exp.experiment_id]) if exp else [])


def eval_steps(client: MlflowClient, run_id: str, metric: str = "eval/reconstruction_error") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, metric))


def lock_of(tmp: Path) -> Path:
    return next((tmp / "ckpt").glob("*.lock"))


def test_a_second_identical_command_never_joins_a_live_run(tmp_path):
    longer = ["trainer.total_samples=32768", "trainer.eval_every=8192", "trainer.checkpoint_every=8192"]
    first = start(tmp_path, *longer)
    wait_for(lambda: (tmp_path / "ckpt").is_dir() and any((tmp_path / "ckpt").glob("*.lock"))
             and b"run_id" in lock_of(tmp_path).read_bytes(), what="the first run to start")
    second = subprocess.run([*TRAIN, *RUN, *store(tmp_path), *longer], cwd=tmp_path, env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert first.poll() is None, "the first run must still be training while the second is refused"
    assert second.returncode == 2
    errors = [ln for ln in second.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"being trained by pid {first.pid} " in errors[0], second.stderr[-2000:]
    assert str(lock_of(tmp_path)) in errors[0] and "Resuming" not in second.stdout
    assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    client, found = runs(tmp_path)
    assert len(found) == 1 and found[0].info.status == "FINISHED"
    assert eval_steps(client, found[0].info.run_id) == [8192, 16384, 24576, 32768]  # no step logged twice
    losses = [m.step for m in client.get_metric_history(found[0].info.run_id, "train/loss")]
    assert len(losses) == len(set(losses))
    assert not any((tmp_path / "ckpt").glob("*.lock"))  # released and removed at the end


def test_the_lock_frees_itself_when_its_process_is_killed(tmp_path):
    path = lock_path(tmp_path, "k")
    code = ("import sys, time; from pathlib import Path; from acai.locks import RunLock; "
            "RunLock(Path(sys.argv[1])).acquire(); print('ok', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ok"
    assert is_held(path)
    with pytest.raises(Exception, match=f"pid {holder.pid} "):
        RunLock(path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert not is_held(path)  # no heartbeat, no timeout: the kernel released it
    lock = RunLock(path).acquire()
    lock.release()


def test_concurrent_first_use_of_a_fresh_store(tmp_path):
    """Six processes open one new SQLite store at once (what `-m hydra/launcher=parallel` does in a fresh
    folder): creating and migrating it take turns, so all succeed and the experiment exists once."""
    code = ("import sys; from acai.config import TrackingConfig; from acai.tracking.mlflow_run import open_experiment; "
            "print(open_experiment(TrackingConfig(uri=sys.argv[1], artifact_location=sys.argv[2])))")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "mlruns")],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [(p.wait(timeout=300), p.stdout.read().strip(), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _, _ in results), [err[-1500:] for rc, _, err in results if rc]
    assert len({out for _, out, _ in results}) == 1
    assert [e.name for e in MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()].count("acai") == 1


def test_a_store_left_half_migrated_is_repaired_or_the_fix_is_named(compose_cfg, tmp_path):
    from acai.config import TrackingConfig
    from acai.errors import TrackingError
    from acai.tracking.mlflow_run import open_experiment

    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path}/mlflow.db", artifact_location=str(tmp_path / "mlruns"))
    experiment = open_experiment(tracking)
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as con:  # what an interrupted batch migration leaves: a copy beside the table
        con.execute("CREATE TABLE _alembic_tmp_experiments AS SELECT * FROM experiments")
    assert open_experiment(tracking) == experiment
    with sqlite3.connect(db) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "_alembic_tmp_experiments" not in names and "experiments" in names
        con.execute("CREATE TABLE _alembic_tmp_tags AS SELECT * FROM tags")
        con.execute("DROP TABLE tags")  # the copy is now the only data: never dropped, the fix is named
    with pytest.raises(TrackingError, match=r"half-migrated: table tags exists only as _alembic_tmp_tags\. Fix: "
                                            r"sqlite3 .* 'ALTER TABLE _alembic_tmp_tags RENAME TO tags'"):
        open_experiment(tracking)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_after_a_step_marks_the_run_killed_and_the_command_resumes_it(tmp_path, signum):
    proc = start(tmp_path)
    wait_for(lambda: any((tmp_path / "ckpt").glob("*/ckpt-1.index")), what="a first evaluation and checkpoint")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("stopped by")]  # (TF/MLflow start-up noise aside)
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {signal.Signals(signum).name} at step "), err[-2000:]
    assert err.strip().splitlines()[-1] == lines[0]
    assert "marked KILLED" in lines[0] and "rerun the same command to resume" in lines[0]
    assert "Traceback" not in err
    client, (run,) = runs(tmp_path)
    assert run.info.status == "KILLED" and run_state(run) == "killed"
    if signum == signal.SIGTERM:
        return  # resuming is the same for either signal: shown once, after Ctrl-C
    done = subprocess.run([*TRAIN, *RUN, *store(tmp_path)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and f"Resuming MLflow run {run.info.run_id}" in done.stdout, done.stderr[-2000:]
    client, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED"
    assert eval_steps(client, run.info.run_id) == [1024, 2048, 3072, 4096]
    folder = next(p for p in (tmp_path / "ckpt").iterdir() if p.is_dir())  # pruned: no logged model, the latest kept
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]


def test_images_of_an_evaluation_cut_off_by_a_kill_are_redone_on_resume(tmp_path):
    """kill -9 right after the reconstruction grid of the first evaluation appears, before its
    interpolation grid and critic plot: the resumed run must log all three for every evaluation."""
    proc = start(tmp_path)
    images = tmp_path / "mlruns"
    wait_for(lambda: any(images.glob("*/artifacts/images/reconstructions+step+1024+*")), what="the first grid")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    done = subprocess.run([*TRAIN, *RUN, *store(tmp_path)], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    client, (run,) = runs(tmp_path)
    artifacts = images / run.info.run_id / "artifacts"
    for step in (1024, 2048, 3072, 4096):
        for key in ("reconstructions", "interpolations"):
            assert any((artifacts / "images").glob(f"{key}+step+{step}+*.png")), (key, step)
        assert (artifacts / "critic" / f"critic_path_{step:010d}.png").exists(), step
    assert eval_steps(client, run.info.run_id) == [1024, 2048, 3072, 4096]


def test_time_totals_survive_a_resume_and_half_written_checkpoints_are_cleared(compose_cfg, tmp_path):
    """Resumed after its last evaluation (killed while logging the end), a run must report the time the
    first process trained, not 0; and `ckpt-N_temp/` folders of interrupted saves are removed.
    `trainer.keep_checkpoints=true` keeps a finished run's checkpoints (both kept, not only the latest)."""
    cfg = compose_cfg(*RUN, "trainer.keep_checkpoints=true")
    run_id = train(cfg)
    client = MlflowClient(cfg.tracking.uri)
    first = client.get_run(run_id).data.metrics
    assert first["time/train_seconds"] > 0 and first["time/images_per_second"] > 0
    folder = Path(cfg.trainer.checkpoint_dir) / config_key(cfg)
    assert (folder / "ckpt-3.index").exists() and (folder / "ckpt-4.index").exists()
    client.set_terminated(run_id, "KILLED")  # as if killed after the last checkpoint, before the end was logged
    for step in ("metrics", "time"):
        client.delete_tag(run_id, f"acai.final.{step}")
    leftover = folder / "ckpt-5_temp"
    leftover.mkdir(parents=True)
    (leftover / "part-00000").write_bytes(b"\0" * 4096)
    assert train(cfg) == run_id
    again = client.get_run(run_id).data.metrics
    assert again["time/train_seconds"] == pytest.approx(first["time/train_seconds"], rel=1e-6)
    assert again["time/images_per_second"] == pytest.approx(first["time/images_per_second"], rel=1e-6)
    assert again["time/wall_seconds"] >= first["time/train_seconds"]
    assert not leftover.exists()


def test_report_tells_a_live_run_from_one_whose_process_is_gone(tmp_path):
    from acai.reporting.runs import unfinished_note

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("acai", artifact_location=(tmp_path / "mlruns").as_uri())
    live = RunLock(lock_path(tmp_path, "live")).acquire()
    client.create_run(exp, tags={"acai.lock": str(live.path)})
    client.create_run(exp, tags={"acai.lock": str(lock_path(tmp_path, "gone"))})  # its process was SIGKILLed
    killed = client.create_run(exp)
    client.set_terminated(killed.info.run_id, "KILLED")
    try:
        note = unfinished_note(client, exp, None)
    finally:
        live.release()
    assert note.startswith("left out 3 unfinished run(s): ")
    assert "1 killed" in note and "1 running," in note and "1 running with no live process (killed)" in note
