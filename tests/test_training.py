"""End-to-end runs through the real pipeline: Hydra config -> training -> MLflow store under tmp_path."""

import json
import subprocess
import sys

import keras
import mlflow
import numpy as np
import pytest
from conftest import CONF, MODELS, compose_in, dataset_overrides
from mlflow.tracking import MlflowClient

from acai.config import build
from acai.data.lines import Lines
from acai.networks.conv import ConvArchitecture
from acai.regularizers.base import Regularizer
from acai.tracking.mlflow_run import log_keras_model, resolve_uri
from acai.training.autoencoder import Autoencoder
from acai.training.run import train

REGULARIZERS = sorted(p.stem for p in (CONF / "regularizer").glob("*.yaml"))


def artifacts(client, run_id, path=""):
    out = []
    for f in client.list_artifacts(run_id, path):
        out += artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def check_run(cfg, run_id, lines: bool):
    client = MlflowClient(resolve_uri(cfg.tracking.uri))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"{cfg.regularizer.name}-{cfg.dataset.name}-{cfg.model.name}-z{cfg.model.latent_dim}-s0"
    params = run.data.params
    assert params["trainer.batch_size"] == "16" and params["regularizer.name"] == cfg.regularizer.name
    assert params["model.latent_dim"] == str(cfg.model.latent_dim)  # resolved, not "${dataset.latent_dim}"
    metrics = run.data.metrics
    expected = {"train/loss", "train/reconstruction", "eval/reconstruction_error", "eval/latent_accuracy",
                "summary/latent_accuracy", "summary/evaluations", "eval/cluster_accuracy",
                "eval/cluster_accuracy_pixels", "eval/probe_accuracy", "time/images_per_second"}
    if lines:
        expected |= {"eval/mean_distance", "eval/mean_distance_x1e3", "eval/smoothness", "summary/smoothness"}
    assert expected <= set(metrics), expected - set(metrics)
    assert all(np.isfinite(v) for k, v in metrics.items() if k.startswith("train/"))
    assert not [k for k in metrics if k.startswith("median20/")]  # 2 evaluations: no median of 20 to give
    assert metrics["summary/evaluations"] == 1
    assert metrics["summary/latent_accuracy"] == metrics["final/latent_accuracy"]
    history = client.get_metric_history(run_id, "eval/reconstruction_error")
    assert [m.step for m in history] == [32, 64]
    files = artifacts(client, run_id)
    assert "config.yaml" in files and "latent_space.png" in files
    assert any("interpolations" in f for f in files) and any("reconstructions" in f for f in files)
    return client, run


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("regularizer", REGULARIZERS)
def test_smoke_run_on_lines_logs_everything(compose_cfg, model, regularizer):
    cfg = compose_cfg(f"model={model}", f"regularizer={regularizer}", "experiment=smoke")
    run_id = train(cfg)
    client, _ = check_run(cfg, run_id, lines=True)
    loaded = mlflow.keras.load_model(f"runs:/{run_id}/model")
    x = Lines(test_size=4).test_set()[0]
    assert loaded(x).shape == x.shape
    assert {"encode", "decode"} <= {layer.name for layer in loaded.layers}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("regularizer", REGULARIZERS)
def test_smoke_run_on_small_image_set(compose_cfg, tiny_mnist, model, regularizer):
    """Also covers, per regularizer, the speed options a CPU user gets: the mlp with XLA (what
    jit_compile=auto picks for it on a CPU) and the conv in mixed bfloat16."""
    fast = "trainer.jit_compile=auto" if model == "mlp" else "trainer.precision=mixed_bfloat16"
    cfg = compose_cfg(*dataset_overrides("mnist", tiny_mnist), f"model={model}", f"regularizer={regularizer}",
                      "experiment=smoke", fast)
    _, run = check_run(cfg, train(cfg), lines=False)
    assert run.data.params["trainer.jit_compile" if model == "mlp" else "trainer.precision"] == fast.split("=")[1]
    loaded = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    x = np.zeros((2, 32, 32, 1) if model == "conv" else (2, 28, 28, 1), np.float32)
    out = keras.ops.convert_to_numpy(loaded(x))
    assert out.shape == x.shape and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.parametrize("model", MODELS)
def test_smoke_run_on_real_fashion_mnist(compose_cfg, model):
    cfg = compose_cfg(*dataset_overrides("fashion_mnist", None), f"model={model}", "experiment=smoke")
    check_run(cfg, train(cfg), lines=False)


@pytest.fixture(scope="module")
def logged_models(tmp_path_factory):
    """Every regularizer's autoencoder after one training step, logged as src/train.py logs it."""
    tmp = tmp_path_factory.mktemp("logged_models")
    uri = f"sqlite:///{tmp}/m.db"
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("reload", artifact_location=(tmp / "art").as_uri())
    x, y = Lines(test_size=32).test_set()
    out = {}
    for regularizer in REGULARIZERS:
        keras.utils.set_random_seed(0)
        reg = build(compose_in(tmp, f"regularizer={regularizer}").regularizer, "regularizer", Regularizer)
        if regularizer == "vqvae":
            reg.codebook_size = 256
        model = Autoencoder(ConvArchitecture(depth=8), reg, (32, 32, 1), 10)
        model.compile(jit_compile=False)
        model.train_on_batch(x, y)
        with mlflow.start_run(experiment_id=exp) as run:
            log_keras_model(model.export())
        out[regularizer] = (run.info.run_id, model)
    return uri, x, out


@pytest.mark.parametrize("regularizer", REGULARIZERS)
def test_logged_model_reloads_and_reproduces_outputs(logged_models, regularizer):
    uri, x, models = logged_models
    run_id, model = models[regularizer]
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.keras.load_model(f"runs:/{run_id}/model")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)
    z = loaded.get_layer("encode")(x)
    np.testing.assert_allclose(z, model.encode(x), atol=1e-5)
    np.testing.assert_allclose(loaded.get_layer("decode")(z), model.decode(z), atol=1e-5)


LOAD_ELSEWHERE = """
import json, sys
import keras, mlflow, numpy as np
from mlflow.artifacts import download_artifacts
uri, folder, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
mlflow.set_tracking_uri(uri)
x = np.load(folder + "/x.npy")
for name, run_id in runs.items():
    via_mlflow = mlflow.keras.load_model(f"runs:/{run_id}/model")
    path = download_artifacts(f"runs:/{run_id}/model/data/model.keras", dst_path=folder + "/" + name)
    via_keras = keras.saving.load_model(path, safe_mode=True)
    np.save(f"{folder}/{name}.npy", np.stack([via_mlflow(x), via_keras(x)]))
assert not [m for m in sys.modules if m.split(".")[0] == "acai"], "the project was imported"
print("loaded", len(runs))
"""


@pytest.mark.slow
def test_logged_models_load_where_the_project_was_never_imported(logged_models, tmp_path):
    """Plain `mlflow.keras.load_model` and `keras.saving.load_model` (safe mode) in a fresh process."""
    uri, x, models = logged_models
    np.save(tmp_path / "x.npy", x)
    runs = {name: run_id for name, (run_id, _) in models.items()}
    done = subprocess.run([sys.executable, "-c", LOAD_ELSEWHERE, uri, str(tmp_path), json.dumps(runs)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"loaded {len(runs)}" in done.stdout
    for name, (_, model) in models.items():
        for out in np.load(tmp_path / f"{name}.npy"):
            np.testing.assert_allclose(out, model(x), atol=1e-5, err_msg=name)
