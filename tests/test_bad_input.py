"""The bad-input catalogue (docs: README "Errors"): every case fails before training with one line that
names the setting or file, the bad value and what is allowed. One row per case."""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pytest
from conftest import ROOT, write_tiny_mnist
from hydra.errors import ConfigCompositionException
from mlflow.tracking import MlflowClient

from acai.errors import AcaiError
from acai.training.run import config_key, train

sys.path.insert(0, str(ROOT / "src"))
import evaluate  # noqa: E402


def npz(tmp_path, **arrays):
    base = dict(np.load(write_tiny_mnist(tmp_path / "ok.npz")))
    base.update(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **base)
    return ["dataset=mnist", f"dataset.path={path}"]


def idx_folder(tmp_path, truncate: bool):
    from test_image_data import write_idx_folder

    write_idx_folder(tmp_path)
    if truncate:
        p = tmp_path / "train-images-idx3-ubyte.gz"
        p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-50]))
    return ["dataset=mnist", f"dataset.path={tmp_path}"]


# (id, overrides or a function of tmp_path giving them, pattern the one-line message must match)
COMPOSE_ROWS = [
    ("unknown dataset", ["dataset=cifar11"], r"dataset/cifar11"),
    ("unknown model", ["model=resnet"], r"model/resnet"),
    ("unknown regularizer", ["regularizer=vea"], r"regularizer/vea"),
    ("misspelt key", ["trainer.batchsize=32"], r"batchsize"),
    ("wrong type", ["trainer.batch_size=many"], r"many"),
]

TRAIN_ROWS = [
    ("negative learning rate", ["trainer.lr=-0.001"], r"trainer.lr=-0.001 .*> 0"),
    ("zero batch size", ["trainer.batch_size=0"], r"trainer.batch_size=0 .*> 0"),
    ("batch size of one", ["trainer.batch_size=1"], r"trainer.batch_size=1 .*interpolation pairs need two"),
    ("zero training length", ["trainer.total_samples=0"], r"trainer.total_samples=0 .*> 0"),
    ("negative eval interval", ["trainer.eval_every=-1"], r"trainer.eval_every=-1 .*> 0"),
    ("float16 precision", ["trainer.precision=mixed_float16"], r"trainer.precision='mixed_float16' .*mixed_bfloat16"),
    ("latent size does not fit conv", ["model.latent_dim=50"], r"model.latent_dim=50 .*multiple of 4"),
    ("latent width not a power of two", ["model.latent_width=3"], r"model.latent_width=3 .*power of two"),
    ("mlp latent of zero", ["model=mlp", "model.latent_dim=0"], r"model.latent_dim=0 .*positive"),
    ("critic depth on the mlp", ["model=mlp", "regularizer.advdepth=32"], r"regularizer.advdepth=32 .*model.hidden"),
    ("negative k-means seed", ["evaluation.kmeans_seed=-1"], r"evaluation.kmeans_seed=-1 .*>= 0"),
    ("regularizer option misspelt", ["+regularizer.lamda=0.5"], r"regularizer.lamda"),
    ("regularizer option wrong type", ["regularizer.advweight=high"], r"regularizer.advweight"),
    ("dropout keep out of range", ["regularizer=dropout", "regularizer.keep_prob=1.5"], r"keep_prob=1.5 .*\(0, 1\]"),
    ("unknown _target_", ["regularizer._target_=acai.nothing.Here"], r"regularizer._target_"),
    ("images of the wrong shape", lambda t: npz(t, x_train=np.zeros((256, 28), np.uint8)), r"shape \(256, 28\)"),
    ("wrong channel count", lambda t: npz(t, x_test=np.zeros((128, 28, 28, 2), np.uint8)), r"N x H x W x 1\|3"),
    ("wrong value range/dtype", lambda t: npz(t, x_test=np.zeros((128, 28, 28), np.float32)), r"uint8 pixels"),
    ("labels out of range", lambda t: npz(t, y_test=np.full(128, 12, np.uint8)), r"labels span 12..12"),
    ("images larger than the model", lambda t: npz(t, x_train=np.zeros((256, 40, 40), np.uint8),
                                                   x_test=np.zeros((128, 40, 40), np.uint8)), r"larger than"),
    ("missing dataset file", ["dataset=mnist", "dataset.path=/no/such/mnist.npz"], r"does not exist"),
    ("truncated IDX file", lambda t: idx_folder(t, truncate=True), r"truncated or corrupt"),
    ("corrupt npz", lambda t: ["dataset=mnist", f"dataset.path={(t / 'x.npz').write_bytes(b'junk') and t / 'x.npz'}"],
     r"corrupt \.npz"),
    ("unreachable tracking server", ["tracking.uri=http://127.0.0.1:9"],
     r"tracking.uri='http://127.0.0.1:9': the MLflow server does not answer"),
    ("unwritable tracking store", lambda t: [f"tracking.uri=sqlite:///{(t / 'f').write_text('x') and t / 'f'}/m.db"],
     r"tracking.uri=.*not writable"),
    ("resume of an unknown run", ["resume=0123456789abcdef"], r"no such MLflow run"),
]


@pytest.mark.parametrize("name,overrides,pattern", COMPOSE_ROWS, ids=[r[0] for r in COMPOSE_ROWS])
def test_compose_rows(compose_cfg, name, overrides, pattern):
    with pytest.raises(ConfigCompositionException, match=pattern):
        compose_cfg(*overrides)


@pytest.mark.parametrize("name,overrides,pattern", TRAIN_ROWS, ids=[r[0] for r in TRAIN_ROWS])
def test_train_rows(compose_cfg, tmp_path, name, overrides, pattern):
    args = overrides(tmp_path) if callable(overrides) else overrides
    cfg = compose_cfg("experiment=smoke", *args)
    with pytest.raises(AcaiError, match=pattern) as info:
        train(cfg)
    assert "\n" not in str(info.value)
    uri = cfg.tracking.uri
    if "not writable" not in pattern and not uri.startswith("http"):  # nothing trained: no run was started
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("acai")
        assert exp is None or not client.search_runs([exp.experiment_id])


def test_corrupt_checkpoint_row(compose_cfg, tmp_path):
    cfg = compose_cfg("experiment=smoke", "model=mlp", f"trainer.checkpoint_dir={tmp_path}/ck")
    key = config_key(cfg)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("acai", artifact_location=(tmp_path / "mlruns").as_uri())
    client.create_run(exp, tags={"acai.config_key": key})  # an unfinished run of this config
    folder = tmp_path / "ck" / key
    folder.mkdir(parents=True)
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    (folder / "ckpt-1.index").write_bytes(b"\x00garbage" * 10)
    (folder / "ckpt-1.data-00000-of-00001").write_bytes(b"garbage")
    with pytest.raises(AcaiError, match=r"checkpoint .*ckpt-1 is corrupt or belongs to a different model"):
        train(cfg)


def test_unknown_run_id_in_evaluate_row(compose_cfg, capsys):
    uri = compose_cfg().tracking.uri
    MlflowClient(uri).create_experiment("acai")
    assert evaluate.main(["ffffffffffffffff", "--tracking-uri", uri]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no such MLflow run" in errors[0]
