"""The two ends of each interpolation: image files read as a model's input, and pairs of a run's test
images (by index, or seeded pairs whose labels differ), for `src/interpolate.py` and the explorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient
from PIL import Image

from acai.data.decode import ImageReadError, to_pixels
from acai.data.decode import read_image as decode_image
from acai.errors import ConfigError, DatasetError

MODES = ("linear", "spherical")
DEFAULT_PAIRS = 8
# Upper bounds on what is drawn: beyond them a figure takes minutes and gigabytes (a huge --steps or --scale
# hung or ran out of memory). --steps and the rows match the served interpolator's 2..64.
MAX_STEPS = 64
MAX_ROWS = 64
MAX_SCALE = 16
ACCEPTED = "give an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, ...)"


def read_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file by the project's one rule (`acai.data.decode`: upright by EXIF,
    16-bit scaled, alpha kept for the background), so a file gives the pixels a folder dataset gets.

    DatasetError, naming the file and what is accepted, if it cannot be read.
    """
    try:
        return decode_image(path)
    except ImageReadError as e:
        raise DatasetError(f"{e}; {ACCEPTED}") from None


def image_to_array(img: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    """A Pillow image -> float32 [H, W, C] in [-1, 1] for a model whose input is `shape` (C = 1 or 3):
    transparency over the datasets' black background, then resized (Lanczos) to H x W."""
    from acai.data.base import to_unit_range

    h, w, c = shape
    if c not in (1, 3):
        raise DatasetError(f"the model takes {c}-channel images; image files work for 1 (grayscale) or 3 (RGB)")
    pixels = to_pixels(img, c)
    if pixels.shape[:2] != (h, w):
        resized = Image.fromarray(pixels[..., 0] if c == 1 else pixels).resize((w, h), Image.Resampling.LANCZOS)
        pixels = np.asarray(resized, np.uint8).reshape(h, w, c)
    return to_unit_range(pixels)


def load_image(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """An image file as the model's input: float32 [H, W, C] in [-1, 1] (x * 2/255 - 1)."""
    return image_to_array(read_image(path), shape)


def pairs_of(values: list, option: str, example: str) -> list[tuple]:
    """`--indices`/`--images` values two by two: the rows of the figure."""
    if not values or len(values) % 2:
        raise ConfigError(option, values, f"give pairs, an even number of values (e.g. {option} {example})")
    if len(values) > 2 * MAX_ROWS:
        raise ConfigError(option, f"{len(values)} values", f"give at most {MAX_ROWS} pairs (rows of the figure)")
    return list(zip(values[::2], values[1::2]))


def run_test_set(client: MlflowClient, run_id: str, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The test images [N, H, W, C] and labels of the dataset a run was trained on, padded to the model's size."""
    from acai.config import build
    from acai.data.base import Dataset, pad_to
    from acai.tracking.loading import run_config

    dataset = build(run_config(client, run_id).dataset, "dataset", Dataset)
    x, y = dataset.test_set()
    x = pad_to(x, shape[0])
    if x.shape[1:] != shape:
        raise DatasetError(f"dataset={dataset.name} gives images of shape {x.shape[1:]}, but the model takes {shape}")
    return x, y


def pick_pairs(x: np.ndarray, y: np.ndarray, index_pairs: list[tuple] | None, pairs: int | None,
                seed: int) -> np.ndarray:
    """Endpoint images [rows, 2, H, W, C] from the test set: by index, or N seeded pairs whose two images
    differ in label (class, or angle bin on lines), so that every row shows a real interpolation."""
    n = len(x)
    if pairs is not None:
        if n < 2:
            raise DatasetError(f"the run's test set has {n} image(s); --pairs needs at least 2")
        rng = np.random.default_rng(seed)
        a = rng.choice(n, pairs, replace=pairs > n)
        index_pairs = []
        for i in a:
            others = np.flatnonzero(y != y[i])
            others = others if len(others) else np.delete(np.arange(n), i)  # one label only: any other image
            index_pairs.append((int(i), int(rng.choice(others))))
    bad = sorted({i for pair in index_pairs for i in pair if not 0 <= i < n})
    if bad:
        raise DatasetError(f"--indices {bad}: out of range; the run's test set has {n} images (0..{n - 1})")
    return x[np.array(index_pairs)]
