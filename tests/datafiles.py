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


# ---- image files of each kind the one decoder handles (acai.data.decode) ----

def png_declaring(path: Path, width: int, height: int) -> Path:
    """A ~100-byte PNG whose header declares width x height RGBA pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, colour type 6: RGBA
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def declare_member_size(archive: Path, member: str, size: int) -> None:
    """Rewrite a stored zip's central directory so that `member` declares `size` uncompressed bytes."""
    import struct

    data = bytearray(archive.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46: at + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, at + 24, size)
            archive.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise ValueError(f"{member} is not in {archive}")


class unreadable:
    """chmod 000 on a file, and for root (who reads anything) the effective CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH dropped from this thread (threads it starts inherit that) while inside."""

    def __init__(self, path: Path):
        self.path = path

    def _caps(self, set_to: int | None = None) -> int:
        import ctypes

        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        libc = ctypes.CDLL(None, use_errno=True)
        header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3, this thread
        assert libc.capget(ctypes.byref(header), data) == 0
        if set_to is not None:
            data[0].effective = set_to
            assert libc.capset(ctypes.byref(header), data) == 0, ctypes.get_errno()
        return data[0].effective

    def __enter__(self) -> Path:
        import os

        self.path.chmod(0)
        self.saved = self._caps() if os.geteuid() == 0 else None
        if self.saved is not None:
            self._caps(self.saved & ~0b110)  # bits 1 and 2
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            self._caps(self.saved)
        self.path.chmod(0o644)
