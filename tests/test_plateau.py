"""The initial plateau as a fact of every evaluation: known answers through the real Evaluator (a model that
outputs the mean test image is on it, a perfect one is not), a real training run that leaves it (flag, baseline,
console marker, run tag), and the setting's bounds."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import write_tiny_mnist
from mlflow.tracking import MlflowClient

from acai.config import EvaluationConfig
from acai.errors import ConfigError
from acai.evaluation.evaluator import Evaluator
from acai.evaluation.summary import plateau_state
from acai.tracking.outbox import Outbox
from acai.training.callbacks import EvaluationCallback
from acai.training.run import train
from acai.training.spec import RunSpec


def evaluator_for(compose_cfg, *overrides: str) -> Evaluator:
    """The Evaluator a run of this config would use, on its real fixed test set."""
    cfg = compose_cfg(*overrides)
    spec = RunSpec.from_config(cfg)
    return Evaluator(spec.dataset, spec.evaluation, spec.arch.image_size(), seed=cfg.seed)


def halves(shape: tuple[int, ...], latent: int, to_latent: keras.layers.Layer,
           to_image: keras.layers.Layer) -> tuple[keras.Model, keras.Model]:
    """An encoder (flatten, `to_latent`) and a decoder (`to_image`, reshaped) for `shape` images, `latent` wide."""
    encode = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), to_latent])
    decode = keras.Sequential([keras.Input((latent,)), to_image, keras.layers.Reshape(shape)])
    return encode, decode


def test_the_lines_mean_image_error_is_the_readmes_plateau(compose_cfg):
    """The README's default ACAI run sat at recon 0.0775-0.0857 for 4 evaluations, then 0.0585: with the
    default margin 0.1 the first four are on the plateau and the fifth is off."""
    ev = evaluator_for(compose_cfg, "dataset=lines", "model=conv")
    x = ev.x_test.astype(np.float64)
    assert ev.mean_image_error == pytest.approx(np.mean((x - x.mean(0)) ** 2), rel=1e-6)
    assert 0.078 < ev.mean_image_error < 0.082
    threshold = (1 - EvaluationConfig.plateau_margin) * ev.mean_image_error
    assert all(r >= threshold for r in (0.0838, 0.0857, 0.0824, 0.0775)) and 0.0585 < threshold


def test_a_model_that_outputs_the_mean_image_is_on_the_plateau_and_a_perfect_one_is_not(compose_cfg):
    ev = evaluator_for(compose_cfg, "experiment=smoke", "dataset=lines", "model=mlp")
    shape = ev.x_test.shape[1:]
    mean_image = ev.x_test.mean(0).reshape(-1)
    constant = keras.layers.Dense(mean_image.size, kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant(mean_image))
    stuck = ev.evaluate(*halves(shape, 4, keras.layers.Dense(4), constant))
    assert stuck["reconstruction_error"] == pytest.approx(ev.mean_image_error, rel=1e-5)
    assert stuck["on_plateau"] == 1.0

    perfect = ev.evaluate(*halves(shape, mean_image.size, keras.layers.Identity(), keras.layers.Identity()))
    assert perfect["reconstruction_error"] == pytest.approx(0, abs=1e-10) and perfect["on_plateau"] == 0.0


def test_a_trained_model_leaves_the_plateau_and_its_run_says_where(tmp_path, compose_cfg, capsys):
    """A small MLP on the tiny MNIST (a bright square per class): on the plateau at its first evaluation, clearly
    off it at its last (~13 s)."""
    data = write_tiny_mnist(tmp_path / "mnist.npz")
    cfg = compose_cfg("experiment=smoke", "dataset=mnist", f"dataset.path={data}", "model=mlp", "model.hidden=[64]",
                      "regularizer=none", "trainer.total_samples=2048", "trainer.eval_every=512", "trainer.lr=5e-3",
                      "trainer.verbose=2", "evaluation.cluster=false", "tracking.log_model=false")
    run_id = train(cfg)
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(run_id)

    def history(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))

    x = np.load(data)["x_test"].astype(np.float64) / 127.5 - 1
    baseline = history("eval/mean_image_error")
    assert baseline == [(512, pytest.approx(np.mean((x - x.mean(0)) ** 2), rel=1e-4))]  # logged once
    flags, errors = history("eval/on_plateau"), history("eval/reconstruction_error")
    assert [s for s, _ in flags] == [512, 1024, 1536, 2048]
    assert [f for _, f in flags] == [float(e >= 0.9 * baseline[0][1]) for _, e in errors]
    assert flags[0][1] == 1.0 and flags[-1][1] == 0.0 and errors[-1][1] < 0.7 * baseline[0][1]
    tag = run.data.tags["acai.plateau"]
    assert tag == plateau_state([f for _, f in flags], [s for s, _ in flags]) and tag.startswith("left at ")
    assert run.data.metrics["final/on_plateau"] == 0.0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("eval ")]
    assert len(lines) == 4 and " recon=" in lines[0]
    assert [" plateau " in line for line in lines] == [f == 1.0 for _, f in flags]


def test_a_resumed_run_keeps_its_baseline_out_of_the_histories_and_its_plateau_steps_right(compose_cfg, tmp_path):
    """What `eval_history` reads back for a resumed run: the once-logged baseline (first here, as a store may
    list it) must not count as an evaluation history, nor be logged again; a run begun before the flag existed
    has flags for its last evaluations only."""
    ev = evaluator_for(compose_cfg, "experiment=smoke", "dataset=lines", "model=mlp")
    history = {"mean_image_error": [0.08], "reconstruction_error": [0.09, 0.08, 0.05], "on_plateau": [0.0]}
    callback = EvaluationCallback(ev, 16, 2, Outbox(tmp_path / "outbox", remote=False), history=history)
    assert callback.baseline_logged and "mean_image_error" not in callback.history
    assert callback.logged_until == 3 * 32  # three evaluations already logged, not one
    assert callback.plateau == "left at 96"
    fresh = EvaluationCallback(ev, 16, 2, Outbox(tmp_path / "outbox", remote=False))
    assert not fresh.baseline_logged and fresh.plateau is None


@pytest.mark.parametrize("flags, state", [([1, 1, 1], "never left"), ([1, 0, 0], "left at 64"),
                                          ([0, 1, 0, 0], "left at 96"), ([1, 0, 1], "back on at 96"),
                                          ([0, 0], "left at 32"), ([], None)])
def test_plateau_state_names_the_start_of_the_final_stretch(flags, state):
    assert plateau_state(flags, [32 * (i + 1) for i in range(len(flags))]) == state


@pytest.mark.parametrize("margin", [-0.1, 1.0, 2])
def test_plateau_margin_out_of_range_is_refused(compose_cfg, margin):
    with pytest.raises(ConfigError, match="evaluation.plateau_margin"):
        RunSpec.from_config(compose_cfg(f"evaluation.plateau_margin={margin}"))
