"""The one image decoder of the project: image folders (`dataset=folder`, CelebA) and `src/interpolate.py`.

Both read files through here, so one file gives the same pixels on either path. The rule:

* the image as viewed: EXIF orientation applied (a phone's portrait JPEG stored sideways comes upright);
* 16-bit grayscale scaled to 8 bits (round(v / 257)); 32-bit integer and float images by their range
  (Pillow's own conversion would clip them to white);
* transparency (an alpha channel, or a palette or grayscale colour marked transparent) composited over
  black, the datasets' background (-1), as MNIST's and the lines' background;
* then grayscale (ITU-R 601-2 luma, Pillow's) or RGB as the model or `dataset.channels` asks.

Limits keep one file's memory bounded: a file (or zip member, by the size its header declares) over
`max_file_bytes` is not read, and an image whose header declares more than `max_pixels` pixels is not
decoded (Pillow reads the size lazily, before any pixel). A file that is not a regular file (a FIFO, a
folder, a device, a dangling link) is refused before it is read, so nothing here can wait forever.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from acai.errors import DatasetError, one_line

MAX_PIXELS = 2**26  # 8192 x 8192: 192 MiB as RGB; a 48-megapixel photo fits
MAX_FILE_BYTES = 2**28  # 256 MiB
GRAYSCALE_MODES = ("L", "LA")  # after `normalise_mode`


class ImageReadError(DatasetError):
    """One image file that cannot be used: `reason` says why; the message names the file."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"image file {name!r} cannot be read ({reason})")


@dataclass(frozen=True)
class Limits:
    """Per-file bounds; `setting` names where they come from in messages (e.g. 'dataset.')."""

    max_pixels: int = MAX_PIXELS
    max_file_bytes: int = MAX_FILE_BYTES
    setting: str = ""

    def name(self, limit: str) -> str:
        return f"{self.setting}{limit}={getattr(self, limit):,}" if self.setting else f"{getattr(self, limit):,}"


def file_kind(mode: int) -> str:
    """What a stat mode that is not a regular file is, in words."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def read_file(path: str | Path, limits: Limits = Limits()) -> bytes:
    """A regular file's bytes. Opened non-blocking and checked with fstat before reading, so a FIFO named
    x.png is refused instead of waiting for a writer; at most `max_file_bytes` are read."""
    path = Path(path).expanduser()
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImageReadError(name, "a dangling symbolic link" if path.is_symlink() else "does not exist") from None
    except OSError as e:
        raise ImageReadError(name, one_line(e.strerror or e)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ImageReadError(name, f"not a regular file but {file_kind(info.st_mode)}")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > limits.max_file_bytes:
            raise ImageReadError(name, f"{info.st_size:,} bytes, over the limit {limits.name('max_file_bytes')}")
        try:
            data = f.read(limits.max_file_bytes + 1)
        except OSError as e:
            raise ImageReadError(name, one_line(e.strerror or e)) from None
    if len(data) > limits.max_file_bytes:  # grew while read
        raise ImageReadError(name, f"grew past the limit {limits.name('max_file_bytes')} while read")
    return data


def read_member(archive: zipfile.ZipFile, member: str, label: str, limits: Limits = Limits()) -> bytes:
    """A zip member's bytes; its declared size is checked before anything is decompressed (a 1 MB zip can
    declare and hold gigabytes), and no more than `max_file_bytes` are ever decompressed."""
    try:
        info = archive.getinfo(member)
        if info.file_size > limits.max_file_bytes:
            raise ImageReadError(label, f"declares {info.file_size:,} bytes uncompressed, over the limit "
                                        f"{limits.name('max_file_bytes')}")
        with archive.open(info) as f:
            data = f.read(limits.max_file_bytes + 1)
    except ImageReadError:
        raise
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, RuntimeError) as e:
        raise ImageReadError(label, f"{type(e).__name__}: {one_line(e)}") from None
    if len(data) > limits.max_file_bytes:
        raise ImageReadError(label, f"more bytes than declared, over the limit {limits.name('max_file_bytes')}")
    return data


def open_image(data: bytes, name: str, limits: Limits = Limits()) -> Image.Image:
    """Decoded, upright and in mode L, LA, RGB or RGBA; the declared size is checked before decoding."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > limits.max_pixels:
                raise ImageReadError(name, f"{width}x{height} = {width * height:,} pixels, over the limit "
                                           f"{limits.name('max_pixels')}; not decoded")
            img.load()
            try:
                upright = ImageOps.exif_transpose(img)
            except Exception:  # noqa: BLE001 - malformed EXIF: keep the pixels as stored
                upright = img.copy()
            return normalise_mode(upright)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        reason = "not an image format Pillow recognises"
    except Image.DecompressionBombError as e:
        reason = f"too large to decode safely ({one_line(e)})"
    except Exception as e:  # noqa: BLE001 - corrupt data or odd modes: OSError, SyntaxError, ValueError...
        reason = f"{type(e).__name__}: {one_line(e)}"
    raise ImageReadError(name, reason)


def read_image(path: str | Path, limits: Limits = Limits()) -> Image.Image:
    """An image file decoded by the rule above (mode L, LA, RGB or RGBA), or ImageReadError naming it."""
    return open_image(read_file(path, limits), str(Path(path).expanduser()), limits)


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float images -> 8-bit grayscale ('L'); Pillow's own conversion clips them to white."""
    if img.mode.startswith("I;16"):
        values = np.asarray(img).astype(np.uint32)
        return Image.fromarray(((values + 128) // 257).astype(np.uint8), "L")  # round(v / 257), exactly
    pixels = np.nan_to_num(np.asarray(img, np.float64))  # 'I' (32-bit int) or 'F' (float)
    top = pixels.max(initial=0.0)
    if top > 255.0:
        pixels = pixels * (255.0 / (65535.0 if top <= 65535.0 else top))
    elif 0.0 < top <= 1.0 and img.mode == "F":
        pixels = pixels * 255.0
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")


def normalise_mode(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> L, LA, RGB or RGBA (alpha kept, so transparent pixels can become the background)."""
    if img.mode.startswith("I") or img.mode == "F":
        return _to_8bit(img)
    if img.mode in ("La", "PA", "RGBa") or ("transparency" in img.info and img.mode in ("1", "L", "P", "RGB")):
        return img.convert("LA" if img.mode in ("La", "L", "1") else "RGBA")  # a colour marked transparent too
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img
    return img.convert("L" if img.mode == "1" else "RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX


def to_pixels(img: Image.Image, channels: int) -> np.ndarray:
    """uint8 [H, W, channels] (1 or 3): alpha over black, then grayscale (Pillow's luma) or RGB."""
    img = normalise_mode(img)
    pixels = np.asarray(img)
    if img.mode in ("LA", "RGBA"):
        alpha = pixels[..., -1:].astype(np.uint16)
        pixels = ((pixels[..., :-1] * alpha + 127) // 255).astype(np.uint8)  # round(c * a / 255): over black
    pixels = pixels.reshape(pixels.shape[:2] + (-1,))
    if pixels.shape[-1] == channels:
        return np.ascontiguousarray(pixels)
    if channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    return np.asarray(Image.fromarray(pixels, "RGB").convert("L"))[..., None]


def is_grayscale(img: Image.Image) -> bool:
    """Whether a decoded (`open_image`) image has no colour of its own."""
    return img.mode in GRAYSCALE_MODES
