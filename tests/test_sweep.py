"""End to end through the real entry points: a Hydra `-m` sweep into one MLflow store, `src/report.py` on that
sweep (its cells checked against a hand computation from the logged histories), and two training processes
logging to one SQLite store at the same time."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT
from mlflow.tracking import MlflowClient

from acai.config import DEFAULT_TRACKING_URI, PROJECT_ROOT, TrackingConfig
from acai.evaluation.summary import summary_window
from acai.reporting.measurements import MEASUREMENTS
from acai.reporting.tables import plateau_mark
from acai.tracking.sweep import report_command

sys.path.insert(0, str(ROOT / "src"))
import report  # noqa: E402  (the script: its main)

pytestmark = pytest.mark.slow  # real processes: kept in CI, skipped by `-m 'not slow'`

TRAIN = [sys.executable, str(ROOT / "src" / "train.py")]
TINY = ["experiment=smoke", "model=mlp", "model.hidden=[32]", "evaluation.cluster=false", "tracking.log_model=false"]
EVAL_STEPS = [32, 64]  # the smoke preset: 64 samples, an evaluation every 32
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def store(tmp_path: Path) -> list[str]:
    """Tracking, artifacts and checkpoints inside tmp_path."""
    return [f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_location={tmp_path}/mlruns",
            f"trainer.checkpoint_dir={tmp_path}/ckpt"]


def tail(text: str, n: int = 3000) -> str:
    return text[-n:]


def runs_of(client: MlflowClient) -> list:
    """Training runs only: the report test adds a summary run to the same store, and a sweep has a parent run."""
    return [r for r in all_runs(client) if r.data.tags.get("acai.report") != "true"
            and "acai.sweep_parent" not in r.data.tags]


def all_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("smoke")  # experiment=smoke runs go to their own experiment
    assert experiment is not None, "no experiment `smoke` in the store"
    return client.search_runs([experiment.experiment_id])


def parents_of(client: MlflowClient) -> list:
    return [r for r in all_runs(client) if "acai.sweep_parent" in r.data.tags]


def by_step(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """`python src/train.py -m regularizer=acai,none seed=0,1`: four tiny jobs, one store, one sweep dir."""
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_dir = tmp / "multirun"
    done = subprocess.run([*TRAIN, "-m", "regularizer=acai,none", "seed=0,1", *TINY, *store(tmp),
                           f"hydra.sweep.dir={sweep_dir}"],
                          cwd=tmp, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, tail(done.stderr)
    return tmp, sweep_dir, MlflowClient(f"sqlite:///{tmp}/mlflow.db"), done


def test_multirun_logs_one_finished_run_per_job_tagged_with_the_sweep(sweep):
    tmp, sweep_dir, client, done = sweep
    runs = runs_of(client)
    names = ["acai-lines-mlp-z64-s0", "acai-lines-mlp-z64-s1", "none-lines-mlp-z64-s0", "none-lines-mlp-z64-s1"]
    assert sorted(r.info.run_name for r in runs) == names, tail(done.stderr)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags.get("sweep") for r in runs} == {str(sweep_dir)}
    assert {r.data.params["tracking.sweep"] for r in runs} == {str(sweep_dir)}
    assert len({r.data.tags["acai.config_key"] for r in runs}) == 4  # four different configs, none resumed
    for run in runs:
        assert [s for s, _ in by_step(client, run.info.run_id, "eval/reconstruction_error")] == EVAL_STEPS
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    assert done.stdout.count("MLflow run ") == 4
    assert done.stdout.startswith(f"Sweep {sweep_dir}: every job's run carries the tag sweep={sweep_dir}")


def test_a_sweep_is_a_parent_run_holding_its_summary(sweep):
    """The parent/child links, and the parent's summary metrics and learning curves against the children's
    histories."""
    tmp, sweep_dir, client, done = sweep
    parents = parents_of(client)
    assert len(parents) == 1, tail(done.stdout)
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["acai.sweep_parent"] == str(sweep_dir)
    children = runs_of(client)
    assert {r.data.tags.get("mlflow.parentRunId") for r in children} == {parent.info.run_id}
    assert f"is a child of its parent run {parent.info.run_id}" in done.stdout
    assert f"summary (tables, figures, learning curves) is in its parent run {parent.info.run_id}" in done.stdout
    assert parent.data.metrics["summary/runs"] == 4
    for regularizer in ("acai", "none"):
        mine = [r for r in children if r.data.params["regularizer.name"] == regularizer]
        histories = [[v for _, v in by_step(client, r.info.run_id, "eval/reconstruction_error")] for r in mine]
        medians = [np.median(h[-summary_window(len(h)):]) * 1e3 for h in histories]  # the report's default window
        name = f"reconstruction_error/{regularizer}/lines-mlp-z64"
        assert parent.data.metrics[f"{name}/mean"] == pytest.approx(np.mean(medians))
        assert parent.data.metrics[f"{name}/std"] == pytest.approx(np.std(medians))
        assert parent.data.metrics[f"{name}/n"] == 2
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/report.md", "summary/report.png", "summary/learning_curves.png",
            "summary/learning_curves.csv", "summary/mean_distance.md"} <= files, files
    dst = tmp / "parent"
    dst.mkdir()
    curves = read_csv(Path(client.download_artifacts(parent.info.run_id, "summary/learning_curves.csv", str(dst))))
    for regularizer in ("acai", "none"):
        histories = [dict(by_step(client, r.info.run_id, "eval/mean_distance")) for r in children
                     if r.data.params["regularizer.name"] == regularizer]
        rows = [r for r in curves if r["measurement"] == "mean_distance" and r["regularizer"] == regularizer]
        assert [int(r["samples"]) for r in rows] == EVAL_STEPS
        for row in rows:
            values = np.array([h[int(row["samples"])] for h in histories]) * 1e3
            assert float(row["mean"]) == pytest.approx(values.mean())
            assert float(row["std"]) == pytest.approx(values.std())
            assert row["n"] == "2"


def test_a_parallel_sweep_and_its_rerun_share_one_parent(tmp_path):
    """joblib workers are other processes: their runs find the parent in the store; rerunning the same sweep
    (another folder, finished jobs skipped) reuses the parent and finishes it again."""
    args = [*TRAIN, "-m", "hydra/launcher=parallel", "regularizer=none", "seed=0,1", *TINY, *store(tmp_path)]
    first = subprocess.run([*args, f"hydra.sweep.dir={tmp_path / 'first'}"], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, tail(first.stderr)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,) = parents_of(client)
    assert parent.info.status == "FINISHED"
    children = runs_of(client)
    assert len(children) == 2 and {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    again = subprocess.run([*args, f"hydra.sweep.dir={tmp_path / 'again'}", "tracking.skip_finished=true"],
                           cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, tail(again.stderr)
    (reused,) = parents_of(client)
    assert reused.info.run_id == parent.info.run_id and reused.info.status == "FINISHED"
    assert reused.data.tags["acai.sweep_parent"] == str(tmp_path / "again")
    assert len(runs_of(client)) == 2 and reused.data.metrics["summary/runs"] == 2


def test_report_on_the_sweep_matches_a_hand_computation(sweep, capsys):
    tmp, sweep_dir, client, _ = sweep
    out = tmp / "reports"
    assert report.main(["--tracking-uri", f"sqlite:///{tmp}/mlflow.db", "--experiment", "smoke",
                        "--sweep", str(sweep_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"sweep `{sweep_dir}`" in printed and "4 finished runs, 1 setting(s)" in printed

    runs = [r for r in runs_of(client) if r.data.tags.get("sweep") == str(sweep_dir)]

    def expected(regularizer: str, metric: str, scale: float) -> tuple[float, float]:
        medians = []
        for run in runs:
            if run.data.params["regularizer.name"] != regularizer:
                continue
            history = by_step(client, run.info.run_id, f"eval/{metric}")
            steps = [s for s, _ in history]
            assert len(steps) == len(set(steps)), (run.info.run_name, steps)
            window = summary_window(len(history))  # the report's default: the run's own summary/* window
            assert window == 1  # 2 evaluations: the last one, as summary/*
            medians.append(np.median([v for _, v in history][-window:]) * scale)
        assert len(medians) == 2, (regularizer, medians)
        return float(np.mean(medians)), float(np.std(medians))

    def never_left(regularizer: str) -> int:
        """Runs flagged on the initial plateau at every evaluation: 64 samples do not leave it."""
        return sum(all(v == 1.0 for _, v in by_step(client, run.info.run_id, "eval/on_plateau")) for run in runs
                   if run.data.params["regularizer.name"] == regularizer)

    for key, scale in [("reconstruction_error", 1e3), ("mean_distance", 1e3), ("smoothness", 1.0)]:
        measurement = next(m for m in MEASUREMENTS if m.key == key)
        assert measurement.scale == scale, key  # the tables show MSE and Mean Distance x10^-3
        rows = read_csv(out / f"{key}.csv")
        assert [(r["dataset"], r["model"], r["latent_dim"], r["regularizer"], r["n"]) for r in rows] == [
            ("lines", "mlp", "64", "none", "2"), ("lines", "mlp", "64", "acai", "2")], key
        md = (out / f"{key}.md").read_text(encoding="utf-8").splitlines()
        assert "| dataset | model | latent | Baseline | ACAI | n |" in md, key
        cells = []
        for r in rows:
            mean, std = expected(r["regularizer"], key, scale)
            assert (float(r["mean"]), float(r["std"])) == (pytest.approx(mean), pytest.approx(std)), (key, r)
            cells.append(f"{mean:.2f}±{std:.2f}" + plateau_mark(never_left(r["regularizer"]), 2))
        assert f"| lines | mlp | 64 | {cells[0]} | {cells[1]} | 2 |" in md, (key, md)

    per_run = read_csv(out / "runs.csv")
    assert sorted(r["run_name"] for r in per_run) == sorted(r.info.run_name for r in runs)
    summary = client.search_runs([runs[0].info.experiment_id], "tags.`acai.report` = 'true'")
    assert len(summary) == 1 and summary[0].info.run_name == f"report-smoke-{sweep_dir}"
    assert summary[0].data.params["report.runs"] == "4"


def test_two_jobs_logging_to_one_store_at_once_both_complete(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "mlruns").mkdir()
    MlflowClient(uri).create_experiment("smoke", artifact_location=(tmp_path / "mlruns").as_uri())
    # 8 evaluations each (a few seconds), so that the two runs are sure to overlap in the store
    longer = ["trainer.total_samples=2048", "trainer.eval_every=256"]
    procs = {seed: subprocess.Popen([*TRAIN, "regularizer=acai", f"seed={seed}", *TINY, *longer, *store(tmp_path)],
                                    cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (0, 1)}
    results = {}
    try:
        for seed, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=300)
            results[seed] = (proc.returncode, stdout, stderr)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for seed, (code, _, err) in results.items():
        assert code == 0, f"seed {seed}: {tail(err)}"

    client = MlflowClient(uri)
    runs = {r.info.run_name: r for r in runs_of(client)}
    assert sorted(runs) == ["acai-lines-mlp-z64-s0", "acai-lines-mlp-z64-s1"]
    first, second = (runs[f"acai-lines-mlp-z64-s{seed}"].info for seed in (0, 1))
    assert first.start_time < second.end_time and second.start_time < first.end_time, "the runs did not overlap"
    for seed in (0, 1):
        run = runs[f"acai-lines-mlp-z64-s{seed}"]
        rid = run.info.run_id
        assert run.info.status == "FINISHED", (seed, tail(results[seed][2]))
        assert f"MLflow run {rid}" in results[seed][1]
        evals = {k for k in run.data.metrics if k.startswith("eval/")} - {"eval/mean_image_error"}  # logged once
        assert {"eval/reconstruction_error", "eval/mean_distance", "eval/smoothness"} <= evals, (seed, evals)
        assert [s for s, _ in by_step(client, rid, "eval/mean_image_error")] == [256], seed
        for key in evals:  # every evaluation of both runs is in the store, none lost to the other writer
            assert [s for s, _ in by_step(client, rid, key)] == list(range(256, 2049, 256)), (seed, key)
        assert {k.replace("eval/", "final/") for k in evals} <= set(run.data.metrics), seed
        assert [s for s, _ in by_step(client, rid, "train/loss")] == list(range(16, 2049, 16)), seed
        assert run.data.metrics["samples"] == 2048
        assert "config.yaml" in {a.path for a in client.list_artifacts(rid)}
        dst = tmp_path / f"artifacts{seed}"
        dst.mkdir()
        config = yaml.safe_load(Path(client.download_artifacts(rid, "config.yaml", str(dst))).read_text("utf-8"))
        assert config["seed"] == seed and config["regularizer"]["name"] == "acai"
        assert run.data.params["seed"] == str(seed)


def test_optuna_sweep_minimises_the_logged_objective(tmp_path):
    sweep_dir = tmp_path / "optuna"
    done = subprocess.run([*TRAIN, "-m", "hydra/sweeper=optuna_acai", "hydra.sweeper.n_trials=3", *TINY,
                           *store(tmp_path), "tracking.objective=final/reconstruction_error",
                           f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, tail(done.stderr)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = runs_of(client)
    assert len(runs) == 3 and {r.data.tags["sweep"] for r in runs} == {str(sweep_dir)}
    weights = {float(r.data.params["regularizer.advweight"]) for r in runs}
    assert len(weights) == 3 and all(0.1 <= w <= 1.0 for w in weights)  # each trial its own sampled λ
    best = min(runs, key=lambda r: r.data.metrics["final/reconstruction_error"])
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(best.data.metrics["final/reconstruction_error"])
    assert result["best_params"]["regularizer.advweight"] == pytest.approx(
        float(best.data.params["regularizer.advweight"]))


def test_optuna_sweep_without_objective_fails_before_training(tmp_path):
    done = subprocess.run([*TRAIN, "-m", "hydra/sweeper=optuna_acai", "hydra.sweeper.n_trials=1", *TINY,
                           *store(tmp_path), f"hydra.sweep.dir={tmp_path / 'optuna'}"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "error: tracking.objective=None is not valid: an Optuna sweep needs" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "ckpt").exists()


def test_sweep_tag_is_relative_to_the_repository_root_inside_it(tmp_path):
    from acai.config import PROJECT_ROOT
    from acai.tracking.sweep import sweep_tag

    assert sweep_tag(str(PROJECT_ROOT / "multirun" / "2026-11-25" / "20-16-30")) == "multirun/2026-11-25/20-16-30"
    assert sweep_tag(str(tmp_path / "multirun")) == str(tmp_path / "multirun")


def test_the_printed_compare_command_works_as_printed(tmp_path):
    """A sweep of smoke runs (experiment `smoke`, a store in tmp_path) prints a report command naming both; run
    as printed by a shell from another folder, it reports the sweep's two runs."""
    sweep_dir = tmp_path / "multirun"
    done = subprocess.run([*TRAIN, "-m", "regularizer=none", "seed=0,1", *TINY, *store(tmp_path),
                           f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, tail(done.stderr)
    printed = next(line for line in done.stdout.splitlines() if line.startswith("  compare: "))
    command = printed.removeprefix("  compare: ").split("   (UI search")[0]
    assert command == (f"python {ROOT / 'src' / 'report.py'} --sweep {sweep_dir} --experiment smoke "
                       f"--tracking-uri sqlite:///{tmp_path}/mlflow.db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(ENV, PATH=f"{Path(sys.executable).parent}{os.pathsep}{ENV['PATH']}")  # `python`: this interpreter
    ran = subprocess.run(command, shell=True, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, tail(ran.stderr)
    assert f"sweep `{sweep_dir}`" in ran.stdout and "2 finished runs, 1 setting(s)" in ran.stdout
    assert "the last 1 of 2 (2 runs)" in ran.stdout and (elsewhere / "reports" / "report.md").is_file()


def test_the_compare_command_names_only_what_differs_from_the_reports_defaults(tmp_path):
    tag = "multirun/2026-11-25/20-16-30"
    default = TrackingConfig(uri=DEFAULT_TRACKING_URI)
    assert report_command(tag, default, cwd=PROJECT_ROOT) == f"python src/report.py --sweep {tag}"
    assert report_command(tag, default, cwd=PROJECT_ROOT / "src") == f"python report.py --sweep {tag}"
    odd = TrackingConfig(uri="sqlite:///my store.db", experiment="table 1")  # relative: from where the sweep ran
    assert report_command(tag, odd, cwd=tmp_path) == (
        f"python {ROOT / 'src' / 'report.py'} --sweep {tag} --experiment 'table 1' "
        f"--tracking-uri 'sqlite:///{Path('my store.db').resolve()}'")
