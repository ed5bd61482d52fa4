"""Image datasets (MNIST, Fashion-MNIST, ...): Keras' downloader by default, or a local copy.

`path` may be a folder holding the four standard IDX files (`train-images-idx3-ubyte.gz`, ...; gzipped
or not) or a Keras-style `.npz` with `x_train, y_train, x_test, y_test`. Either way the arrays are
checked (shape, dtype, range) so a truncated or wrong file fails here with its name, not in training.
"""

from __future__ import annotations

import gzip
import importlib
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import tensorflow as tf

from acai.data.base import Dataset, ensure_nhwc, integer_labels, pad_to, to_unit_range
from acai.errors import DatasetError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped): magic 0x00 0x00 0x08 ndim, big-endian sizes, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot be read as an IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: truncated or corrupt: header says {shape} ({expected} bytes), file has {len(raw) - header}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    raise DatasetError(f"dataset.path={str(folder)!r}: no {stem}.gz (or {stem}) in that folder")


def load_local(path: str) -> dict[str, np.ndarray]:
    """Arrays from an IDX folder or an .npz file."""
    p = Path(path).expanduser()
    if p.is_dir():
        return {key: read_idx(_find_idx(p, stem)) for key, stem in IDX_FILES.items()}
    if p.suffix == ".npz" and p.exists():
        try:
            with np.load(p, allow_pickle=False) as f:
                missing = [k for k in IDX_FILES if k not in f.files]
                if missing:
                    raise DatasetError(f"dataset.path={path!r}: the .npz lacks arrays {missing}")
                return {k: f[k] for k in IDX_FILES}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise DatasetError(f"dataset.path={path!r}: corrupt .npz file ({e})") from None
    raise DatasetError(
        f"dataset.path={path!r} does not exist or is not an IDX folder / .npz file; "
        "give a folder with the four IDX files or a Keras .npz"
    )


@dataclass
class ImageDataset(Dataset):
    """A labelled image dataset with a Keras loader (`keras_loader`) and an optional local `path`."""

    _target_: str = "acai.data.images.ImageDataset"
    name: str = "mnist"
    keras_loader: str = "keras.datasets.mnist"
    path: str | None = None
    shuffle_buffer: int = 1024  # the reference's lib/data.py: shuffle(1024).repeat()
    offline_hint: str = ""

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        raw = load_local(self.path) if self.path else self._download()
        source = self.path or self.keras_loader
        out = {}
        for split in ("train", "test"):
            x = ensure_nhwc(np.asarray(raw[f"x_{split}"]), source)
            y = integer_labels(raw[f"y_{split}"], f"{source}: y_{split}")
            if x.dtype != np.uint8:
                raise DatasetError(f"{source}: x_{split} has dtype {x.dtype}; expected uint8 pixels 0..255")
            if len(x) != len(y):
                raise DatasetError(f"{source}: {len(x)} {split} images but {len(y)} labels")
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise DatasetError(
                    f"{source}: {split} labels span {y.min()}..{y.max()}; "
                    f"dataset.num_classes={self.num_classes} allows 0..{self.num_classes - 1}"
                )
            out[f"x_{split}"], out[f"y_{split}"] = x, y
        return out

    def _download(self) -> dict[str, np.ndarray]:
        try:
            loader = importlib.import_module(self.keras_loader)
            (x_train, y_train), (x_test, y_test) = loader.load_data()
        except Exception as e:  # noqa: BLE001 - any download failure gets the same advice
            hint = f" {self.offline_hint}" if self.offline_hint else ""
            raise DatasetError(
                f"dataset={self.name}: could not load it with {self.keras_loader}.load_data() ({type(e).__name__}: "
                f"{e}). Without a network, set dataset.path to a folder with the IDX files or a .npz.{hint}"
            ) from None
        return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        return self.limit(to_unit_range(self.arrays["x_test"]), self.arrays["y_test"])

    def train_set(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        return to_unit_range(self.arrays["x_train"][:limit]), self.arrays["y_train"][:limit]

    def train_batches(self, batch_size: int, seed: int, image_size: int | None,
                      start_step: int = 0) -> tf.data.Dataset:
        x, y = self.arrays["x_train"], self.arrays["y_train"]
        if len(x) < batch_size:
            raise DatasetError(f"dataset={self.name} has {len(x)} training images, fewer than one batch ({batch_size})")
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        ds = ds.shuffle(min(self.shuffle_buffer, len(x)), seed=seed, reshuffle_each_iteration=True).repeat()

        def prepare(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            images = tf.cast(images, tf.float32) * (2.0 / 255.0) - 1.0
            return pad_to(images, image_size), labels

        ds = ds.batch(batch_size, drop_remainder=True).skip(start_step)
        return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
