"""An interrupted Optuna sweep continues its study: the journal, and a real sweep killed and rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from test_sweep import ENV, TINY, TRAIN, runs_of, store, tail

from acai.tracking.optuna_sweep import JournaledStorage


def quadratic(trial: optuna.Trial) -> float:
    return (trial.suggest_float("x", -2.0, 2.0) - 0.5) ** 2


def test_the_journal_replays_every_trial_and_gives_up_the_running_one(tmp_path):
    path = tmp_path / "study.jsonl"
    study = optuna.create_study(study_name="s", storage=JournaledStorage(path), sampler=optuna.samplers.TPESampler(0))
    study.optimize(quadratic, n_trials=4)
    cut = study.ask()  # a trial a kill would leave running
    cut.suggest_float("x", -2.0, 2.0)

    storage = JournaledStorage(path)  # a new process reads the journal back
    again = optuna.load_study(study_name="s", storage=storage)
    states = [t.state for t in again.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 4 + [optuna.trial.TrialState.FAIL]
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert again.best_value == study.best_value and storage.finished("s") == 4
    again.optimize(quadratic, n_trials=2)  # and it goes on in the same study
    assert len(JournaledStorage(path).get_all_trials(0)) == 7


def test_a_journal_cut_off_mid_line_loses_only_that_change(tmp_path):
    path = tmp_path / "study.jsonl"
    study = optuna.create_study(study_name="s", storage=JournaledStorage(path))
    study.optimize(quadratic, n_trials=2)
    with open(path, "a") as f:
        f.write('{"op": "set_trial_val')  # a kill in the middle of a write
    assert JournaledStorage(path).finished("s") == 2


@pytest.mark.slow
def test_a_killed_optuna_sweep_continues_its_study_when_rerun(tmp_path):
    args = [*TRAIN, "-m", "hydra/sweeper=optuna_acai", "hydra.sweeper.n_trials=3", *TINY, *store(tmp_path),
            "tracking.objective=final/reconstruction_error"]
    journal = tmp_path / "ckpt" / "optuna"
    first = subprocess.Popen([*args, f"hydra.sweep.dir={tmp_path / 'first'}"], cwd=tmp_path, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (journal.is_dir() and any('"set_trial_values"' in p.read_text() for p in journal.glob("*.jsonl"))):
        assert first.poll() is None and time.monotonic() < deadline, "the first trial did not finish"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the whole sweep, mid-way through its second trial at the latest
    first.wait()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    done_before = [r for r in runs_of(client) if r.info.status == "FINISHED"]
    assert 1 <= len(done_before) < 3

    again = subprocess.run([*args, f"hydra.sweep.dir={tmp_path / 'again'}"], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, tail(again.stderr)
    assert f"{len(done_before)} of 3 trials done" in again.stdout
    finished = [r for r in runs_of(client) if r.info.status == "FINISHED"]
    assert len(finished) == 3  # the study's 3 trials in all, not 3 more
    weights = [float(r.data.params["regularizer.advweight"]) for r in finished]
    assert len(set(weights)) == 3  # the resumed sampler does not propose the first trials' parameters again
    (storage_file,) = journal.glob("*.jsonl")
    study = optuna.load_study(study_name="acai", storage=JournaledStorage(storage_file))
    assert sorted(t.params["regularizer.advweight"] for t in study.trials
                  if t.state == optuna.trial.TrialState.COMPLETE) == pytest.approx(sorted(weights))
