"""Large image sets, decoded once into raw uint8 files and read back by rows.

SVHN train+extra is 1.9 GB as uint8 (7.4 GB as float32) and CelebA is 202,599 JPEGs: neither should be
decoded per run nor held as floats. The first run on a source writes each split as a raw uint8 NHWC
file plus its labels into `<cache>/datasets/<name>-<key>/` (`ACAI_CACHE_DIR`, default ~/.cache/acai);
later runs read those files. Training batches are read with one `pread` per image, so the prepared
data costs no resident memory (a memory map would count every page it touched in the run's RSS).

The key hashes the source files' names, sizes and modification times and the preparation settings:
changed files or settings never hit a stale entry. A folder is built under a temporary name and renamed
when complete, so a killed preparation or two jobs preparing at once never leave a half-written entry.

`info.json` records each file's sha256 (computed while it is written), size and modification time. A
load checks every file's size and time, and hashes a file again only when its time changed: a file
written since preparation (overwritten with zeros, truncated, replaced) is caught, and a reload of
SVHN's 1.9 GB costs no hashing (seconds of sha256 on every load otherwise).
A damaged entry (a file that fails the check, an unreadable `info.json` or label array) is set aside
and prepared again, with a note; a fresh entry that fails again is one error naming the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acai.cache import cache_dir, fingerprint
from acai.errors import DatasetError

FORMAT = 3  # bump when the prepared layout or any preparation changes (2: SVHN extra no longer overwrote train;
# 3: checksums, and folders decoded by acai.data.decode)
HASH_CHUNK = 2**24


class Rows:
    """A raw uint8 file of N images of one shape, read without mapping it into memory."""

    def __init__(self, path: Path, shape: tuple[int, int, int]):
        self.path, self.image_shape = path, tuple(shape)
        self.row_bytes = int(np.prod(shape))
        size = path.stat().st_size
        if size % self.row_bytes:
            raise DatasetError(f"{path}: {size} bytes is not a whole number of {shape} images; delete the folder "
                               f"{path.parent} to prepare the data again")
        self.count = size // self.row_bytes
        self._fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __len__(self) -> int:
        return self.count

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.image_shape)

    def __getitem__(self, index: slice) -> np.ndarray:
        """Contiguous images `index` (a slice with step 1) as one array."""
        start, stop, step = index.indices(self.count)
        if step != 1:
            raise ValueError("Rows supports contiguous slices only")
        n = max(0, stop - start)
        raw = os.pread(self._fd, n * self.row_bytes, start * self.row_bytes)
        return np.frombuffer(raw, np.uint8).reshape((n, *self.image_shape))

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Images at `indices`, in that order (one positional read each; threads may share the reader)."""
        out = np.empty((len(indices), self.row_bytes), np.uint8)
        for i, index in enumerate(np.asarray(indices, np.int64)):
            out[i] = np.frombuffer(os.pread(self._fd, self.row_bytes, int(index) * self.row_bytes), np.uint8)
        return out.reshape((len(indices), *self.image_shape))


def take(images: np.ndarray | Rows, indices: np.ndarray) -> np.ndarray:
    return images.take(indices) if isinstance(images, Rows) else images[indices]


@dataclass
class Split:
    """One split's images (uint8 NHWC, in memory or prepared on disk) and integer labels."""

    x: np.ndarray | Rows
    y: np.ndarray


class SplitWriter:
    """Appends uint8 image chunks and labels of one split to the folder being prepared."""

    def __init__(self, folder: Path, split: str):
        self.folder, self.split = folder, split
        self._file = open(folder / f"{split}.u8", "wb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        self.shape: tuple[int, ...] | None = None
        self.labels: list[np.ndarray] = []

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        images = np.ascontiguousarray(images, np.uint8)
        if self.shape is None:
            self.shape = images.shape[1:]
        elif images.shape[1:] != self.shape:
            raise DatasetError(f"{self.split}: images of shape {images.shape[1:]} after {self.shape}")
        self._file.write(images.data)
        self._hash.update(images.data)
        self.labels.append(np.asarray(labels, np.int64).reshape(-1))

    def close(self) -> dict[str, object]:
        self._file.close()
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, np.int64)
        np.save(self.folder / f"{self.split}.labels.npy", labels)
        x, y = self.folder / f"{self.split}.u8", self.folder / f"{self.split}.labels.npy"
        return {"count": len(labels), "shape": list(self.shape or ()),
                "files": {x.name: stamp(x, self._hash.hexdigest()), y.name: stamp(y, sha256(y))}}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stamp(path: Path, digest: str) -> dict[str, object]:
    """What `verify` checks a prepared file against."""
    info = path.stat()
    return {"sha256": digest, "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


class Damaged(Exception):
    """A prepared entry that cannot be trusted; the message says which file and why."""


def verify(path: Path, expected: dict) -> None:
    """Damaged unless `path` has the recorded size and sha256 (hashed only when its time has changed)."""
    try:
        info = path.stat()
    except OSError as e:
        raise Damaged(f"{path.name}: {e.strerror}") from None
    if info.st_size != expected["bytes"]:
        raise Damaged(f"{path.name} holds {info.st_size:,} bytes, {expected['bytes']:,} were written")
    if info.st_mtime_ns != expected["mtime_ns"] and sha256(path) != expected["sha256"]:
        raise Damaged(f"{path.name} has changed since it was prepared (its sha256 differs)")


def source_key(files: Iterable[Path], *settings: object) -> str:
    """A hash of files' names, sizes and modification times, and of the preparation settings."""
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(files)]
    return fingerprint(FORMAT, stats, *settings)[:16]


Build = Callable[[Callable[[str], SplitWriter]], dict[str, object]]


def prepared(name: str, key: str, build: Build) -> tuple[dict[str, Split], dict[str, object]]:
    """The prepared splits of `name` under `key`, built once by `build(open_split)`.

    `build` writes each split through `open_split(split)` and returns extra facts for `info.json`
    (notes for the user, skipped files). Returns the splits and that info. A damaged entry is prepared
    again once (see the module docstring)."""
    folder = cache_dir() / "datasets" / f"{name}-{key}"
    if folder.exists():  # only ever complete: renamed into place once written
        try:
            return load_prepared(folder)
        except Damaged as e:
            print(f"Note: the prepared copy of dataset={name} in {folder} is damaged ({e}); preparing it again",
                  file=sys.stderr, flush=True)
            discard(folder)
    write_prepared(name, folder, build)
    try:
        return load_prepared(folder)
    except Damaged as e:
        raise DatasetError(f"the prepared copy of dataset={name} in {folder} is damaged ({e}) just after it was "
                           "prepared; check the disk, delete that folder and run again") from None


def discard(folder: Path) -> None:
    """Set a damaged entry aside (atomically: a job reading it keeps its open files) and delete it."""
    aside = folder.with_name(f"{folder.name}.damaged-{os.getpid()}")
    try:
        folder.rename(aside)
    except OSError:  # another job set it aside first
        return
    shutil.rmtree(aside, ignore_errors=True)


def write_prepared(name: str, folder: Path, build: Build) -> None:
    """Build under a temporary name, then rename: never a half-written entry."""
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise DatasetError(f"cannot prepare dataset={name} in {tmp.parent} ({e}); set ACAI_CACHE_DIR to a "
                           "writable folder with room for the decoded images") from None
    writers: dict[str, SplitWriter] = {}

    def open_split(split: str) -> SplitWriter:
        """The split's writer; a split opened again (SVHN's extra after train) appends to it."""
        if split not in writers:
            writers[split] = SplitWriter(tmp, split)
        return writers[split]

    try:
        extra = build(open_split)
        info = {"splits": {s: w.close() for s, w in writers.items()}, **extra}
        (tmp / "info.json").write_text(json.dumps(info, indent=1))
        try:
            tmp.rename(folder)
        except OSError:  # another job finished the same preparation first: use its folder
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        for w in writers.values():
            w._file.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_prepared(folder: Path) -> tuple[dict[str, Split], dict[str, object]]:
    """The splits and info of a prepared entry, every file checked; Damaged if anything is off."""
    try:
        info = json.loads((folder / "info.json").read_text())
        facts_of = {split: (tuple(facts["shape"]), int(facts["count"]), dict(facts["files"]))
                    for split, facts in info["splits"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise Damaged(f"info.json cannot be read ({type(e).__name__}: {e})") from None
    splits = {}
    for split, (shape, count, files) in facts_of.items():
        for file, expected in files.items():
            verify(folder / file, expected)
        try:
            rows = Rows(folder / f"{split}.u8", shape)
            labels = np.load(folder / f"{split}.labels.npy", allow_pickle=False)
        except (OSError, ValueError, EOFError, DatasetError) as e:
            raise Damaged(f"{split} cannot be read ({e})") from None
        if len(rows) != count or len(labels) != count:
            raise Damaged(f"{split} holds {len(rows)} images and {len(labels)} labels, info.json says {count}")
        splits[split] = Split(rows, labels)
    return splits, info


class PrepareProgress:
    """'Preparing dataset=svhn: 120,000/604,388 images (31 s)' on stderr, at most every 10 seconds."""

    def __init__(self, name: str, total: int | None, every: float = 10.0):
        self.name, self.total, self.every = name, total, every
        self.start = self.last = time.perf_counter()
        count = f"{total:,} images; " if total else ""
        print(f"Preparing dataset={name} once ({count}later runs read the prepared copy from {cache_dir()})",
              file=sys.stderr, flush=True)

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every or final or done == self.total:
            self.last = now
            of = f"/{self.total:,}" if self.total else ""
            print(f"Preparing dataset={self.name}: {done:,}{of} images ({now - self.start:.0f} s)",
                  file=sys.stderr, flush=True)


def chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
