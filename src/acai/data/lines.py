"""The paper's synthetic lines benchmark: 32x32 anti-aliased 2-px lines from the centre.

`draw_lines` is a vectorised float64 port of the reference's scanline rasteriser (`lib/data.py:
draw_line`): the same end points, the same fractional coverage at the edges and ends, the same
`2 * coverage - 1` then clip to [-1, 1]. Training lines are drawn fresh for every batch from a
counter-based RNG, so batch `i` of seed `s` is the same on every run and on resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import tensorflow as tf

from acai.data.base import Dataset, pad_to

TWO_PI = 2.0 * math.pi


def draw_lines(angles: np.ndarray, size: int = 32, width: float = 2.0) -> np.ndarray:
    """Draw one line per angle; returns float32 [N, size, size, 1] in [-1, 1].

    Rows follow -sin(angle) and columns cos(angle): angle 0 points right, pi/2 points up.
    """
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    centre = size * 0.5
    end_col = centre + (centre - 1) * np.cos(-a)
    end_row = centre + (centre - 1) * np.sin(-a)
    # Scan along the major axis; `flip` means the major axis is the column axis.
    flip = np.abs(end_row - centre) < np.abs(end_col - centre)
    major_end = np.where(flip, end_col, end_row)
    minor_end = np.where(flip, end_row, end_col)
    backwards = major_end < centre
    major0 = np.where(backwards, major_end, centre)
    major1 = np.where(backwards, centre, major_end)
    minor0 = np.where(backwards, minor_end, centre) - width / 2
    minor1 = np.where(backwards, centre, minor_end) - width / 2
    d_major = major1 - major0
    slope = np.where(d_major != 0, (minor1 - minor0) / np.where(d_major != 0, d_major, 1.0), 0.0)

    idx = np.arange(size, dtype=np.float64)
    lines = idx[None, :]  # candidate scanlines along the major axis
    first_full, last_full = np.ceil(major0)[:, None], np.floor(major1)[:, None]
    active = (lines >= np.floor(major0)[:, None]) & (lines < np.ceil(major1)[:, None])
    weight = np.where(
        lines < first_full, first_full - major0[:, None],
        np.where(lines > last_full, major1[:, None] - last_full, 1.0),
    )
    start = minor0[:, None] + (lines - major0[:, None] - 0.5) * slope[:, None]
    stop = start + width
    full_lo, full_hi = np.ceil(start), np.floor(stop)
    cols = idx[None, None, :]
    body = (cols >= full_lo[..., None]) & (cols < full_hi[..., None])
    left = (full_lo != start)[..., None] & (cols == np.floor(start)[..., None])
    right = (full_hi != stop)[..., None] & (cols == full_hi[..., None])
    coverage = (
        body
        + left * (full_lo - start)[..., None]
        + right * (stop - full_hi)[..., None]
    ) * (weight * active)[..., None]
    coverage = np.where(flip[:, None, None], coverage.transpose(0, 2, 1), coverage)
    return np.clip(2.0 * coverage - 1.0, -1.0, 1.0).astype(np.float32)[..., None]


def angle_labels(angles: np.ndarray) -> np.ndarray:
    """The reference's 10 angle bins: int(10 * angle / (2 pi - 1e-6)), capped at 9 (the reference gives a
    stray label 10 to angles within 1e-6 of 2 pi, a 1-in-6-million event that would break a 10-way softmax)."""
    return np.minimum((10.0 * np.asarray(angles, np.float64) / (TWO_PI - 1e-6)).astype(np.int64), 9)


def random_angles(seed: int, index: int, n: int) -> np.ndarray:
    """Angles uniform on [0, 2 pi) from a counter-based stream (seed, index)."""
    return np.random.default_rng([seed, index]).uniform(0.0, TWO_PI, n)


@dataclass
class Lines(Dataset):
    """Generated lines: no download, fresh training lines every batch, a fixed seeded test set."""

    label_name: ClassVar[str] = "angle bin"  # labels: the angle in 10 bins of 36 degrees

    name: str = "lines"
    size: int = 32
    test_size: int = 5000
    test_seed: int = 123
    latent_width: int = 2
    latent_dim: int = 64
    interpolation_benchmark: bool = True

    def _fixed(self, stream: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        angles = random_angles(self.test_seed, stream, n)
        return draw_lines(angles, self.size), angle_labels(angles)

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        return self.limit(*self._fixed(0, self.test_size))

    def train_set(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        return self._fixed(1, limit)

    def train_batches(self, batch_size: int, seed: int, image_size: int | None,
                      start_step: int = 0) -> tf.data.Dataset:
        size = self.size

        def batch(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            angles = random_angles(seed, int(index), batch_size)
            return draw_lines(angles, size), angle_labels(angles)

        def make(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x, y = tf.numpy_function(batch, [index], (tf.float32, tf.int64), stateful=False)
            x = tf.ensure_shape(x, (batch_size, size, size, 1))
            return pad_to(x, image_size), tf.ensure_shape(y, (batch_size,))

        return (
            tf.data.Dataset.counter(start_step)
            .map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )
