"""CIFAR-10 (32x32x3, 50,000 train / 10,000 test) from its binary version, read without unpickling.

`dataset.path` is the extracted `cifar-10-batches-bin/` folder of https://www.cs.toronto.edu/~kriz/
cifar-10-binary.tar.gz (`data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`; 10,000 records of
3,073 bytes each: one label byte, then 3,072 pixel bytes as 3 planes of 32x32), the folder holding it,
or the `.tar.gz` itself. Without a path, `keras.datasets.cifar10` downloads it. 180 MB in memory.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acai.data.arrays import ArrayDataset
from acai.data.images import keras_download
from acai.data.prepared import Split
from acai.errors import DatasetError

TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST = ["test_batch.bin"]
RECORD = 1 + 3 * 32 * 32


def decode_records(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Records of one label byte + CHW pixels -> NHWC uint8 images and labels."""
    if len(raw) % RECORD:
        raise DatasetError(f"{source}: {len(raw):,} bytes is not a whole number of {RECORD:,}-byte CIFAR-10 "
                           f"records ({len(raw) / RECORD:.2f}); the file is truncated or not CIFAR-10's binary "
                           "version")
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{source}: a label byte is {labels.max()}; CIFAR-10's are 0..9 (is this CIFAR-100?)")
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_files(path: str) -> dict[str, bytes]:
    """Every `.bin` batch's bytes, by file name, from the folder (or its parent) or the .tar.gz."""
    p = Path(path).expanduser()
    if p.is_file() and p.name.endswith((".tar.gz", ".tgz")):
        try:
            with tarfile.open(p, "r:gz") as tar:
                return {Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers()
                        if m.isfile() and m.name.endswith(".bin")}
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DatasetError(f"dataset.path={path!r}: cannot read the archive ({e})") from None
    if p.is_dir():
        folder = p / "cifar-10-batches-bin" if (p / "cifar-10-batches-bin").is_dir() else p
        return {f.name: f.read_bytes() for f in folder.glob("*.bin")}
    raise DatasetError(f"dataset.path={path!r} does not exist; give the cifar-10-batches-bin/ folder of the "
                       "binary version, or cifar-10-binary.tar.gz")


@dataclass
class Cifar10(ArrayDataset):
    """CIFAR-10 from the binary files (`path`) or keras.datasets."""

    name: str = "cifar10"

    def load(self) -> dict[str, Split]:
        if not self.path:
            raw = keras_download(self.name, "keras.datasets.cifar10")
            return {s: Split(raw[f"x_{s}"], raw[f"y_{s}"]) for s in ("train", "test")}
        files = read_files(self.path)
        missing = [name for name in TRAIN + TEST if name not in files]
        if missing:
            raise DatasetError(f"dataset.path={self.path!r}: no {', '.join(missing)} there (found "
                               f"{sorted(files) or 'no .bin file'}); CIFAR-10's binary version has {', '.join(TRAIN)} "
                               f"and {TEST[0]}")
        out = {}
        for split, names in (("train", TRAIN), ("test", TEST)):
            parts = [decode_records(files.pop(name), f"dataset.path={self.path!r}: {name}") for name in names]
            out[split] = Split(np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))
        return out
