"""SVHN (cropped digits, 32x32x3) as the reference prepares it: train + extra for training, test for tests.

`dataset.path` is a folder with the files as distributed at http://ufldl.stanford.edu/housenumbers/:
`train_32x32.mat` (182 MB) and `test_32x32.mat` (64 MB), and `extra_32x32.mat` (1.3 GB) when present
(its absence is reported and training uses train alone). Each `.mat` holds `X` (32x32x3xN uint8) and
`y` (Nx1, digits 1..10 where 10 means 0); labels become 0..9. Without a path the data comes from
tensorflow-datasets (`svhn_cropped`, downloaded once). Either way it is prepared once into uint8 files
(see `acai.data.prepared`), one file at a time, so even extra's 1.6 GB is never held twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acai.data.arrays import ArrayDataset
from acai.data.prepared import PrepareProgress, Split, SplitWriter, chunks, prepared, source_key
from acai.data.tfds import tfds_splits
from acai.errors import DatasetError

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`X` as stored (32x32x3xN) and `y` as digits 0..9, checked."""
    from scipy.io import loadmat

    try:
        data = loadmat(path, variable_names=["X", "y"])
    except Exception as e:  # noqa: BLE001 - scipy raises many types for a corrupt file
        raise DatasetError(f"{path}: cannot be read as a MATLAB .mat file ({type(e).__name__}: {e})") from None
    missing = [k for k in ("X", "y") if k not in data]
    if missing:
        raise DatasetError(f"{path}: no variable {' or '.join(missing)}; SVHN's .mat files hold X (32x32x3xN "
                           "uint8 images) and y (Nx1 labels 1..10)")
    x, y = data["X"], np.asarray(data["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DatasetError(f"{path}: X has shape {x.shape} and dtype {x.dtype}; expected 32x32x3xN uint8")
    if len(y) != x.shape[3]:
        raise DatasetError(f"{path}: {x.shape[3]} images in X but {len(y)} labels in y")
    if len(y) and (y.min() < 1 or y.max() > 10 or np.any(y != np.round(y))):
        raise DatasetError(f"{path}: labels span {y.min()}..{y.max()}; SVHN's are digits 1..10 (10 means 0)")
    return x, y.astype(np.int64) % 10


@dataclass
class Svhn(ArrayDataset):
    """SVHN from its .mat files (`path`) or tensorflow-datasets; `use_extra` adds the 531,131 extra images."""

    name: str = "svhn"
    use_extra: bool = True

    def files(self) -> dict[str, Path]:
        folder = Path(self.path).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"dataset.path={self.path!r} is not a folder; give the folder that holds "
                               f"{FILES['train']} and {FILES['test']} (and {FILES['extra']})")
        found = {part: folder / name for part, name in FILES.items() if (folder / name).is_file()}
        missing = [FILES[p] for p in ("train", "test") if p not in found]
        if missing:
            present = sorted(p.name for p in folder.iterdir())[:8]
            raise DatasetError(f"dataset.path={self.path!r}: no {' or '.join(missing)} in that folder (it holds "
                               f"{present or 'nothing'}); SVHN needs {FILES['train']} and {FILES['test']}")
        if not self.use_extra:
            found.pop("extra", None)
        return found

    def load(self) -> dict[str, Split]:
        if not self.path:
            splits = {"train": "train+extra" if self.use_extra else "train", "test": "test"}
            return tfds_splits(self.name, "svhn_cropped", splits)
        files = self.files()

        def build(open_split) -> dict[str, object]:
            progress = PrepareProgress(self.name, None)
            done = 0
            for part, path in files.items():
                x, y = read_mat(path)
                writer: SplitWriter = open_split("test" if part == "test" else "train")
                for rows in chunks(len(y), 8192):
                    writer.write(x[..., rows].transpose(3, 0, 1, 2), y[rows])
                    progress.update(done + rows.stop)
                done += len(y)
                del x
            progress.update(done, final=True)
            return {"parts": sorted(files)}

        data, info = prepared(self.name, source_key(files.values(), self.use_extra), build)
        if self.use_extra and "extra" not in info["parts"]:
            self.note(f"dataset.path={self.path!r} has no {FILES['extra']}: training on train alone "
                      f"({len(data['train'].y):,} images; the paper used train + extra, 604,388)")
        return data
