"""Evaluate a logged model: `python src/evaluate.py RUN_ID [key=value ...] [--child] [--tracking-uri URI]`.

Recomputes the paper's measurements (reconstruction error, latent classifier accuracy, lines Mean
Distance and Smoothness, K-means clustering) for the model a run logged, on the dataset the run was
trained on (override with e.g. `dataset.path=/usr/share/datasets/fashion-mnist` or
`evaluation.kmeans_restarts=1000`), writes them to that run under `evaluate/` (or to a new child run
with --child) and prints them as a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # before TensorFlow is imported: its start-up chatter goes to fd 2 at import
    from acai.console import quiet_native_logs

    quiet_native_logs()

import mlflow  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from acai.config import DEFAULT_TRACKING_URI  # noqa: E402
from acai.errors import AcaiError, DatasetError  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def evaluate(run_id: str, overrides: list[str], tracking_uri: str, child: bool = False,
             model_uri: str | None = None) -> dict[str, float]:
    from acai.config import EvaluationConfig, build, section
    from acai.data.base import Dataset
    from acai.evaluation.evaluator import Evaluator
    from acai.tracking.loading import get_run, load_autoencoder, load_classifier, require_finished, run_config
    from acai.tracking.mlflow_run import open_existing_store

    start = time.perf_counter()

    def announce(phase: str) -> None:  # progress on stderr; stdout keeps the table
        print(f"[{time.perf_counter() - start:6.1f} s] {phase}", file=sys.stderr, flush=True)

    announce(f"loading run {run_id}, its model and its dataset")
    client = open_existing_store(tracking_uri)
    run = get_run(client, run_id)
    cfg = run_config(client, run_id)
    if model_uri is None:
        require_finished(run)
    groups = [o for o in overrides if o.startswith("dataset=")]
    if groups:  # another dataset from conf/dataset/, as `python src/train.py dataset=...` would pick it
        name = groups[-1].split("=", 1)[1]
        path = CONF / "dataset" / f"{name}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in path.parent.glob("*.yaml"))
            raise DatasetError(f"dataset={name}: no {path}; choose one of {known}")
        cfg.dataset = OmegaConf.load(path)
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o for o in overrides if o not in groups]))
    dataset = build(cfg.dataset, "dataset", Dataset)
    model = load_autoencoder(model_uri or f"runs:/{run_id}/model")
    image_shape = tuple(model.input_shape[1:])
    evaluator = Evaluator(dataset, section(cfg.evaluation, EvaluationConfig, "evaluation"), image_shape[0],
                          seed=int(cfg.seed), announce=announce)
    if evaluator.x_test.shape[1:] != image_shape:
        raise DatasetError(f"dataset={dataset.name} gives images of shape {evaluator.x_test.shape[1:]}, "
                           f"but the model takes {image_shape}")
    metrics = evaluator.evaluate(model.get_layer("encode"), model.get_layer("decode"),
                                 load_classifier(client, run_id), cluster=bool(cfg.evaluation.cluster))
    announce("logging the results")
    logged = {f"evaluate/{k}": v for k, v in metrics.items()}
    if child:
        with mlflow.start_run(experiment_id=run.info.experiment_id, run_name=f"evaluate-{run.info.run_name}",
                              tags={"mlflow.parentRunId": run_id}):
            mlflow.log_metrics(logged)
    else:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[mlflow.entities.Metric(k, v, now, 0) for k, v in logged.items()])
    announce("done")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id", help="MLflow run id of a run made by src/train.py")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. dataset.path=... evaluation.cluster=false")
    parser.add_argument("--model-uri", help="evaluate this model instead of runs:/RUN_ID/model")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help="the MLflow store (default: mlflow.db in the repository root)")
    parser.add_argument("--child", action="store_true", help="log to a new child run instead of the run itself")
    args = parser.parse_intermixed_args(argv)
    try:
        metrics = evaluate(args.run_id, args.overrides, args.tracking_uri, args.child, args.model_uri)
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    width = max(map(len, metrics))
    print(f"| {'metric':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for key, value in metrics.items():
        print(f"| {key:<{width}} | {value:.6g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
