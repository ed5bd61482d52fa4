"""Datasets of stored images (MNIST, SVHN, CIFAR-10, CelebA, folders): checked once, streamed as uint8.

Each subclass only says where its uint8 images come from (`load`); this class checks them (layout,
dtype, label range), serves the float32 [-1, 1] test and clustering sets, and streams training batches
as the reference does: a shuffle buffer of 1,024 over the stored order, repeated, converted to floats
per batch. The stream shuffles indices, not images, so a prepared 1.9 GB file is read 64 images at a
time and resuming skips batches of indices without touching the data.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import tensorflow as tf

from acai.data.base import Dataset, ensure_nhwc, integer_labels, pad_to, to_unit_range
from acai.data.prepared import Rows, Split, take
from acai.errors import DatasetError


@dataclass
class ArrayDataset(Dataset):
    """A dataset held as uint8 NHWC train and test splits; subclasses implement `load`."""

    unlisted: ClassVar[tuple[str, ...]] = (*Dataset.unlisted, "shuffle_buffer")

    path: str | None = None
    shuffle_buffer: int = 1024  # the reference's lib/data.py: shuffle(1024).repeat()

    def load(self) -> dict[str, Split]:
        """The raw `train` and `test` splits (uint8 images, integer labels; zeros where unlabelled)."""
        raise NotImplementedError

    def note(self, line: str) -> None:
        """Record something the user should know about the data as loaded (see `notes`)."""
        self.__dict__.setdefault("_load_notes", []).append(line)

    def notes(self) -> list[str]:
        return super().notes() + self.__dict__.get("_load_notes", [])

    @property
    def source(self) -> str:
        return f"dataset.path={self.path!r}" if self.path else f"dataset={self.name}"

    @cached_property
    def splits(self) -> dict[str, Split]:
        splits = self.load()
        for split in ("train", "test"):
            x, y = splits[split].x, integer_labels(splits[split].y, f"{self.source}: {split} labels")
            if not isinstance(x, Rows):
                x = np.ascontiguousarray(ensure_nhwc(np.asarray(x), self.source))  # CIFAR's CHW -> HWC is a view
                if x.dtype != np.uint8:
                    raise DatasetError(
                        f"{self.source}: {split} images have dtype {x.dtype}; expected uint8 pixels 0..255")
            if len(x) != len(y):
                raise DatasetError(f"{self.source}: {len(x)} {split} images but {len(y)} labels")
            if self.labelled and y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise DatasetError(
                    f"{self.source}: {split} labels span {y.min()}..{y.max()}; "
                    f"dataset.num_classes={self.num_classes} allows 0..{self.num_classes - 1}")
            splits[split] = Split(x, y)
        for line in self.notes():
            print(f"Note: {line}", file=sys.stderr, flush=True)
        return splits

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        test = self.splits["test"]
        n = len(test.x) if self.test_limit is None else min(self.test_limit, len(test.x))
        return to_unit_range(np.asarray(test.x[:n])), test.y[:n]

    def train_set(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 pixels: 60,000 SVHN images are 184 MB so, 737 MB as floats."""
        train = self.splits["train"]
        return np.asarray(train.x[:limit]), train.y[:limit]

    def train_batches(self, batch_size: int, seed: int, image_size: int | None,
                      start_step: int = 0) -> tf.data.Dataset:
        train = self.splits["train"]
        x, labels, n = train.x, tf.constant(train.y), len(train.x)
        if n < batch_size:
            raise DatasetError(f"dataset={self.name} has {n} training images, fewer than one batch ({batch_size})")
        shape = (batch_size, *x.shape[1:])

        def read(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            # gathered by NumPy from the stored array or file: no second copy of the data inside TensorFlow
            images = tf.numpy_function(lambda i: take(x, i), [indices], tf.uint8, stateful=False)
            images = tf.cast(tf.ensure_shape(images, shape), tf.float32) * (2.0 / 255.0) - 1.0
            return pad_to(images, image_size), tf.gather(labels, indices)

        # repeat, then shuffle, as the reference: the buffer mixes the end of one pass with the next
        ds = tf.data.Dataset.range(n).repeat().shuffle(min(self.shuffle_buffer, n), seed=seed)
        ds = ds.batch(batch_size, drop_remainder=True).skip(start_step)
        return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
