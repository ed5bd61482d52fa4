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
from pathlib import Path
from typing import ClassVar

import numpy as np

from acai.data.arrays import ArrayDataset
from acai.data.prepared import Split
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
class ImageDataset(ArrayDataset):
    """A labelled grayscale image dataset with a Keras loader (`keras_loader`) and an optional local `path`."""

    unlisted: ClassVar[tuple[str, ...]] = (*ArrayDataset.unlisted, "offline_hint")

    name: str = "mnist"
    keras_loader: str = "keras.datasets.mnist"
    offline_hint: str = ""

    def load(self) -> dict[str, Split]:
        raw = load_local(self.path) if self.path else keras_download(self.name, self.keras_loader, self.offline_hint)
        return {split: Split(raw[f"x_{split}"], raw[f"y_{split}"]) for split in ("train", "test")}


def keras_download(name: str, module: str, hint: str = "") -> dict[str, np.ndarray]:
    """`keras.datasets.<name>.load_data()` (downloads once into ~/.keras/datasets), or one line saying why not."""
    try:
        loader = importlib.import_module(module)
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as e:  # noqa: BLE001 - any download failure gets the same advice
        hint = f" {hint}" if hint else ""
        raise DatasetError(
            f"dataset={name}: could not load it with {module}.load_data() ({type(e).__name__}: "
            f"{e}). Without a network, set dataset.path to the files as distributed (see docs/datasets.md).{hint}"
        ) from None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
