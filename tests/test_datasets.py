"""SVHN, CIFAR-10, CelebA and image folders, loaded from tiny files written in each real format."""

from __future__ import annotations

import tarfile
import zipfile

import numpy as np
import pytest
from datafiles import blobs, cifar_records, write_celeba, write_cifar10, write_images, write_svhn
from PIL import Image
from scipy.io import savemat

from acai.data.celeba import CelebA
from acai.data.cifar10 import Cifar10
from acai.data.folder import ImageFolder
from acai.data.prepared import Rows, take
from acai.data.svhn import Svhn
from acai.errors import ConfigError, DatasetError


def to_pixels(x: np.ndarray) -> np.ndarray:
    return np.round((x + 1) * 255 / 2).astype(np.uint8)


# ---- SVHN ----

def test_svhn_mat_files_give_colour_images_labels_0_to_9_and_train_plus_extra(tmp_path, capsys):
    folder = write_svhn(tmp_path / "svhn", n_train=30, n_test=20, n_extra=12)
    ds = Svhn(path=str(folder))
    x, y = ds.test_set()
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.float32 and -1 <= x.min() and x.max() <= 1
    assert y.tolist() == [i % 10 for i in range(20)]  # the file's 10 (zero) became 0
    assert len(ds.splits["train"].y) == 30 + 12 and ds.notes() == []
    # training images: train_32x32.mat's, then extra_32x32.mat's, in order and pixel for pixel
    digits = np.arange(30 + 12) % 10
    expected = np.concatenate([blobs(np.arange(30) % 10, seed=0), blobs(np.arange(12) % 10, seed=2)])
    assert np.array_equal(to_pixels(ds.train_set(42)[0].astype(np.float32) * (2 / 255) - 1), expected)
    assert ds.splits["train"].y.tolist() == np.r_[digits[:30], digits[:12]].tolist()
    # NHWC from the file's 32x32x3xN, pixel for pixel
    assert np.array_equal(to_pixels(x), blobs(np.arange(20) % 10, seed=1))
    assert "Preparing dataset=svhn" in capsys.readouterr().err
    again = Svhn(path=str(folder))
    again.test_set()
    assert "Preparing" not in capsys.readouterr().err  # prepared once, read after
    assert isinstance(again.splits["train"].x, Rows)


def test_svhn_without_extra_trains_on_train_and_says_so(tmp_path):
    ds = Svhn(path=str(write_svhn(tmp_path / "svhn", n_train=30, n_test=20)))
    assert len(ds.splits["train"].y) == 30
    assert ds.notes() == [f"dataset.path='{tmp_path / 'svhn'}' has no extra_32x32.mat: training on train alone "
                          "(30 images; the paper used train + extra, 604,388)"]


def test_svhn_bad_files_are_named(tmp_path):
    with pytest.raises(DatasetError, match=r"no test_32x32.mat in that folder .*SVHN needs train_32x32.mat"):
        Svhn(path=str(write_svhn(tmp_path / "a", n_test=0))).test_set()
    folder = tmp_path / "b"
    write_svhn(folder)
    savemat(folder / "test_32x32.mat", {"images": np.zeros((32, 32, 3, 2), np.uint8)})
    with pytest.raises(DatasetError, match=r"test_32x32.mat: no variable X or y"):
        Svhn(path=str(folder)).test_set()
    (folder / "test_32x32.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(DatasetError, match=r"test_32x32.mat: cannot be read as a MATLAB .mat file"):
        Svhn(path=str(folder)).test_set()
    with pytest.raises(DatasetError, match=r"is not a folder"):
        Svhn(path=str(tmp_path / "nowhere")).test_set()


# ---- CIFAR-10 ----

def test_cifar10_binary_records_become_nhwc_from_the_folder_its_parent_or_the_tarball(tmp_path):
    bins = write_cifar10(tmp_path / "c", per_batch=12, n_test=20)
    with tarfile.open(tmp_path / "cifar-10-binary.tar.gz", "w:gz") as tar:
        tar.add(bins, arcname="cifar-10-batches-bin")
    for path in (bins, bins.parent, tmp_path / "cifar-10-binary.tar.gz"):
        ds = Cifar10(path=str(path))
        x, y = ds.test_set()
        assert x.shape == (20, 32, 32, 3) and y.tolist() == [i % 10 for i in range(20)]
        assert np.array_equal(to_pixels(x), blobs(np.arange(20) % 10, seed=9))  # R, G, B planes -> channels
        assert len(ds.splits["train"].y) == 60


def test_cifar10_truncated_or_missing_files_are_named(tmp_path):
    bins = write_cifar10(tmp_path / "c")
    (bins / "data_batch_3.bin").write_bytes(cifar_records(np.arange(4))[:-100])
    with pytest.raises(DatasetError, match=r"data_batch_3.bin: 12,192 bytes is not a whole number of 3,073-byte"):
        Cifar10(path=str(bins)).test_set()
    (bins / "data_batch_3.bin").unlink()
    with pytest.raises(DatasetError, match=r"no data_batch_3.bin there"):
        Cifar10(path=str(bins)).test_set()


# ---- folders ----

def test_class_sub_folders_give_labels_in_name_order_and_a_seeded_held_out_test_set(tmp_path):
    folder = write_images(tmp_path / "pets", 30, ["dog", "cat", "eel"], size=(40, 48))
    ds = ImageFolder(path=str(folder), test_size=6)
    x, y = ds.test_set()
    assert ds.num_classes == 3 and ds.class_names == ["cat", "dog", "eel"]
    assert x.shape == (6, 32, 32, 3) and len(ds.splits["train"].y) == 24
    again = ImageFolder(path=str(folder), test_size=6)
    assert np.array_equal(again.test_set()[1], y)  # the same hold-out every time
    # every image's label is its folder's: write_images drew dog red, cat green, eel blue
    train = ds.splits["train"]
    assert len(set(train.y[:6].tolist())) > 1  # stored shuffled, not class folder after class folder
    brightest = np.asarray(train.x[:]).astype(float).mean((1, 2)).argmax(-1)
    assert np.array_equal(brightest, np.array([1, 0, 2])[train.y])


def test_flat_folders_zips_and_train_test_folders(tmp_path):
    flat = write_images(tmp_path / "flat", 12, suffix=".png")
    ds = ImageFolder(path=str(flat), test_size=3)
    assert ds.test_set()[0].shape == (3, 32, 32, 3) and ds.num_classes == 0 and not ds.labelled
    assert "has no labels" in ds.notes()[0]
    with pytest.raises(ConfigError, match=r"dataset.num_classes=5 .* has 0 class sub-folder"):
        ImageFolder(path=str(flat), num_classes=5, test_size=3).test_set()
    odd = ImageFolder(path=str(write_images(tmp_path / "odd", 8, ["train", "zebra"])), test_size=2)
    assert odd.test_set()[0].shape == (2, 32, 32, 3) and odd.class_names == ["train", "zebra"]  # a class, not a split
    split = tmp_path / "split"
    write_images(split / "train", 10, ["a", "b"])
    write_images(split / "test", 4, ["a", "b"], seed=1)
    ds = ImageFolder(path=str(split))
    assert sorted(ds.test_set()[1].tolist()) == [0, 0, 1, 1] and len(ds.splits["train"].y) == 10
    with zipfile.ZipFile(tmp_path / "pets.zip", "w") as z:
        for f in sorted(split.rglob("*.jpg")):
            z.write(f, f"wrapper/{f.relative_to(split)}")
    zipped = ImageFolder(path=str(tmp_path / "pets.zip"))
    assert np.array_equal(zipped.test_set()[0], ds.test_set()[0])


def test_unreadable_images_are_skipped_by_name_and_an_empty_folder_fails(tmp_path):
    folder = write_images(tmp_path / "f", 10, ["a", "b"])
    good = (folder / "a" / "000000.jpg").read_bytes()
    (folder / "a" / "broken.jpg").write_bytes(good[: len(good) // 3])
    (folder / "b" / "text.png").write_text("not an image")
    ds = ImageFolder(path=str(folder), test_size=2)
    ds.test_set()
    assert len(ds.splits["train"].y) + 2 == 10
    assert any("skipped 2 unreadable image(s)" in n and "a/broken.jpg" in n and "b/text.png" in n for n in ds.notes())
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"holds no image"):
        ImageFolder(path=str(tmp_path / "empty")).test_set()
    for f in (tmp_path / "f").rglob("0*.jpg"):
        f.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"no readable image left"):
        ImageFolder(path=str(folder), test_size=2).test_set()


def test_channels_are_converted_and_said_and_small_images_are_enlarged(tmp_path):
    gray = write_images(tmp_path / "gray", 8, mode="L", suffix=".png")
    ds = ImageFolder(path=str(gray), test_size=2)
    x, _ = ds.test_set()
    assert x.shape[-1] == 3 and np.allclose(x[..., 0], x[..., 2])
    assert "8 of 8 images were grayscale, converted to RGB (dataset.channels=3)" in ds.notes()
    colour = write_images(tmp_path / "colour", 8)
    ds = ImageFolder(path=str(colour), test_size=2, channels=1)
    assert ds.test_set()[0].shape == (2, 32, 32, 1)
    assert "8 of 8 images were colour, converted to grayscale (dataset.channels=1)" in ds.notes()
    small = write_images(tmp_path / "small", 4, size=(20, 40))
    ds = ImageFolder(path=str(small), test_size=2)
    assert ds.test_set()[0].shape == (2, 32, 32, 3)
    assert "4 of 4 images were smaller than dataset.size=32 and were enlarged" in " ".join(ds.notes())
    with pytest.raises(ConfigError, match=r"dataset.channels=2"):
        ImageFolder(path=str(small), channels=2)


# ---- CelebA ----

def test_celeba_crops_36_rows_and_16_columns_from_each_side_then_resizes_to_32(tmp_path):
    images = write_celeba(tmp_path, n=6)
    inside = np.zeros((218, 178, 3), np.uint8)
    inside[:, :] = (255, 0, 0)  # red outside the crop box
    inside[36:218 - 36, 16:178 - 16] = (0, 200, 0)  # green inside it
    Image.fromarray(inside).save(images / "000001.jpg", quality=100, subsampling=0)  # no chroma blur
    ds = CelebA(path=str(images.parent), test_size=3)
    x, y = ds.test_set()
    assert x.shape == (3, 32, 32, 3) and not ds.labelled and len(ds.splits["train"].y) == 6
    first = to_pixels(x[0]).astype(int)
    assert first[..., 0].max() < 40 and first[..., 1].min() > 160  # nothing of the red border is left
    # the reference's test images are the first ones of the same set, in order
    assert np.array_equal(np.asarray(ds.splits["train"].x[:3]), to_pixels(x))


# ---- the training stream ----

def test_batches_from_prepared_files_are_the_shuffled_indices_and_resume_where_they_left(tmp_path):
    ds = Svhn(path=str(write_svhn(tmp_path / "svhn", n_train=200, n_test=20)))
    stored = np.asarray(ds.splits["train"].x[:])
    stream = ds.train_batches(16, seed=3, image_size=32)
    batches = [tuple(t.numpy() for t in b) for b, _ in zip(stream, range(30), strict=False)]
    for images, labels in batches:
        index = [int(np.flatnonzero((stored == to_pixels(im)).all((1, 2, 3)))[0]) for im in images]
        assert np.array_equal(labels, ds.splits["train"].y[index])
        assert np.array_equal(take(ds.splits["train"].x, np.array(index)), to_pixels(images))
    resumed = next(iter(ds.train_batches(16, seed=3, image_size=32, start_step=20)))
    assert np.array_equal(resumed[0].numpy(), batches[20][0])


# ---- end to end ----

@pytest.mark.parametrize(("dataset", "regularizer"), [("svhn", "acai"), ("cifar10", "dropout"),
                                                      ("celeba", "vae"), ("folder", "aae")])
def test_a_smoke_run_on_each_colour_dataset_logs_colour_grids(compose_cfg, tmp_path, dataset, regularizer):
    import mlflow
    from mlflow.tracking import MlflowClient

    from acai.training.run import train
    from acai.training.spec import RunSpec

    path = {"svhn": lambda: write_svhn(tmp_path / "svhn", n_extra=20),
            "cifar10": lambda: write_cifar10(tmp_path / "cifar"),
            "celeba": lambda: write_celeba(tmp_path / "celeba", 40).parent,
            "folder": lambda: write_images(tmp_path / "flowers", 40, ["iris", "rose"])}[dataset]()
    cfg = compose_cfg("experiment=smoke", f"dataset={dataset}", f"dataset.path={path}", f"regularizer={regularizer}",
                      "dataset.test_limit=20", *(["dataset.test_size=20"] if dataset in ("celeba", "folder") else []))
    spec = RunSpec.from_config(cfg)
    assert spec.arch.depth == 64 and spec.arch.latent_width == 4  # the paper's colour architecture
    if dataset == "cifar10":
        assert spec.regularizer.keep_prob == 0.75  # the paper's CIFAR-10 dropout
    run_id = train(cfg)
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert "eval/reconstruction_error" in metrics
    if dataset == "celeba":
        assert not any(k in metrics for k in ("eval/latent_accuracy", "eval/cluster_accuracy", "eval/probe_accuracy",
                                              "train/classifier"))
        assert "has no labels" in run.data.tags["acai.data_notes"]
    else:
        assert {"eval/latent_accuracy", "eval/cluster_accuracy"} <= metrics.keys()
        assert "eval/cluster_accuracy_pixels" not in metrics  # off for colour unless asked for
    images = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    grid = next(p for p in images if "interpolations" in p)
    picture = np.asarray(Image.open(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=grid,
                                                                        tracking_uri=cfg.tracking.uri)))
    assert picture.ndim == 3 and picture.shape[-1] >= 3
    assert np.abs(picture[..., 0].astype(int) - picture[..., 1]).max() > 50  # really in colour
