"""Every evaluation metric, declared once: its key, when it applies, how it is computed, how it is shown.

A `Metric` is logged as `eval/<key>` at each evaluation (history, `summary/<key>`, `median20/<key>`),
`final/<key>` at the end of a run and `evaluate/<key>` by `src/evaluate.py`. `Evaluator.evaluate` goes
through `METRICS` in order and computes each metric that applies; the console's evaluation and summary
lines (`acai.console`) show those with a `Shown`.

`compute` and `applies` take an `acai.evaluation.evaluator.Evaluation`: one evaluation of one model,
whose timed stages (`test_latents`, `reconstruction_error`, `logits`, `frames`, `line_scores`,
`train_latents`, `latent_clusters`, `probe`, `pixel_clusters`) are computed once, when a metric first
asks for them, and shared by every metric that reads them; `evaluation.evaluator` holds the test data
and the settings (`evaluator.cfg`, `evaluator.dataset`). A new metric is a `Metric` added to `METRICS`
(or, from a user's package, named in `evaluation.metrics`: `from_paths`, `declared`), with a new stage
on `Evaluation` when it needs a computation of its own.

This module stays light (no TensorFlow): the console imports it before TensorFlow is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from acai.errors import ConfigError, first_line
from acai.evaluation.summary import on_plateau

if TYPE_CHECKING:
    from acai.evaluation.evaluator import Evaluation


@dataclass(frozen=True)
class Shown:
    """How a metric appears on the console (`metrics_line`): `label=<value formatted>`, in `column` order.
    A `format` of None marks a flag (1.0/0.0), shown as its bare label when set. `every_eval` False: on the
    final summary line only."""

    label: str
    format: str | None
    column: int
    every_eval: bool = True


def always(evaluation: Evaluation) -> bool:
    return True


@dataclass(frozen=True)
class Metric:
    """One number an evaluation measures (see the module's docstring)."""

    key: str
    compute: Callable[[Evaluation], float]
    applies: Callable[[Evaluation], bool] = always
    # True: measured only by the evaluations that cluster (the last one, or every one with
    # evaluation.cluster_every_eval), the slow ones
    clustering: bool = False
    shown: Shown | None = None
    description: str = ""


def labelled(evaluation: Evaluation) -> bool:
    return evaluation.evaluator.dataset.labelled


def plateau_flag(evaluation: Evaluation) -> float:
    ev = evaluation.evaluator
    return float(on_plateau(evaluation.reconstruction_error, ev.mean_image_error, ev.cfg.plateau_margin))


METRICS: list[Metric] = [
    Metric("reconstruction_error", lambda e: e.reconstruction_error,
           shown=Shown("recon", "{:.4f}", 30),
           description="mean squared error of the reconstructed test images, per value"),
    Metric("on_plateau", plateau_flag, shown=Shown("plateau", None, 40),
           description="1.0 while the reconstruction error is within evaluation.plateau_margin of the mean "
                       "test image's (eval/mean_image_error): every other number then describes the initial "
                       "plateau, not the model"),
    Metric("latent_accuracy", lambda e: e.latent_accuracy,
           applies=lambda e: e.classifier is not None and labelled(e), shown=Shown("clf", "{:.1f}%", 50),
           description="accuracy (%) of the latent classifier trained alongside the autoencoder"),
    Metric("mean_distance", lambda e: e.line_scores.mean_distance, applies=lambda e: e.evaluator.scores_interpolations,
           description="the paper's Mean Distance of interpolated lines to the nearest true line (lines only)"),
    Metric("mean_distance_x1e3", lambda e: e.line_scores.mean_distance * 1e3,
           applies=lambda e: e.evaluator.scores_interpolations, shown=Shown("MD", "{:.3g}e-3", 10),
           description="mean_distance x 1000, as the paper's tables give it"),
    Metric("smoothness", lambda e: e.line_scores.smoothness, applies=lambda e: e.evaluator.scores_interpolations,
           shown=Shown("smooth", "{:.3f}", 20),
           description="the paper's Smoothness of the interpolated lines' angles (lines only)"),
    Metric("cluster_accuracy", lambda e: e.latent_clusters, applies=labelled, clustering=True,
           shown=Shown("cluster", "{:.1f}%", 70, every_eval=False),
           description="K-means accuracy (%) on the latents"),
    Metric("probe_accuracy", lambda e: e.probe, applies=labelled, clustering=True,
           shown=Shown("probe", "{:.1f}%", 60),
           description="a logistic-regression probe's accuracy (%) on the same frozen latents"),
    Metric("cluster_accuracy_pixels", lambda e: e.pixel_clusters,
           applies=lambda e: labelled(e) and e.evaluator.clusters_pixels, clustering=True,
           description="K-means accuracy (%) on raw pixels, the reference point (once per evaluator)"),
]


def from_paths(paths: Sequence[str]) -> list[Metric]:
    """The `Metric` objects that `evaluation.metrics` names by import path (`my_package.module.NAME`)."""
    found = []
    for path in paths:
        module, _, name = str(path).rpartition(".")
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            raise ConfigError("evaluation.metrics", path,
                              f"must name a Metric as module.NAME ({first_line(e)})") from None
        if not isinstance(value, Metric):
            raise ConfigError("evaluation.metrics", path,
                              f"names a {type(value).__name__}, not an acai.evaluation.metrics.Metric")
        found.append(value)
    return found


def declared(extra: Sequence[Metric] = ()) -> list[Metric]:
    """The built-in metrics, then `extra` (one of the same key replaces the built-in one)."""
    keys = {m.key for m in extra}
    return [m for m in METRICS if m.key not in keys] + list(extra)


def console_columns(every_eval: bool = False,
                    metrics: Sequence[Metric] | None = None) -> tuple[tuple[str, str, str | None], ...]:
    """(key, label, format) of the shown metrics (default: the built-in ones) in column order: all of them
    (the final summary), or those shown on each evaluation's line."""
    shown = sorted((m for m in (METRICS if metrics is None else metrics)
                    if m.shown and (m.shown.every_eval or not every_eval)),
                   key=lambda m: m.shown.column)
    return tuple((m.key, m.shown.label, m.shown.format) for m in shown)
