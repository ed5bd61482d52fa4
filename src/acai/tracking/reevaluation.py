"""Evaluating a logged model after training (`src/evaluate.py`): the run's config and dataset, its model
measured by the `Evaluator`, the results logged back to the run (or a child run) under `evaluate/`."""

from __future__ import annotations

import sys
import time

import mlflow
from omegaconf import OmegaConf

from acai.config import PROJECT_ROOT
from acai.errors import DatasetError

CONF = PROJECT_ROOT / "conf"


def evaluate_logged_run(run_id: str, overrides: list[str], tracking_uri: str, *, child: bool = False,
                        model_uri: str | None = None) -> dict[str, float]:
    """The run's model (or `model_uri`) measured on its dataset (`overrides` change the run's config), the
    metrics logged to the run under `evaluate/` (to a new child run with `child`) and returned."""
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
