"""The contract every dataset meets, and the shared [-1, 1] image conventions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import tensorflow as tf

from acai.errors import ConfigError, DatasetError


@dataclass
class Dataset:
    """A dataset config that is also the dataset: Hydra instantiates it from `conf/dataset/*.yaml`.

    `latent_width` and `latent_dim` are the paper's conv-model settings for this dataset; the model
    configs interpolate them so `dataset=mnist model=conv` gets the paper's 4x4 latent grid.
    """

    label_name: ClassVar[str] = "class"  # what a label means, for plots
    #: Fields left out of the composed config (`acai.config.schema_defaults`), so out of a run's fingerprint
    #: and logged params, unless an option's YAML or the command line sets them (the fingerprints, and so
    #: the checkpoints, of earlier runs stay valid).
    unlisted: ClassVar[tuple[str, ...]] = ("dropout_keep", "interpolation_benchmark")

    _target_: str = ""
    name: str = ""
    num_classes: int = 10
    latent_width: int = 4
    latent_dim: int = 32
    depth: int = 16  # the paper's conv width for this dataset (16 for lines and MNIST, 64 for colour)
    dropout_keep: float = 0.5  # the paper's dropout keep probability here (0.75 on CIFAR-10)
    interpolation_benchmark: bool = False  # True where decoded interpolations can be scored (lines)
    test_limit: int | None = None  # evaluate on the first N test examples only (null: all)

    def __post_init__(self) -> None:
        if self.test_limit is not None and (isinstance(self.test_limit, bool) or self.test_limit < 2):
            raise ConfigError("dataset.test_limit", self.test_limit,
                              "must be null (the whole test set) or >= 2: an evaluation interpolates pairs")

    @property
    def labelled(self) -> bool:
        """False for image collections without classes (CelebA, a flat folder): `num_classes: 0`."""
        return self.num_classes > 0

    def notes(self) -> list[str]:
        """What the user should know about this data as loaded (shown on the console, tagged in MLflow)."""
        if self.labelled:
            return []
        return [f"dataset={self.name} has no labels: the latent classifier, the linear probe and K-means "
                "clustering are skipped; everything else is measured and logged"]

    def limit(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x, y) if self.test_limit is None else (x[: self.test_limit], y[: self.test_limit])

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic test images (float32, [-1, 1], NHWC) and integer labels."""
        raise NotImplementedError

    def train_set(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `limit` training examples, unshuffled (for clustering): float32 [-1, 1], or the stored
        uint8 pixels (4x smaller; `predict` converts them chunk by chunk, see `unit_range`)."""
        raise NotImplementedError

    def train_batches(self, batch_size: int, seed: int, image_size: int | None,
                      start_step: int = 0) -> tf.data.Dataset:
        """An endless, seeded tf.data stream of (images, labels) batches, starting at batch `start_step`
        (the same batches an uninterrupted run would see from there: resume depends on it)."""
        raise NotImplementedError


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], as the reference's `x * 2/255 - 1`."""
    return images.astype(np.float32) * (2.0 / 255.0) - 1.0


def unit_range(images: np.ndarray) -> np.ndarray:
    """Images as the networks take them: uint8 pixels converted to [-1, 1], floats as float32."""
    return to_unit_range(images) if images.dtype == np.uint8 else np.asarray(images, np.float32)


def ensure_nhwc(images: np.ndarray, source: str) -> np.ndarray:
    """Give grayscale images a channel axis and check the layout."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DatasetError(
            f"{source}: images have shape {images.shape}; expected N x H x W (grayscale) or N x H x W x 1|3"
        )
    if min(images.shape[1:3]) < 1:
        raise DatasetError(f"{source}: images are {images.shape[1]}x{images.shape[2]} pixels; they must not be empty")
    return images


def integer_labels(labels: np.ndarray, source: str) -> np.ndarray:
    """Class indices as int64; fractional or NaN labels are refused, not truncated."""
    labels = np.asarray(labels).reshape(-1)
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise DatasetError(f"{source}: labels must be whole class numbers; found {labels[bad][0].item()!r} "
                               f"(at index {int(np.flatnonzero(bad)[0])})")
    elif labels.dtype.kind not in "iub":
        raise DatasetError(f"{source}: labels have dtype {labels.dtype}; expected integer class numbers")
    return labels.astype(np.int64)


def pad_to(images: np.ndarray | tf.Tensor, size: int | None):
    """Pad H and W symmetrically with -1 (the background) up to `size`, as the reference pads MNIST."""
    if size is None:
        return images
    h, w = int(images.shape[1]), int(images.shape[2])
    if h > size or w > size:
        raise DatasetError(f"images are {h}x{w}, larger than the model's input size {size}x{size}")
    if (size - h) % 2 or (size - w) % 2:
        raise DatasetError(f"images are {h}x{w}; cannot pad them evenly to {size}x{size}")
    ph, pw = (size - h) // 2, (size - w) // 2
    if ph == 0 and pw == 0:
        return images
    paddings = [[0, 0], [ph, ph], [pw, pw], [0, 0]]
    if isinstance(images, np.ndarray):  # uint8 pixels: 0 is the background -1
        return np.pad(images, paddings, constant_values=0 if images.dtype == np.uint8 else -1.0)
    return tf.pad(images, paddings, constant_values=-1.0)
