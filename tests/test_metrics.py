"""The evaluation metrics are declared once (`acai.evaluation.metrics`): the evaluator measures exactly the
declared metrics that apply, in their order, each shared stage once and timed under its phase; the console
reads labels and formats from the declarations; a metric named in `evaluation.metrics` is measured and shown."""

from __future__ import annotations

import keras
import pytest

from acai.console import metrics_line
from acai.evaluation import metrics
from acai.evaluation.evaluator import Evaluator
from acai.evaluation.metrics import Metric, Shown, console_columns
from acai.training.spec import RunSpec


def evaluator_for(compose_cfg, *overrides: str) -> Evaluator:
    cfg = compose_cfg(*overrides)
    spec = RunSpec.from_config(cfg)
    evaluation, dataset, arch = spec.evaluation, spec.dataset, spec.arch
    return Evaluator(dataset, evaluation, arch.image_size(), seed=cfg.seed)


def linear_halves(shape, latent: int = 8):
    keras.utils.set_random_seed(0)
    encode = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(latent)])
    decode = keras.Sequential([keras.Input((latent,)), keras.layers.Dense(int(shape[0] * shape[1] * shape[2])),
                               keras.layers.Reshape(shape)])
    classifier = keras.Sequential([keras.Input((latent,)), keras.layers.Dense(10)])
    return encode, decode, classifier


def test_the_built_in_metrics_keep_their_keys_and_console_columns():
    assert [m.key for m in metrics.METRICS] == [
        "reconstruction_error", "on_plateau", "latent_accuracy", "mean_distance", "mean_distance_x1e3", "smoothness",
        "cluster_accuracy", "probe_accuracy", "cluster_accuracy_pixels"]
    assert console_columns() == (
        ("mean_distance_x1e3", "MD", "{:.3g}e-3"), ("smoothness", "smooth", "{:.3f}"),
        ("reconstruction_error", "recon", "{:.4f}"), ("on_plateau", "plateau", None),
        ("latent_accuracy", "clf", "{:.1f}%"), ("probe_accuracy", "probe", "{:.1f}%"),
        ("cluster_accuracy", "cluster", "{:.1f}%"))
    assert console_columns(every_eval=True) == console_columns()[:-1]  # clustering: in the final summary


def test_an_evaluation_measures_the_declared_metrics_that_apply_once_each(compose_cfg):
    ev = evaluator_for(compose_cfg, "experiment=smoke", "dataset=lines", "model=mlp")
    announced: list[str] = []
    ev.announce = announced.append
    encode, decode, classifier = linear_halves(ev.x_test.shape[1:])
    every = ev.evaluate(encode, decode, classifier)
    assert list(every) == ["reconstruction_error", "on_plateau", "latent_accuracy", "mean_distance",
                           "mean_distance_x1e3", "smoothness"]
    assert every["mean_distance_x1e3"] == pytest.approx(every["mean_distance"] * 1e3)
    assert list(ev.timings) == ["encode_test", "classifier", "decode_interpolations", "lines_metrics"]
    assert len(announced) == 4 and announced[0].startswith("encode and reconstruct")
    final = ev.evaluate(encode, decode, None, cluster=True)
    assert list(final) == ["reconstruction_error", "on_plateau", "mean_distance", "mean_distance_x1e3",
                           "smoothness", "cluster_accuracy", "probe_accuracy", "cluster_accuracy_pixels"]
    assert {k: v for k, v in final.items() if k in every} == {k: v for k, v in every.items() if k in final}
    assert list(ev.timings)[4:] == ["train_set", "encode_train", "kmeans", "probe", "kmeans_pixels"]


LATENT_SCALE = Metric("latent_scale", lambda e: float(abs(e.test_latents).mean()), shown=Shown("scale", "{:.2f}", 35))


def test_a_metric_named_in_the_config_is_measured_and_shown(compose_cfg):
    ev = evaluator_for(compose_cfg, "experiment=smoke", "dataset=lines", "model=mlp",
                       "evaluation.metrics=[test_metrics.LATENT_SCALE]")
    encode, decode, _ = linear_halves(ev.x_test.shape[1:])
    measured = ev.evaluate(encode, decode)
    assert list(measured)[-1] == "latent_scale" and measured["latent_scale"] > 0
    assert metrics_line({"reconstruction_error": 0.08, "latent_scale": 1.5, "on_plateau": 1.0},
                        console_columns(metrics=ev.declared)) == "recon=0.0800 scale=1.50 plateau"
    assert all(m.key != "latent_scale" for m in metrics.METRICS)  # the built-in list is left as it was
