"""`src/report.py` on a real SQLite MLflow store whose runs are logged the way training logs them (no training)."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from acai.reporting.measurements import MEASUREMENTS, PAPER_LABEL
from acai.reporting.report import build_report
from acai.reporting.runs import median_of_last
from acai.reporting.tables import columns_of, table_markdown

sys.path.insert(0, str(ROOT / "src"))
import report  # noqa: E402  (the script: its main)

EVALS = 25  # more than 20, so that "the last 20" differs from "all of them"
WINDOW = 2  # round(25 * 20 / 256): the runs' own summary/* window, the report's default
EVERY = 32  # samples between evaluations: the metric step
LINES_METRICS = ("mean_distance", "mean_distance_x1e3", "smoothness")
IMAGE_METRICS = ("latent_accuracy", "reconstruction_error")
MEASURE = {m.key: m for m in MEASUREMENTS}


def history(seed: int, base: float) -> list[float]:
    """A noisy decreasing curve: the first evaluations are far off, so the window matters."""
    rng = np.random.default_rng(seed)
    return [base * (1 + 3 * max(0, 5 - k)) + rng.normal(0, base / 10) for k in range(EVALS)]


def log_training_run(client: MlflowClient, exp: str, reg: str, dataset: str, model: str, latent: int, seed: int,
                     metrics: dict[str, list[float]], once: dict[str, float] | None = None, sweep: str | None = None,
                     finish: bool = True) -> str:
    """Params, tags and metric histories as `acai.training.run.train` logs them (eval/, median20/, final/); as
    many evaluations as the histories hold (EVALS without any)."""
    evals = max((len(v) for v in metrics.values()), default=EVALS)
    tags = {"regularizer": reg, "dataset": dataset, "model": model, "acai.config_key": f"{reg}{dataset}{seed}"}
    if sweep:
        tags["sweep"] = sweep
    run = client.create_run(exp, run_name=f"{reg}-{dataset}-{model}-z{latent}-s{seed}", tags=tags)
    rid = run.info.run_id
    params = {"regularizer.name": reg, "regularizer._target_": f"acai.regularizers.{reg}.X", "dataset.name": dataset,
              "dataset.latent_dim": str(latent), "model.name": model, "model.latent_dim": str(latent),
              "seed": str(seed), "trainer.batch_size": "64", "tracking.sweep": str(sweep), "resume": "None"}
    client.log_batch(rid, params=[Param(k, v) for k, v in params.items()])
    logged: list[Metric] = []
    now = int(time.time() * 1000)
    order = np.random.default_rng(seed + 7).permutation(evals)  # logged out of step order: report sorts by step
    for i, k in enumerate(order):
        step = (int(k) + 1) * EVERY
        for name, values in metrics.items():
            logged.append(Metric(f"eval/{name}", values[k], now + i, step))
            logged.append(Metric(f"median20/{name}", float(np.median(values[max(0, k - 19):k + 1])), now + i, step))
    for name, value in (once or {}).items():  # clustering: only at the last evaluation
        logged += [Metric(f"eval/{name}", value, now + evals, evals * EVERY),
                   Metric(f"median20/{name}", value, now + evals, evals * EVERY)]
    last = {n: v[-1] for n, v in metrics.items()} | (once or {})
    logged += [Metric(f"final/{n}", v, now + evals, 0) for n, v in last.items()]
    for start in range(0, len(logged), 1000):
        client.log_batch(rid, metrics=logged[start:start + 1000])
    if finish:
        client.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory):
    """An empty SQLite store with MLflow's tables: creating them takes seconds, copying the file does not."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def empty_store(tmp_path, migrated_db):
    """A fresh store in tmp_path with an `acai` experiment whose artifacts go to tmp_path/mlruns."""
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    return uri, client, client.create_experiment("acai", artifact_location=(tmp_path / "mlruns").as_uri())


@pytest.fixture
def store(empty_store):
    """Lines (conv, 64): none and acai x seeds 0, 1, dropout without line metrics; MNIST (conv, 32): acai x 2 seeds
    in sweep `mnist32`; plus a running run and an evaluation child run that the report must leave out."""
    uri, client, exp = empty_store
    logged: dict[tuple[str, str, int], dict[str, list[float]]] = {}
    bases = {"mean_distance": 0.004, "mean_distance_x1e3": 4.0, "smoothness": 0.5, "latent_accuracy": 90.0,
             "reconstruction_error": 0.01}
    for reg_i, reg in enumerate(("none", "acai")):
        for seed in (0, 1):
            s = 10 * reg_i + seed
            metrics = {n: history(s + j, b * (1 + reg_i)) for j, (n, b) in enumerate(bases.items())}
            once = {"cluster_accuracy": 80.0 + s, "cluster_accuracy_pixels": 55.0 + seed}
            log_training_run(client, exp, reg, "lines", "conv", 64, seed, metrics, once)
            logged[(reg, "lines", seed)] = metrics | {k: [v] for k, v in once.items()}
    metrics = {n: history(40 + j, bases[n]) for j, n in enumerate(IMAGE_METRICS)}
    log_training_run(client, exp, "dropout", "lines", "conv", 64, 0, metrics)
    logged[("dropout", "lines", 0)] = metrics
    for seed in (0, 1):
        metrics = {n: history(50 + seed + j, bases[n]) for j, n in enumerate(IMAGE_METRICS)}
        once = {"cluster_accuracy": 90.0 + 2 * seed, "cluster_accuracy_pixels": 50.0}
        log_training_run(client, exp, "acai", "mnist", "conv", 32, seed, metrics, once, sweep="mnist32")
        logged[("acai", "mnist", seed)] = metrics | {k: [v] for k, v in once.items()}
    log_training_run(client, exp, "acai", "lines", "conv", 64, 2, {"smoothness": [9.0] * EVALS}, finish=False)
    child = client.create_run(exp, run_name="evaluate-x", tags={"mlflow.parentRunId": "x"})
    client.log_metric(child.info.run_id, "evaluate/smoothness", 9.0)
    client.set_terminated(child.info.run_id, "FINISHED")
    return uri, client, exp, logged


def expected(logged, metric: str, reg: str, dataset: str, scale: float = 1.0,
             window: int = WINDOW) -> tuple[float, float, int]:
    """The paper's aggregation by hand: per run the median of its last `window` values, then mean and np.std."""
    medians = [np.median(v[metric][-window:]) * scale for (r, d, _), v in logged.items()
               if r == reg and d == dataset and metric in v]
    return (float(np.mean(medians)), float(np.std(medians)), len(medians)) if medians else (np.nan, np.nan, 0)


def row(table, reg: str, dataset: str):
    rows = table[(table["regularizer"] == reg) & (table["dataset"] == dataset)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_groups_and_left_out_runs(store, tmp_path):
    uri, *_ = store
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False)
    cells = set(zip(rep.per_run["regularizer"], rep.per_run["dataset"], rep.per_run["model"],
                    rep.per_run["latent_dim"]))
    assert cells == {("none", "lines", "conv", 64), ("acai", "lines", "conv", 64), ("dropout", "lines", "conv", 64),
                     ("acai", "mnist", "conv", 32)}
    assert len(rep.per_run) == 7  # the running run and the evaluation child run are not training results
    assert any("without the params" in n and "evaluate-x" in n for n in rep.notes)
    assert list(columns_of(rep.tables["smoothness"])) == ["none", "acai"]  # paper order, dropout has none
    assert list(columns_of(rep.tables["latent_accuracy"])) == ["none", "dropout", "acai"]
    assert list(columns_of(rep.tables["cluster_accuracy"])) == ["none", "acai", "pixels"]


def test_means_and_stds_are_the_papers_aggregation(store, tmp_path):
    uri, _, _, logged = store
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False)
    checks = [("mean_distance", "mean_distance", 1e3), ("smoothness", "smoothness", 1.0),
              ("latent_accuracy", "latent_accuracy", 1.0), ("reconstruction_error", "reconstruction_error", 1e3),
              ("cluster_accuracy", "cluster_accuracy", 1.0)]
    for key, metric, scale in checks:
        table = rep.tables[key]
        for reg, dataset in [("none", "lines"), ("acai", "lines"), ("dropout", "lines"), ("acai", "mnist")]:
            mean, std, n = expected(logged, metric, reg, dataset, scale)
            if n == 0:
                assert table[(table["regularizer"] == reg) & (table["dataset"] == dataset)].empty
                continue
            got = row(table, reg, dataset)
            assert (got["mean"], got["std"], got["n"]) == (pytest.approx(mean), pytest.approx(std), n), (key, reg)
    # the window matters: the median of the last 20 evaluations is a different number
    values = logged[("acai", "lines", 0)]["smoothness"]
    assert np.median(values[-20:]) != pytest.approx(np.median(values[-WINDOW:]))
    assert set(rep.per_run["window"]) == {WINDOW} and set(rep.per_run["evaluations"]) == {EVALS}
    pixels = row(rep.tables["cluster_accuracy"], "pixels", "lines")
    assert (pixels["mean"], pixels["std"], pixels["n"]) == (pytest.approx(55.5), pytest.approx(0.5), 4)


def test_markdown_cells_paper_rows_and_blanks(store, tmp_path):
    uri, _, _, logged = store
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False)
    md = rep.markdown
    mean, std, _ = expected(logged, "smoothness", "acai", "lines")
    assert f"{mean:.2f}±{std:.2f}" in md
    smooth = table_markdown(MEASURE["smoothness"], rep.tables["smoothness"]).splitlines()
    assert smooth[2] == "| dataset | model | latent | Baseline | ACAI | n |"
    assert smooth[5] == "| paper (unverified) | | | 0.44±0.04 | 0.10±0.01 | |"  # lines 64 is Table 1's setting
    accuracy = table_markdown(MEASURE["latent_accuracy"], rep.tables["latent_accuracy"]).splitlines()
    lines_row = next(r for r in accuracy if r.startswith("| lines |"))
    assert lines_row.endswith("| Baseline:2 Dropout:1 ACAI:2 |")  # n per column when they differ
    mnist = accuracy.index(next(r for r in accuracy if r.startswith("| mnist | conv | 32 |")))
    assert accuracy[mnist].split(" | ")[3:5] == ["", ""]  # no Baseline or Dropout run on MNIST: blank cells
    assert accuracy[mnist + 1] == "| paper (unverified) | | | 94.90±0.14 |  | 98.25±0.11 | |"
    assert not any(r.startswith("| paper") for r in accuracy[:mnist])  # no paper row for lines accuracy
    cluster = table_markdown(MEASURE["cluster_accuracy"], rep.tables["cluster_accuracy"])
    assert "| paper (unverified) | | |  | ~94.38 |  | |" in cluster  # pixels column blank in the paper row
    assert "| 50.00±0.00 |" in cluster  # the pixels reference on MNIST


def test_missing_metrics_are_blank_not_errors(empty_store, tmp_path):
    uri, client, exp = empty_store
    log_training_run(client, exp, "vae", "lines", "mlp", 64, 0, {"reconstruction_error": history(0, 0.01)})
    log_training_run(client, exp, "denoising", "lines", "mlp", 64, 0, {})  # crashed before its first evaluation
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False)
    assert rep.tables["smoothness"].empty and rep.tables["cluster_accuracy"].empty
    assert "_No finished run logged `eval/smoothness`._" in rep.markdown
    assert list(rep.tables["reconstruction_error"]["regularizer"]) == ["vae"]
    assert rep.per_run["smoothness"].isna().all()
    assert (tmp_path / "out" / "report.png").stat().st_size > 0


def test_undefined_evaluations_are_skipped_and_shown(empty_store, tmp_path):
    """Smoothness is NaN when no interpolation is defined: such evaluations are not a number to average."""
    uri, client, exp = empty_store
    partly = history(1, 0.5)
    partly[-1:] = [math.nan]
    log_training_run(client, exp, "aae", "lines", "conv", 64, 0, {"smoothness": partly})
    log_training_run(client, exp, "aae", "lines", "conv", 64, 1, {"smoothness": [math.nan] * EVALS})
    log_training_run(client, exp, "vae", "lines", "conv", 64, 0, {"smoothness": [math.nan] * EVALS})
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False)
    table = rep.tables["smoothness"]
    aae, vae = row(table, "aae", "lines"), row(table, "vae", "lines")
    assert (aae["mean"], aae["std"], aae["n"], aae["undefined"]) == (pytest.approx(partly[-2]), 0, 1, 1)
    assert (vae["n"], vae["undefined"]) == (0, 1) and np.isnan(vae["mean"])
    md = table_markdown(MEASURE["smoothness"], table)
    assert f"| lines | conv | 64 | NaN | {aae['mean']:.2f}±0.00 | 1 |" in md  # the paper's order: VAE, AAE
    assert "all undefined (NaN)" in md and "VAE lines/conv/64 (1), AAE lines/conv/64 (1)" in md


def test_files_are_written_and_logged_to_a_summary_run(store, tmp_path, capsys):
    uri, client, exp, _ = store
    out = tmp_path / "reports"
    assert report.main(["--tracking-uri", uri, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# ACAI report: experiment `acai`") and "## Smoothness" in captured.out
    names = {f"{m.key}.{ext}" for m in MEASUREMENTS for ext in ("md", "csv")} | {"report.md", "report.png",
                                                                                        "runs.csv"}
    names |= {"learning_curves.png", "learning_curves.csv"}  # each measurement against samples seen
    assert {p.name for p in out.iterdir()} == names
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "mean_distance.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["regularizer"] for r in rows} == {"none", "acai"}
    assert {r["paper_mean"] for r in rows} == {"6.88", "0.24"}
    summary = client.search_runs([exp], "tags.`acai.report` = 'true'")
    assert len(summary) == 1 and summary[0].info.run_name == "report-acai"
    assert summary[0].info.status == "FINISHED" and summary[0].data.params["report.runs"] == "7"
    assert {a.path for a in client.list_artifacts(summary[0].info.run_id)} == names
    assert f"logged to run {summary[0].info.run_id}" in captured.err


def test_report_runs_are_not_read_back(store, tmp_path, capsys):
    uri, client, exp, _ = store
    args = ["--tracking-uri", uri, "--out", str(tmp_path / "out")]
    assert report.main(args) == 0
    first = capsys.readouterr().out
    assert report.main(args) == 0
    second = capsys.readouterr().out
    def tables(md: str) -> list[str]:
        return [line for line in md.splitlines() if "generated" not in line and not line.startswith("> Note")]

    assert tables(second) == tables(first)
    assert "> Note: left out 1 report run(s)" in second and "report run" not in first
    assert "7 finished runs" in second
    assert len(client.search_runs([exp], "tags.`acai.report` = 'true'")) == 2


def test_sweep_and_filter_select_runs(store, tmp_path, capsys):
    uri, client, exp, logged = store
    assert report.main(["--tracking-uri", uri, "--sweep", "mnist32/", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "sweep `mnist32`" in out and "| mnist | conv | 32 |" in out and "| lines |" not in out
    assert client.search_runs([exp], "tags.`acai.report` = 'true'")[0].info.run_name == "report-acai-mnist32"
    rep = build_report(uri, "acai", "params.seed = '1'", out=tmp_path / "f", log=False)
    assert set(rep.per_run["seed"]) == {"1"} and len(rep.per_run) == 3


def test_median_of_last_counts_a_repeated_step_once():
    """A resumed run may log one step twice: the later value stands, and the window is 20 steps."""
    metrics = [Metric("eval/x", float(s), 1000 + s, s * EVERY) for s in range(1, 26)]
    metrics.append(Metric("eval/x", 1000.0, 5000, 25 * EVERY))  # re-logged last step
    metrics.append(Metric("eval/x", -1000.0, 10, 24 * EVERY))  # older than the first log of that step
    assert median_of_last(metrics) == np.median([*range(6, 25), 1000.0]) == 15.5
    assert np.isnan(median_of_last([]))


def test_mixed_settings_are_noted(store, tmp_path):
    uri, client, exp, _ = store
    rid = log_training_run(client, exp, "none", "lines", "conv", 64, 5, {"smoothness": history(5, 0.5)})
    client.log_batch(rid, params=[Param("trainer.lr", "0.01")])
    rep = build_report(uri, "acai", out=tmp_path / "o", log=False)
    assert any("none/lines/conv/64 differ in trainer.lr" in n for n in rep.notes)
    assert "> Note: the 3 runs of none/lines/conv/64 differ in trainer.lr" in rep.markdown


@pytest.mark.parametrize("case", ["experiment", "store", "filter"])
def test_bad_input_is_a_one_line_error(store, tmp_path, capsys, case):
    uri, *_ = store
    args = {"experiment": ["--tracking-uri", uri, "--experiment", "nope"],
            "store": ["--tracking-uri", f"sqlite:///{tmp_path}/missing/mlflow.db"],
            "filter": ["--tracking-uri", uri, "--filter", "params.seed ~ 1"]}[case]
    assert report.main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert {"experiment": "no such experiment", "store": "no MLflow store at",
            "filter": "--filter 'params.seed ~ 1'"}[case] in err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "o").exists()


def test_no_matching_runs(store, tmp_path, capsys):
    uri, client, *_ = store
    assert report.main(["--tracking-uri", uri, "--sweep", "nothing", "--out", str(tmp_path / "o")]) == 1
    assert "error: no finished training runs in experiment 'acai' match" in capsys.readouterr().err
    client.create_experiment("empty", artifact_location=(tmp_path / "e").as_uri())
    assert report.main(["--tracking-uri", uri, "--experiment", "empty", "--no-log", "--out", str(tmp_path / "o")]) == 1
    assert "tags.sweep" not in capsys.readouterr().err


def test_script_starts_without_tensorflow(store, tmp_path):
    uri, *_ = store
    code = ("import sys, runpy; sys.argv = ['report.py', '--tracking-uri', sys.argv[1], '--no-log', '--out', "
            f"{str(tmp_path / 'o')!r}]\ntry:\n    runpy.run_path({str(ROOT / 'src' / 'report.py')!r}, "
            "run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'")
    done = subprocess.run([sys.executable, "-c", code, uri], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "## Mean Distance (x10^-3)" in done.stdout


def test_last_n_sets_the_window_of_the_per_run_median(store, tmp_path, capsys):
    """`--last 3`: per run the median of its last 3 evaluations, said so in the notes; --last 0 is refused."""
    uri, _, _, logged = store
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False, last=3)
    medians = [np.median(v["reconstruction_error"][-3:]) * 1e3 for (r, d, _), v in logged.items()
               if r == "acai" and d == "lines"]
    got = row(rep.tables["reconstruction_error"], "acai", "lines")
    assert (got["mean"], got["std"]) == (pytest.approx(np.mean(medians)), pytest.approx(np.std(medians)))
    assert got["mean"] != pytest.approx(expected(logged, "reconstruction_error", "acai", "lines", 1e3)[0])
    assert "median of its last 3 evaluations" in rep.markdown
    assert report.main(["--tracking-uri", uri, "--out", str(tmp_path / "o"), "--no-log", "--last", "0"]) == 2
    assert "--last=0" in capsys.readouterr().err


def test_tables_2_and_3_have_a_row_per_dataset_and_latent_size_in_the_papers_order(empty_store, tmp_path):
    """The paper's Tables 2-3: MNIST 32/256, SVHN 32/256, CIFAR-10 256/1024 rows, the models as columns;
    an unlabelled dataset (CelebA) logs no accuracy and so has no row there."""
    uri, client, exp = empty_store
    settings = [("cifar10", 1024), ("svhn", 256), ("mnist", 32), ("cifar10", 256), ("svhn", 32), ("mnist", 256)]
    for i, (dataset, latent) in enumerate(settings):
        for reg in ("acai", "none"):
            accuracy = [50.0 + i + (reg == "acai")] * EVALS
            log_training_run(client, exp, reg, dataset, "conv", latent, 0, {"latent_accuracy": accuracy,
                             "reconstruction_error": [0.01] * EVALS}, once={"cluster_accuracy": 40.0 + i})
    log_training_run(client, exp, "acai", "celeba", "conv", 32, 0, {"reconstruction_error": [0.02] * EVALS})
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False)
    for key, table in (("latent_accuracy", "Table 2"), ("cluster_accuracy", "Table 3")):
        section = rep.markdown.split(f"## {MEASURE[key].title}: the paper's {table}")[1].split("\n## ")[0]
        rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line
                and not line.startswith(f"| {PAPER_LABEL}")]
        assert rows[0] == "| dataset | model | latent | Baseline | ACAI | n |"
        assert [tuple(r.split(" | ")[0:3:2]) for r in rows[1:]] == [
            ("| mnist", "32"), ("| mnist", "256"), ("| svhn", "32"), ("| svhn", "256"), ("| cifar10", "256"),
            ("| cifar10", "1024")]
    svhn32 = rep.tables["latent_accuracy"].query("dataset == 'svhn' and latent_dim == 32")
    assert svhn32.set_index("regularizer")["mean"].to_dict() == {"none": 54.0, "acai": 55.0}
    assert "celeba" not in set(rep.tables["latent_accuracy"]["dataset"])
    assert "celeba" in set(rep.tables["reconstruction_error"]["dataset"])


def plateau_then_learned(evaluations: int, seed: int) -> list[float]:
    """A Mean Distance (x1e-3) history: on the plateau (30) for the first half, then learned (about 8)."""
    rng = np.random.default_rng(seed)
    half = evaluations // 2
    return [30.0 + rng.normal(0, 0.1) for _ in range(half)] + [8.0 + rng.normal(0, 0.1)
                                                               for _ in range(evaluations - half)]


def test_default_window_is_each_runs_own_summary_window_and_is_said(empty_store, tmp_path, capsys):
    """An 8-evaluation run counts with its last evaluation (not a "median of 20" that is mostly plateau), a
    64-evaluation run with its last 5, as their summary/*; `--last 20` still forces 20."""
    uri, client, exp = empty_store
    short, long = plateau_then_learned(8, 0), plateau_then_learned(64, 1)
    log_training_run(client, exp, "acai", "lines", "conv", 64, 0, {"mean_distance_x1e3": short,
                                                                   "mean_distance": [v / 1e3 for v in short]})
    log_training_run(client, exp, "acai", "lines", "conv", 64, 1, {"mean_distance_x1e3": long,
                                                                   "mean_distance": [v / 1e3 for v in long]})
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False)
    assert rep.per_run[["seed", "evaluations", "window"]].values.tolist() == [["0", 8, 1], ["1", 64, 5]]
    got = row(rep.tables["mean_distance"], "acai", "lines")
    medians = [short[-1], np.median(long[-5:])]
    assert (got["mean"], got["std"]) == (pytest.approx(np.mean(medians)), pytest.approx(np.std(medians)))
    assert got["mean"] < 9  # the end of training, where the old default (median of 20) gave the plateau
    forced = build_report(uri, "acai", out=tmp_path / "forced", log=False, last=20)
    assert row(forced.tables["mean_distance"], "acai", "lines")["mean"] == pytest.approx(
        np.mean([np.median(short), np.median(long[-20:])]))  # the short run's "median of 20": half plateau
    said = "the last 1 of 8 (1 run), the last 5 of 64 (1 run)"
    assert "Each run counts with the median of its last round(E·20/256) of E evaluations" in rep.markdown
    assert rep.markdown.count(said) == 1 + len(MEASUREMENTS) - sum(rep.tables[m.key].empty
                                                                    for m in MEASUREMENTS)
    assert said in (tmp_path / "out" / "mean_distance.md").read_text(encoding="utf-8")
    assert "its last 20 evaluations (`--last 20`)" in (tmp_path / "forced" / "mean_distance.md").read_text("utf-8")
    assert report.main(["--tracking-uri", uri, "--out", str(tmp_path / "o")]) == 0
    assert said in capsys.readouterr().out
    summary = client.search_runs([exp], "tags.`acai.report` = 'true'")[0]
    assert summary.data.params["report.last"] == "summary"


def test_cells_whose_runs_never_left_the_plateau_are_marked(empty_store, tmp_path):
    """AAE: both runs flagged on the plateau at every evaluation -> `†`; ACAI: one of two -> `†1/2`; the plain
    AE, logged before the flag existed -> unknown, no mark; VAE: no flag but a logged mean-image error that
    its reconstruction error never got below -> recomputed, `†`; dropout: recomputed, it left -> no mark."""
    uri, client, exp = empty_store
    stuck, left = [1.0] * EVALS, [1.0] * 10 + [0.0] * (EVALS - 10)
    blob = {"mean_distance": [0.030] * EVALS, "reconstruction_error": [0.080] * EVALS}
    learned = {"mean_distance": [0.004] * EVALS, "reconstruction_error": [0.080] * 10 + [0.01] * (EVALS - 10)}
    for seed in (0, 1):
        log_training_run(client, exp, "aae", "lines", "conv", 64, seed, blob | {"on_plateau": stuck})
    log_training_run(client, exp, "acai", "lines", "conv", 64, 0, blob | {"on_plateau": stuck})
    log_training_run(client, exp, "acai", "lines", "conv", 64, 1, learned | {"on_plateau": left})
    log_training_run(client, exp, "none", "lines", "conv", 64, 0, blob)
    log_training_run(client, exp, "vae", "lines", "conv", 64, 0, blob, once={"mean_image_error": 0.081})
    log_training_run(client, exp, "dropout", "lines", "conv", 64, 0, learned, once={"mean_image_error": 0.081})
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False)
    plateau = dict(zip(rep.per_run["run_name"], rep.per_run["plateau"]))
    assert plateau == {"aae-lines-conv-z64-s0": "never left", "aae-lines-conv-z64-s1": "never left",
                       "acai-lines-conv-z64-s0": "never left", "acai-lines-conv-z64-s1": f"left at {11 * EVERY}",
                       "none-lines-conv-z64-s0": "", "vae-lines-conv-z64-s0": "never left",
                       "dropout-lines-conv-z64-s0": f"left at {11 * EVERY}"}
    md = table_markdown(MEASURE["mean_distance"], rep.tables["mean_distance"]).splitlines()
    assert md[2] == "| dataset | model | latent | Baseline | Dropout | VAE | AAE | ACAI | n |"
    assert md[4] == ("| lines | conv | 64 | 30.00±0.00 | 4.00±0.00 | 30.00±0.00† | 30.00±0.00† | 17.00±13.00†1/2 "
                     "| Baseline:1 Dropout:1 VAE:1 AAE:2 ACAI:2 |")
    note = next(line for line in md if line.startswith("- `†`"))
    assert "never left the initial plateau" in note and "`†k/n`: k of its n runs never left" in note
    assert note.endswith("Runs that never left: VAE lines/conv/64 (1 of 1), AAE lines/conv/64 (2 of 2), "
                         "ACAI lines/conv/64 (1 of 2).")
    assert "4 of the 7 runs never left the initial plateau" in rep.markdown
    recon = (tmp_path / "out" / "reconstruction_error.md").read_text(encoding="utf-8")
    assert "| 80.00±0.00† |" in recon  # every table marks the cell: all its numbers are the plateau's
    with open(tmp_path / "out" / "runs.csv", encoding="utf-8") as f:
        assert {r["run_name"]: r["plateau"] for r in csv.DictReader(f)} == plateau
    assert rep.tables["mean_distance"].set_index("regularizer")["plateau"].to_dict() == {
        "none": 0, "dropout": 0, "vae": 1, "aae": 2, "acai": 1}
