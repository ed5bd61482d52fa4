"""Tiny dataset files in the real distributed formats, written by the tests (nothing is downloaded).

Images are smooth colour blobs whose hue follows the label, so a model can learn something from them
and a label mix-up shows: class k has hue k/10, and each image a random position and size.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image


def blobs(labels: np.ndarray, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 [N, H, W, 3]: a soft disc of hue label/10 on a dark background, per label."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    rows, cols = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.3, 0.7, (2, n, 1, 1)) * np.array([height, width])[:, None, None, None]
    radius = rng.uniform(0.15, 0.3, (n, 1, 1)) * min(height, width)
    weight = np.clip(1.5 - np.hypot(rows - cy, cols - cx) / radius, 0, 1)[..., None]
    colours = np.array([colorsys.hsv_to_rgb((int(k) % 10) / 10, 0.9, 1.0) for k in labels])[:, None, None, :]
    return np.round(255 * (0.1 + 0.9 * weight * colours)).astype(np.uint8)


def write_svhn(folder: Path, n_train: int = 96, n_test: int = 40, n_extra: int = 0, seed: int = 0) -> Path:
    """SVHN's `*_32x32.mat` layout: X 32x32x3xN uint8, y Nx1 uint8 digits 1..10 (10 = zero)."""
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    for i, (part, n) in enumerate((("train", n_train), ("test", n_test), ("extra", n_extra))):
        if n:
            digits = np.arange(n) % 10
            x = blobs(digits, seed=seed + i).transpose(1, 2, 3, 0)
            y = np.where(digits == 0, 10, digits)[:, None].astype(np.uint8)
            savemat(folder / f"{part}_32x32.mat", {"X": x, "y": y})
    return folder


def cifar_records(labels: np.ndarray, seed: int = 0) -> bytes:
    """CIFAR-10 binary records: one label byte + 3,072 bytes as R, G, B planes of 32x32."""
    images = blobs(labels, seed=seed).transpose(0, 3, 1, 2).reshape(len(labels), -1)
    return np.concatenate([np.asarray(labels, np.uint8)[:, None], images], axis=1).tobytes()


def write_cifar10(folder: Path, per_batch: int = 20, n_test: int = 30) -> Path:
    """The extracted `cifar-10-batches-bin/` folder (5 training batches and the test batch)."""
    bins = folder / "cifar-10-batches-bin"
    bins.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (bins / f"data_batch_{i}.bin").write_bytes(cifar_records(np.arange(per_batch) % 10, seed=i))
    (bins / "test_batch.bin").write_bytes(cifar_records(np.arange(n_test) % 10, seed=9))
    return bins


def write_images(folder: Path, n: int, classes: list[str] | None = None, size: tuple[int, int] = (40, 48),
                 suffix: str = ".jpg", mode: str = "RGB", seed: int = 0) -> Path:
    """n images of size (width, height) as files: in class sub-folders, or flat when `classes` is None."""
    labels = np.arange(n) % len(classes or [0])
    pixels = blobs(labels * (10 // max(1, len(classes or [0]))), height=size[1], width=size[0], seed=seed)
    for i, (label, image) in enumerate(zip(labels, pixels, strict=True)):
        target = folder / classes[label] if classes else folder
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).convert(mode).save(target / f"{i:06d}{suffix}", quality=95)
    return folder


def write_celeba(folder: Path, n: int = 24) -> Path:
    """`img_align_celeba/` with 178x218 JPEGs named as CelebA's (000001.jpg ...)."""
    images = folder / "img_align_celeba"
    write_images(images, n, size=(178, 218))
    for f in sorted(images.iterdir(), reverse=True):
        f.rename(images / f"{int(f.stem) + 1:06d}.jpg")
    return images
