"""The bad-input catalogue (docs/errors.md): every case fails before training with one line that
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
from acai.training.run import train
from acai.training.spec import config_key

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


def colour_files(tmp_path, kind: str) -> list[str]:
    """Files of the colour datasets, broken in one way each."""
    from datafiles import cifar_records, write_cifar10, write_images, write_svhn
    from scipy.io import savemat

    if kind == "svhn misnamed":
        folder = write_svhn(tmp_path / "svhn")
        (folder / "test_32x32.mat").rename(folder / "test.mat")
        return ["dataset=svhn", f"dataset.path={folder}"]
    if kind == "svhn no X":
        folder = write_svhn(tmp_path / "svhn")
        savemat(folder / "train_32x32.mat", {"images": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((4, 1))})
        return ["dataset=svhn", f"dataset.path={folder}"]
    if kind == "cifar partial record":
        bins = write_cifar10(tmp_path / "cifar")
        (bins / "test_batch.bin").write_bytes(cifar_records(np.arange(5)) + b"\x01\x02")
        return ["dataset=cifar10", f"dataset.path={bins}"]
    if kind == "empty folder":
        (tmp_path / "images").mkdir()
        return ["dataset=folder", f"dataset.path={tmp_path / 'images'}"]
    if kind == "nothing readable":
        folder = write_images(tmp_path / "images", 6, ["a", "b"])
        for f in folder.rglob("*.jpg"):
            f.write_bytes(f.read_bytes()[:40])
        return ["dataset=folder", f"dataset.path={folder}", "dataset.test_size=2"]
    if kind == "cropped to nothing":
        return ["dataset=folder", f"dataset.path={write_images(tmp_path / 'images', 6, size=(24, 24))}",
                "dataset.test_size=2", "dataset.crop=[30,30,0,0]"]
    if kind == "classes differ":
        return ["dataset=folder", f"dataset.path={write_images(tmp_path / 'images', 6, ['a', 'b'])}",
                "dataset.test_size=2", "dataset.num_classes=10"]
    raise ValueError(kind)


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
    ("unknown strategy", ["trainer.strategy=horovod"], r"trainer.strategy='horovod' .*none \(one device\) or mirrored"),
    ("XLA forced under mirrored", ["trainer.strategy=mirrored", "trainer.jit_compile=true"],
     r"trainer.jit_compile='[Tt]rue' .*auto or false under trainer.strategy=mirrored"),
    ("latent size does not fit conv", ["model.latent_dim=50"], r"model.latent_dim=50 .*multiple of 4"),
    ("latent width not a power of two", ["model.latent_width=3"], r"model.latent_width=3 .*power of two"),
    ("mlp latent of zero", ["model=mlp", "model.latent_dim=0"], r"model.latent_dim=0 .*positive"),
    ("misspelt key added with +", ["+model.latnt_dim=16"], r"model.latnt_dim=16 .*did you mean model.latent_dim\?"),
    ("latent size lists every size", ["model.latent_dim=17"], r"4, 8, 16, 32, 64, 128, 256"),
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
    ("test limit of zero", ["dataset.test_limit=0"], r"dataset.test_limit=0 .*>= 2"),
    ("negative test limit", ["dataset.test_limit=-5"], r"dataset.test_limit=-5 .*>= 2"),
    ("one test image", lambda t: npz(t, x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8)),
     r"has 1 test image\(s\); an evaluation needs at least 2"),
    ("images of 0x0 pixels", lambda t: npz(t, x_train=np.zeros((256, 0, 0), np.uint8),
                                           x_test=np.zeros((128, 0, 0), np.uint8)), r"0x0 pixels"),
    ("fractional labels", lambda t: npz(t, y_test=np.full(128, 3.7)), r"whole class numbers; found 3.7"),
    ("NaN labels", lambda t: npz(t, y_train=np.r_[np.zeros(255), np.nan]), r"found nan \(at index 255\)"),
    ("evaluation interval longer than training", ["trainer.total_samples=64", "trainer.eval_every=100000"],
     r"trainer.eval_every=100000 .*<= trainer.total_samples=64"),
    ("empty experiment name", ["tracking.experiment="], r"tracking.experiment='' .*non-empty"),
    ("negative seed", ["seed=-1"], r"seed=-1 .*0 \.\. 2\^32"),
    ("batch too large for memory", ["trainer.batch_size=1000000"], r"trainer.batch_size=1000000 .*GiB .*fits"),
    ("SVHN file missing or misnamed", lambda t: colour_files(t, "svhn misnamed"),
     r"dataset.path=.*no test_32x32.mat in that folder \(it holds \['test.mat', 'train_32x32.mat'\]\)"),
    ("SVHN .mat without X", lambda t: colour_files(t, "svhn no X"), r"train_32x32.mat: no variable X; SVHN's"),
    ("CIFAR-10 file not whole records", lambda t: colour_files(t, "cifar partial record"),
     r"test_batch.bin: 15,367 bytes is not a whole number of 3,073-byte CIFAR-10 records"),
    ("CIFAR-10 without dataset.path offline", ["dataset=cifar10", "dataset.path=/no/such/cifar"],
     r"dataset.path='/no/such/cifar' does not exist; give the cifar-10-batches-bin/ folder"),
    ("empty image folder", lambda t: colour_files(t, "empty folder"), r"dataset.path=.* holds no image"),
    ("no readable image in a folder", lambda t: colour_files(t, "nothing readable"), r"no readable image left"),
    ("images cropped to nothing", lambda t: colour_files(t, "cropped to nothing"),
     r"no readable image left .*24x24 pixels: nothing is left after dataset.crop"),
    ("folder without a path", ["dataset=folder"], r"dataset.path=None .*set dataset.path"),
    ("folder classes differ from num_classes", lambda t: colour_files(t, "classes differ"),
     r"dataset.num_classes=10 .*has 2 class sub-folder\(s\) \['a', 'b'\]"),
    ("folder channel count", ["dataset=folder", "dataset.channels=4"], r"dataset.channels=4 .*1 \(grayscale\) or 3"),
    ("run name longer than MLflow stores", ["tracking.run_name=" + "r" * 251],
     r"tracking.run_name='r{40}\.\.\.' is not valid: is 251 characters; MLflow stores at most 250"),
    ("experiment name longer than MLflow stores", ["tracking.experiment=" + "e" * 501],
     r"tracking.experiment='e{40}\.\.\.' is not valid: is 501 characters; MLflow stores at most 500"),
    ("store path is a folder", lambda t: [f"tracking.uri=sqlite:///{t}"],
     r"tracking.uri=.*: .* is a folder; give the path of the database file in it"),
    ("store file is not a database",
     lambda t: [f"tracking.uri=sqlite:///{(t / 'x.db').write_text('x') and t / 'x.db'}"],
     r"tracking.uri=.*x.db is not an SQLite database"),
    ("checkpoint folder is a file", lambda t: [f"trainer.checkpoint_dir={(t / 'f').write_text('x') and t / 'f'}"],
     r"trainer.checkpoint_dir=.*must be a folder"),
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
    store_broken = any(s in pattern for s in ("not writable", "is a folder", "not an SQLite"))
    if not store_broken and not uri.startswith("http"):  # nothing trained: no run was started
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("smoke")
        assert exp is None or not client.search_runs([exp.experiment_id])


def test_corrupt_checkpoint_row(compose_cfg, tmp_path):
    cfg = compose_cfg("experiment=smoke", "model=mlp", f"trainer.checkpoint_dir={tmp_path}/ck")
    key = config_key(cfg)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("smoke", artifact_location=(tmp_path / "mlruns").as_uri())
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


def test_resume_with_another_setting_is_refused_not_dropped(tmp_path):
    """`resume=<id> trainer.batch_size=16` used to continue with the logged batch size, silently."""
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / "src" / "train.py"), "resume=0123456789abcdef",
                           "trainer.batch_size=16", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-2000:]
    assert "resume='0123456789abcdef' is not valid" in errors[0]
    assert "trainer.batch_size=16 would be ignored" in errors[0]


def test_a_full_disk_is_one_line_and_the_run_is_not_left_running(compose_cfg, tmp_path):
    import subprocess

    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs as a full disk")
    try:
        cfg = compose_cfg("experiment=smoke", "model=mlp", f"trainer.checkpoint_dir={full}")
        with pytest.raises(AcaiError, match=r"no space left on the device .*free space and rerun to resume") as info:
            train(cfg)
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)
    assert "\n" not in str(info.value)
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert run.info.status == "FAILED"


def test_tools_on_a_run_that_has_not_finished_or_whose_artifacts_moved(compose_cfg, tmp_path, capsys):
    import shutil

    cfg = compose_cfg("experiment=smoke", "model=mlp", "tracking.log_model=false")
    run_id = train(cfg)
    uri = cfg.tracking.uri
    client = MlflowClient(uri)
    client.set_terminated(run_id, "KILLED")
    assert evaluate.main([run_id, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id} has not finished (killed)" in err and f"resume={run_id}" in err
    shutil.move(tmp_path / "mlruns", tmp_path / "moved")
    client.set_terminated(run_id, "FINISHED")
    assert evaluate.main([run_id, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id}: its artifact folder {tmp_path / 'mlruns'}" in err and "(moved or deleted?)" in err


def test_interpolate_on_a_saved_model_export_says_what_it_is(tmp_path):
    import keras
    import mlflow

    from acai.errors import TrackingError
    from acai.tracking.loading import load_autoencoder

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    exp = mlflow.create_experiment("e", artifact_location=(tmp_path / "mlruns").as_uri())
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    signature = mlflow.models.infer_signature(np.zeros((1, 4), np.float32), np.zeros((1, 2), np.float32))
    with mlflow.start_run(experiment_id=exp):
        info = mlflow.keras.log_model(model, name="model", save_exported_model=True, signature=signature)
    with pytest.raises(TrackingError, match=r"is a .*not a Keras model \(logged with save_exported_model=True\?\)"):
        load_autoencoder(info.model_uri)


def test_a_postgresql_store_without_its_driver_names_the_server_extra(compose_cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as where the `server` extra is not installed
    cfg = compose_cfg("experiment=smoke", "tracking.uri=postgresql://mlflow@127.0.0.1:1/mlflow")
    with pytest.raises(AcaiError, match=r"tracking.uri='postgresql://.*driver psycopg.*pip install -e '.\[server\]'"):
        train(cfg)


def test_infinite_evaluations_in_a_report_are_undefined_not_numbers(tmp_path):
    """MLflow's SQL store keeps an infinite metric as +-1.797e308: it came back as a number and made the
    mean 1e308. It is read back as infinity and skipped like NaN, and the table's notes say so."""
    import math

    from test_report import EVALS, MEASURE, history, log_training_run

    from acai.reporting.report import build_report
    from acai.reporting.tables import table_markdown

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("acai", artifact_location=(tmp_path / "mlruns").as_uri())
    partly = history(1, 0.5)
    partly[-3:] = [math.inf, -math.inf, math.inf]
    log_training_run(client, exp, "aae", "lines", "conv", 64, 0, {"smoothness": partly})
    log_training_run(client, exp, "aae", "lines", "conv", 64, 1, {"smoothness": [math.inf] * EVALS})
    rep = build_report(uri, "acai", out=tmp_path / "out", log=False, last=20)  # the paper's window
    (aae,) = rep.tables["smoothness"].itertuples()
    assert (aae.mean, aae.n, aae.undefined) == (pytest.approx(np.median(partly[5:22])), 1, 1)
    md = table_markdown(MEASURE["smoothness"], rep.tables["smoothness"])
    assert "or infinite (±inf, taken as undefined)" in md and "AAE lines/conv/64 (1)" in md


@pytest.mark.parametrize("kind", ["folder", "not a database"])
def test_the_tools_refuse_a_store_path_that_is_not_a_database_at_once(tmp_path, capsys, kind):
    """MLflow retried such a store for 100 s before its own error."""
    import time

    path = tmp_path
    if kind != "folder":
        path = tmp_path / "notes.db"
        path.write_text("some notes")
    start = time.perf_counter()
    assert evaluate.main(["ffffffffffffffff", "--tracking-uri", f"sqlite:///{path}"]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: --tracking-uri='sqlite:///{path}': {path} is ")
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("override, line", [
    ("model.latnt_dim=16", "model.latnt_dim=16 is not valid: model has no key 'latnt_dim'; did you mean "
                           "model.latent_dim?"),
    ("trainer.batchsize=32", "trainer.batchsize=32 is not valid: trainer has no key 'batchsize'; did you mean "
                             "trainer.batch_size?"),
    ("sed=1", "sed=1 is not valid: the config has no key 'sed'; did you mean seed?"),
])
def test_a_plain_misspelt_key_is_one_line_with_the_nearest_key(tmp_path, override, line):
    """Without `+`, Hydra's own 'Could not override ... not in struct' block (exit 1) came instead."""
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / "src" / "train.py"), "model=mlp", override,
                           f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [f"error: {line}"], done.stderr[-2000:]
    assert not (tmp_path / "mlflow.db").exists()
