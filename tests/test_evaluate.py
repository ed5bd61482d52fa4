"""`src/evaluate.py` on real logged runs, and its errors for bad run ids, missing models, wrong data."""

import sys

import pytest
from conftest import FASHION, ROOT
from mlflow.tracking import MlflowClient

from acai.tracking.mlflow_run import resolve_uri
from acai.training.run import train

sys.path.insert(0, str(ROOT / "src"))
import evaluate  # noqa: E402


@pytest.fixture
def lines_run(smoke_run):
    return smoke_run


def test_evaluate_writes_metrics_to_the_run_and_prints_a_table(lines_run, capsys):
    cfg, run_id = lines_run
    assert evaluate.main([run_id, "--tracking-uri", cfg.tracking.uri, "evaluation.cluster=false"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "| mean_distance" in out and "| latent_accuracy" in out
    # progress by phase on stderr, each line time-stamped: "[   1.2 s] decode 8 interpolations"
    phases = [line.split("] ", 1)[1] for line in captured.err.splitlines() if line.startswith("[")]
    assert phases[0] == f"loading run {run_id}, its model and its dataset" and phases[-2:] == ["logging the results",
                                                                                                "done"]
    assert any(p.startswith("decode ") for p in phases) and any(p.startswith("Mean Distance") for p in phases)
    metrics = MlflowClient(resolve_uri(cfg.tracking.uri)).get_run(run_id).data.metrics
    assert {"evaluate/mean_distance", "evaluate/smoothness", "evaluate/latent_accuracy"} <= set(metrics)
    # the test set is fixed, so a re-evaluation reproduces the run's own last evaluation
    assert metrics["evaluate/mean_distance"] == pytest.approx(metrics["eval/mean_distance"], rel=1e-4)


def test_evaluate_child_run(lines_run):
    cfg, run_id = lines_run
    assert evaluate.main([run_id, "--tracking-uri", cfg.tracking.uri, "--child", "evaluation.cluster=false"]) == 0
    client = MlflowClient(resolve_uri(cfg.tracking.uri))
    exp = client.get_run(run_id).info.experiment_id
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{run_id}'")
    assert len(children) == 1 and "evaluate/reconstruction_error" in children[0].data.metrics


def test_unknown_run_id_is_a_clear_error(compose_cfg, capsys, tmp_path):
    cfg = compose_cfg()
    assert evaluate.main(["0123456789abcdef", "--tracking-uri", cfg.tracking.uri]) == 2
    assert "there is no MLflow store at" in capsys.readouterr().err  # never creates an empty store
    MlflowClient(resolve_uri(cfg.tracking.uri)).create_experiment("acai")
    assert evaluate.main(["0123456789abcdef", "--tracking-uri", cfg.tracking.uri]) == 2
    assert "no such MLflow run" in capsys.readouterr().err


def test_run_without_model_is_a_clear_error(compose_cfg, capsys):
    cfg = compose_cfg("model=mlp", "regularizer=none", "experiment=smoke", "tracking.log_model=false")
    run_id = train(cfg)
    assert evaluate.main([run_id, "--tracking-uri", cfg.tracking.uri]) == 2
    assert "could not be loaded" in capsys.readouterr().err


@pytest.mark.skipif(not FASHION.exists(), reason="dataset-fashion-mnist not installed")
def test_dataset_that_does_not_match_the_model_is_a_clear_error(compose_cfg, capsys):
    cfg = compose_cfg("dataset=fashion_mnist", f"dataset.path={FASHION}", "dataset.test_limit=600", "model=mlp",
                      "regularizer=none", "experiment=smoke")
    run_id = train(cfg)  # a 28x28 MLP: 32x32 lines do not fit it
    assert evaluate.main([run_id, "--tracking-uri", cfg.tracking.uri, "dataset=lines"]) == 2
    assert "larger than the model's input size 28x28" in capsys.readouterr().err
    assert evaluate.main([run_id, "--tracking-uri", cfg.tracking.uri, "dataset=imagenet"]) == 2
    assert "choose one of" in capsys.readouterr().err
