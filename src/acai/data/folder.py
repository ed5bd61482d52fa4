"""Any folder (or .zip) of PNG/JPEG images, decoded once into the prepared uint8 format.

Layout: class sub-folders give labels (`cats/1.jpg`, `dogs/2.png`: classes in name order); images
directly in the folder give none (`num_classes` 0). One wrapping folder, as in a zip of a folder, is
looked through. Images are stored in an order shuffled once by `order_seed` (so that the reference's
1,024-image shuffle buffer sees every class, not one class folder at a time). `train/` and `test/`
sub-folders are used as the splits; otherwise the first `test_size` of that order are held out
(`holdout: false` tests on the first `test_size` images in name
order, which also stay in training, as the reference does for CelebA). `test_size: null` holds out a
tenth of the images, 2 to 1,000.

Files are decoded by `acai.data.decode` (the same pixels as `src/interpolate.py`: upright by EXIF,
16-bit scaled, transparency over black), converted to `channels` (1: grayscale, 3: RGB; conversions are
counted and reported), cropped by `crop` = [top, bottom, left, right] pixels, centre-cropped to a square,
and resized to `size` with TensorFlow's bicubic kernel as the reference's `tf.image.resize_bicubic` (TF1
pixel alignment): reduced or, for smaller images (28x28 Fashion-MNIST PNGs), enlarged, and said so.
Symbolic links are followed (to files and folders, wherever they point), each real folder read once.
Anything that cannot be used (not a regular file, a dangling link, unreadable, not an image, over
`max_file_bytes` or `max_pixels`) is skipped with a warning that names it; the run fails only if none is
left.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acai.data.arrays import ArrayDataset
from acai.data.decode import (
    MAX_FILE_BYTES,
    MAX_PIXELS,
    ImageReadError,
    Limits,
    file_kind,
    is_grayscale,
    open_image,
    read_file,
    read_member,
    to_pixels,
)
from acai.data.prepared import PrepareProgress, Split, chunks, prepared, source_key
from acai.errors import ConfigError, DatasetError

EXTENSIONS = (".png", ".jpg", ".jpeg")
SHOW = 5  # skipped files named in the warning
TEST_SHARE, TEST_MAX = 10, 1000  # test_size: null holds out a tenth of the images, 2 to 1,000
SMALL = 10_000  # fewer training images than this at the paper's depth: point to the *_cpu preset


def scan(root: Path) -> tuple[list[str], list[str]]:
    """Image names under `root` (POSIX, relative) and notes on what was left out.

    Symbolic links are followed wherever they point (a folder of links into a larger set is a common way
    to pick a subset); a folder reached twice (a link loop, two links to one folder) is read once, by the
    first path in name order. Only
    regular files are kept: a FIFO named x.png would block its reader, a dangling link cannot be read."""
    names: list[str] = []
    skipped: list[str] = []
    seen: dict[tuple[int, int], str] = {}

    def unlisted(error: OSError) -> None:
        where = Path(error.filename or root)
        rel = where.relative_to(root).as_posix() if where.is_relative_to(root) else str(where)
        skipped.append(f"{rel}/ (cannot be listed: {error.strerror})")

    for folder, dirs, files in os.walk(root, onerror=unlisted, followlinks=True):
        here = Path(folder)
        rel = here.relative_to(root)
        try:
            info = here.stat()
        except OSError as e:
            skipped.append(f"{rel.as_posix()}/ ({e.strerror})")
            dirs[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            skipped.append(f"{rel.as_posix()}/ (the same folder as {seen[key]}/, read once)")
            dirs[:] = []
            continue
        seen[key] = rel.as_posix()
        dirs.sort()  # of two ways into one folder, the first in name order is the one read
        for f in files:
            if not f.lower().endswith(EXTENSIONS):
                continue
            name = (rel / f).as_posix()
            try:
                mode = (here / f).stat().st_mode
            except FileNotFoundError:
                skipped.append(f"{name} (a dangling symbolic link)")
                continue
            except OSError as e:
                skipped.append(f"{name} ({e.strerror})")
                continue
            if not stat.S_ISREG(mode):
                skipped.append(f"{name} (not a regular file but {file_kind(mode)})")
                continue
            names.append(name)
    return sorted(names), skipped


class Source:
    """The image files under a folder or inside a zip, by relative POSIX name, read within `limits`."""

    def __init__(self, path: str, limits: Limits):
        self.path, self.limits = Path(path).expanduser(), limits
        self.zip: zipfile.ZipFile | None = None
        self.skipped: list[str] = []  # found while listing: not regular files, folders read twice
        if self.path.is_file() and self.path.suffix.lower() == ".zip":
            try:
                self.zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as e:
                raise DatasetError(f"dataset.path={path!r}: not a readable zip file ({e})") from None
            self.names = sorted(n for n in self.zip.namelist() if n.lower().endswith(EXTENSIONS))
        elif self.path.is_dir():
            self.names, self.skipped = scan(self.path)
        else:
            raise DatasetError(f"dataset.path={path!r} does not exist or is not a folder or .zip of images")
        if not self.names:
            raise DatasetError(f"dataset.path={path!r} holds no image ({', '.join(EXTENSIONS)} files, searched "
                               "in every sub-folder)" + (f"; skipped: {'; '.join(self.skipped[:SHOW])}"
                                                         if self.skipped else ""))

    def files(self) -> list[Path]:
        """What the cache key hashes: the zip, or every image file."""
        return [self.path] if self.zip else [self.path / n for n in self.names]

    def read(self, name: str) -> bytes:
        """The file's bytes; ImageReadError (with the reason) for anything that cannot be read."""
        if self.zip is not None:
            return read_member(self.zip, name, name, self.limits)
        return read_file(self.path / name, self.limits)


def strip_wrapper(names: list[str]) -> tuple[list[str], str]:
    """Look through folders that wrap everything (`img_align_celeba/...` in CelebA's zip): (names, prefix)."""
    prefix = ""
    while all("/" in n for n in names) and len({n.split("/")[0] for n in names}) == 1 \
            and names[0].split("/")[0].lower() not in ("train", "test"):
        top = names[0].split("/")[0] + "/"
        prefix, names = prefix + top, [n[len(top):] for n in names]
    return names, prefix


def layout(names: list[str], source: str) -> tuple[dict[str, list[str]], list[str]]:
    """Split names ({"train": [...], "test": [...]} or {"all": [...]}) and class names ([] if flat)."""
    tops = {n.split("/")[0].lower() for n in names if "/" in n}
    splits: dict[str, list[str]]
    if tops and tops <= {"train", "test"} and all("/" in n for n in names):
        splits = {s: [n for n in names if n.split("/")[0].lower() == s] for s in ("train", "test")}
        if not splits["train"] or not splits["test"]:
            raise DatasetError(f"{source}: has train/ and test/ folders but one of them holds no image")
        inner = {s: [n.split("/", 1)[1] for n in v] for s, v in splits.items()}
    else:
        splits, inner = {"all": names}, {"all": names}
    flat = ["/" not in n for v in inner.values() for n in v]
    if any(flat) and not all(flat):
        example = next(n for v in inner.values() for n in v if "/" not in n)
        raise DatasetError(f"{source}: images both in class sub-folders and at the top (e.g. {example!r}); put every "
                           "image in a class folder, or none")
    classes = [] if all(flat) else sorted({n.split("/")[0] for v in inner.values() for n in v})
    return splits, classes


@dataclass
class Decoded:
    image: np.ndarray | None
    converted: bool = False  # grayscale made RGB, or colour made grayscale
    enlarged: bool = False  # smaller than `size`: resized up
    error: str = ""


@dataclass
class ImageFolder(ArrayDataset):
    """Images from a folder or zip, labelled by sub-folder; prepared once (see the module docstring)."""

    name: str = "folder"
    num_classes: int | None = None  # null: as many as class sub-folders (0 for a flat folder)
    size: int = 32
    crop: list[int] | None = None  # pixels removed from [top, bottom, left, right] before resizing
    channels: int = 3
    test_size: int | None = None  # null: a tenth of the images, 2 to 1,000 (said in a note)
    holdout: bool = True  # false: test on the first test_size images (in name order), also trained on
    order_seed: int = 0  # images are stored shuffled once by this seed (a folder is sorted by class)
    max_pixels: int = MAX_PIXELS  # an image declaring more (width x height) is skipped, never decoded
    max_file_bytes: int = MAX_FILE_BYTES  # a file (or zip member, as declared) larger is skipped, never read

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.channels not in (1, 3):
            raise ConfigError("dataset.channels", self.channels, "1 (grayscale) or 3 (RGB)")
        if self.size < 1:
            raise ConfigError("dataset.size", self.size, "the side in pixels the images are resized to, >= 1")
        if self.crop is not None and (len(self.crop) != 4 or min(self.crop) < 0):
            raise ConfigError("dataset.crop", self.crop, "null or 4 pixel counts >= 0: [top, bottom, left, right]")
        if self.test_size is not None and self.test_size < 2:
            raise ConfigError("dataset.test_size", self.test_size,
                              "the number of test images, >= 2, or null (a tenth of the images, 2 to 1,000)")
        for setting in ("max_pixels", "max_file_bytes"):
            value = getattr(self, setting)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"dataset.{setting}", value, "a whole number >= 1 (the per-image limit)")

    @property
    def limits(self) -> Limits:
        return Limits(self.max_pixels, self.max_file_bytes, "dataset.")

    def label_of(self, name: str) -> int:
        classes = getattr(self, "class_names", [])
        return classes.index(name.split("/")[0]) if classes else 0

    def load(self) -> dict[str, Split]:
        if not self.path:
            raise ConfigError("dataset.path", None, f"dataset={self.name} reads a folder or .zip of images: set "
                              "dataset.path")
        source = Source(self.path, self.limits)
        names, prefix = strip_wrapper(source.names)
        splits, classes = layout(names, f"dataset.path={self.path!r}")
        if self.num_classes is not None and self.num_classes != len(classes):
            raise ConfigError("dataset.num_classes", self.num_classes,
                              f"dataset.path={self.path!r} has {len(classes)} class sub-folder(s) {classes[:10]}; "
                              "use null to take them from the folder")
        self.num_classes, self.class_names = len(classes), classes
        in_split_folders = "all" not in splits  # names start with train/ or test/
        splits = self.arrange(splits)
        settings = (self.size, self.crop, self.channels, self.max_pixels, self.max_file_bytes)

        def build(open_split) -> dict[str, object]:
            progress = PrepareProgress(self.name, sum(len(v) for v in splits.values()))
            done, skipped, converted, enlarged = 0, [], Counter(), 0
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                for split, members in splits.items():
                    writer = open_split(split)
                    for part in chunks(len(members), 1024):
                        batch = members[part]
                        decoded = list(pool.map(lambda n: self.decode(source, prefix + n), batch))
                        kept = [(n, d) for n, d in zip(batch, decoded, strict=True) if d.image is not None]
                        skipped += [f"{prefix + n} ({d.error})" for n, d in zip(batch, decoded, strict=True)
                                    if d.image is None]
                        converted.update(d.converted for _, d in kept)
                        enlarged += sum(d.enlarged for _, d in kept)
                        if kept:
                            writer.write(self.resize([d.image for _, d in kept]),
                                         [self.label_of(n.split("/", 1)[1] if in_split_folders else n)
                                          for n, _ in kept])
                        done += len(batch)
                        progress.update(done)
            return {"skipped": skipped, "converted": converted[True], "kept": converted[False],
                    "enlarged": enlarged, "classes": classes}

        data, info = prepared(self.name, source_key(source.files(), prefix, splits, *settings), build)
        data = self.with_test(data)
        self.report(source.skipped + info["skipped"], info, data)
        return data

    def with_test(self, data: dict[str, Split]) -> dict[str, Split]:
        """Without a prepared test split (`holdout: false`), the first `test_size` training images."""
        if "test" not in data:
            train = data["train"]
            data["test"] = Split(np.asarray(train.x[: self.test_size]), train.y[: self.test_size])
        return data

    def held_out(self, count: int) -> int:
        """`test_size`, or for null a tenth of the `count` images (2 to 1,000), said in a note."""
        if count < 3:
            raise DatasetError(f"dataset.path={self.path!r} has {count} image(s); at least 3 are needed (2 to "
                               "test on, 1 to train on)")
        if self.test_size is not None:
            if self.test_size >= count:
                raise ConfigError("dataset.test_size", self.test_size,
                                  f"dataset.path={self.path!r} has {count} images; hold out fewer, or use null "
                                  "(a tenth of them)")
            return self.test_size
        self.test_size = min(TEST_MAX, max(2, count // TEST_SHARE))
        if self.test_size < TEST_MAX:
            self.note(f"dataset.test_size: {self.test_size:,} of the {count:,} images are the test set (a tenth, "
                      f"2 to {TEST_MAX:,}, for dataset.test_size=null; set it to choose)")
        return self.test_size

    def arrange(self, splits: dict[str, list[str]]) -> dict[str, list[str]]:
        """The stored order of each split: shuffled once with `order_seed` (a folder is sorted by class, and
        the reference's 1,024-image shuffle buffer over it would see one class at a time), the first
        `test_size` held out; with `holdout: false` the files' own order (CelebA, as the reference)."""
        rng = np.random.default_rng(self.order_seed)
        if "all" not in splits:  # train/ and test/ folders
            return {split: [names[i] for i in rng.permutation(len(names))] for split, names in splits.items()}
        names = splits["all"]
        test_size = self.held_out(len(names))
        if not self.holdout:  # the test split is read back from the first prepared images (see load)
            return {"train": names}
        order = [names[i] for i in rng.permutation(len(names))]
        return {"train": order[test_size:], "test": order[:test_size]}

    def decode(self, source: Source, name: str) -> Decoded:
        """One file -> a square uint8 HxWxC crop (of any side), or why it could not be used."""
        try:
            img = open_image(source.read(name), name, self.limits)
            pixels = to_pixels(img, self.channels)
        except ImageReadError as e:
            return Decoded(None, error=e.reason)
        h, w = pixels.shape[:2]
        if self.crop:
            top, bottom, left, right = self.crop
            pixels = pixels[top: max(top, h - bottom), left: max(left, w - right)]
            if not pixels.size:
                return Decoded(None, error=f"{w}x{h} pixels: nothing is left after dataset.crop={self.crop}")
        side = min(pixels.shape[:2])
        top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
        return Decoded(pixels[top: top + side, left: left + side], is_grayscale(img) != (self.channels == 1),
                       side < self.size)

    def resize(self, images: list[np.ndarray]) -> np.ndarray:
        """Square crops of any sizes -> [N, size, size, C] uint8, bicubic as TF1's resize_bicubic."""
        import tensorflow as tf

        out = np.empty((len(images), self.size, self.size, self.channels), np.uint8)
        for side in {im.shape[0] for im in images}:
            index = [i for i, im in enumerate(images) if im.shape[0] == side]
            group = np.stack([images[i] for i in index]) if len(index) > 1 else images[index[0]][None]
            if side != self.size:  # uint8 in: the same floats out as float32 in, without a 4x larger copy
                resized = tf.raw_ops.ResizeBicubic(images=group, size=[self.size, self.size],
                                                   align_corners=False, half_pixel_centers=False)
                group = np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)
            out[index] = group
        return out

    def report(self, skipped: list[str], info: dict, data: dict[str, Split]) -> None:
        """Notes on what was skipped, converted and enlarged, and on a small folder at the paper's depth."""
        shown = "; ".join(skipped[:SHOW]) + (f"; and {len(skipped) - SHOW} more" if len(skipped) > SHOW else "")
        if skipped:
            self.note(f"skipped {len(skipped)} unreadable image(s) in dataset.path={self.path!r}: {shown}")
        if not len(data["train"].y) or not len(data["test"].y):
            raise DatasetError(f"dataset.path={self.path!r}: no readable image left in the "
                               f"{'train' if not len(data['train'].y) else 'test'} split"
                               + (f" (skipped {len(skipped)}: {shown})" if skipped else ""))
        total = info["converted"] + info["kept"]
        if n := info["converted"]:
            kind = "colour, converted to grayscale" if self.channels == 1 else "grayscale, converted to RGB"
            self.note(f"{n:,} of {total:,} images were {kind} (dataset.channels={self.channels})")
        if n := info.get("enlarged", 0):
            after = " after dataset.crop" if self.crop else ""
            self.note(f"{n:,} of {total:,} images were smaller than dataset.size={self.size}{after} and were "
                      "enlarged to it (bicubic, the kernel that reduces larger ones)")
        if (n := len(data["train"].y)) < SMALL and self.depth > 16:
            self.note(f"dataset.path={self.path!r} gives {n:,} training images, a small set for the paper's conv "
                      f"depth {self.depth} (hours on a CPU): add experiment={self.name}_cpu for depth 16, "
                      "a run of minutes")
