"""The final logging of a trained run, as named steps that a rerun never repeats.

Each step (metrics, latent plot, the models, the classifier, the critic, timing) is recorded as the tag
`acai.final.<name>` once it is in the store: a run stopped or failed part-way logs only what is left when
the same command is run again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
from mlflow.entities import LoggedModelStatus, Metric, RunTag
from mlflow.tracking import MlflowClient

from acai.networks.inference import predict
from acai.tracking.mlflow_run import log_classifier, log_critic, log_interpolator, log_keras_model
from acai.tracking.plots import latent_scatter
from acai.training.callbacks import StopOnSignal

FINAL_TAG = "acai.final."  # + the name of a step of the final logging: set once that step is in the store
PAUSE_ENV = "ACAI_PAUSE_BEFORE"  # tests only: `<step>:<file>` waits before that step while the file exists

Steps = list[tuple[str, Callable[[], None]]]


def pause_for_tests(step: str, stop: StopOnSignal) -> None:
    """`ACAI_PAUSE_BEFORE=<step>:<file>`: create `file` and wait, before `step`, until it is removed or a
    signal comes, so a test can act at a known point of a phase. Unset (always, outside tests): nothing."""
    name, _, marker = os.environ.get(PAUSE_ENV, "").partition(":")
    if name != step or not marker:
        return
    path = Path(marker)
    path.touch()
    while path.exists() and stop.signum is None:
        time.sleep(0.02)


def done_steps(run_id: str | None) -> set[str]:
    """The steps of the final logging that a resumed run already completed (none for a new run)."""
    if run_id is None:
        return set()
    tags = MlflowClient().get_run(run_id).data.tags
    return {k[len(FINAL_TAG):] for k in tags if k.startswith(FINAL_TAG)}


def log_model_once(run, name: str, log: Callable[[], None]) -> None:
    """Log a model unless the run holds a finished (READY) one of that name; one left PENDING by a kill
    or FAILED by a write error is deleted first, so the run ends with exactly one model of each name."""
    client = MlflowClient()
    found = client.search_logged_models([run.info.experiment_id],
                                        filter_string=f"source_run_id = '{run.info.run_id}'")
    mine = [m for m in found if m.name == name]
    if any(m.status == LoggedModelStatus.READY for m in mine):
        return
    for model in mine:
        client.delete_logged_model(model.model_id)
    log()


def run_final_steps(steps: Steps, done: set[str], stop: StopOnSignal,
                    announce: Callable[[str], None] = lambda name: None) -> None:
    """The final logging as named steps, each recorded as the tag `acai.final.<name>` once in the store:
    a rerun after a stop or a failure does what is left and repeats nothing. A signal stops between steps;
    `announce` is told each step as it starts (the console's progress line)."""
    for name, step in steps:
        if name in done:
            continue
        pause_for_tests(name, stop)
        stop.check(f"during the final logging (before {name})")
        announce(name.replace("_", " "))
        step()
        mlflow.set_tag(FINAL_TAG + name, "done")
        done.add(name)


def log_metrics_step(run, metrics: dict[str, float], tags: dict[str, str]) -> Callable[[], None]:
    """The final metrics with their tags and this step's own tag in one write: never logged twice, even if
    killed right after."""
    def log_metrics() -> None:
        now = int(time.time() * 1000)
        MlflowClient().log_batch(
            run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()] + [RunTag(FINAL_TAG + "metrics", "done")])
    return log_metrics


def latent_plot_step(run, model, evaluator, dataset) -> Callable[[], None]:
    """The test latents' PCA scatter, coloured by label where the data has labels."""
    def latent_plot() -> None:
        latents = predict(model.encode_model, evaluator.x_test)
        fig = latent_scatter(latents, evaluator.y_test if dataset.labelled else None,
                             f"{run.info.run_name}: test latents (PCA)", dataset.label_name)
        try:
            mlflow.log_figure(fig, "latent_space.png")
        finally:
            plt.close(fig)
    return latent_plot


def model_steps(run, model) -> Steps:
    """The logged models (autoencoder, interpolator: one export shared), the classifier and the critic."""
    exported: list = []

    def export():
        if not exported:
            exported.append(model.export())
        return exported[0]

    steps = [("model", lambda: log_model_once(run, "model", lambda: log_keras_model(export()))),
             ("interpolator", lambda: log_model_once(run, "interpolator", lambda: log_interpolator(export())))]
    if model.classifier is not None:
        steps.append(("classifier", lambda: log_classifier(model.classifier)))
    steps.append(("critic", lambda: log_critic(model.regularizer)))
    return steps
