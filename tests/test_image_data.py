"""Image datasets from local files: IDX and .npz, padding, and clear errors for bad files; image folders
decoded by the one decoder that src/interpolate.py shares, their limits and their prepared cache."""

import gzip
import os
import struct
import zipfile

import numpy as np
import pytest
from conftest import FASHION
from datafiles import declare_member_size, png_declaring, unreadable, write_images
from PIL import Image

from acai.data.base import pad_to, unit_range
from acai.data.folder import ImageFolder
from acai.data.images import ImageDataset, read_idx
from acai.errors import ConfigError, DatasetError
from acai.interpolate.inputs import load_image


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_idx_folder(folder, n=20):
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n // 2, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n // 2))


def test_idx_folder_loads_scaled_to_unit_range(tmp_path):
    write_idx_folder(tmp_path)
    ds = ImageDataset(path=str(tmp_path))
    x, y = ds.test_set()
    assert x.shape == (10, 28, 28, 1) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0 and y.shape == (10,)
    raw = read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_allclose(x[..., 0], raw * (2 / 255) - 1, atol=1e-6)


def test_npz_loads_and_batches_are_padded_for_conv(tiny_mnist):
    ds = ImageDataset(path=str(tiny_mnist))
    x, _ = next(iter(ds.train_batches(16, seed=0, image_size=32)))
    assert x.shape == (16, 32, 32, 1)
    assert np.all(x.numpy()[:, :2] == -1.0) and np.all(x.numpy()[:, :, -2:] == -1.0)


def test_pad_to_surrounds_with_background():
    img = np.ones((1, 28, 28, 1), np.float32)
    out = pad_to(img, 32)
    assert out.shape == (1, 32, 32, 1) and out.sum() == 28 * 28 - (32 * 32 - 28 * 28)
    # stored pixels (the clustering set of image datasets) pad with 0, which converts to the same -1
    pixels = pad_to(np.full((1, 28, 28, 1), 255, np.uint8), 32)
    assert np.array_equal(unit_range(pixels), out)


def test_truncated_idx_file_is_named(tmp_path):
    write_idx_folder(tmp_path)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress(p.read_bytes())
    p.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(DatasetError, match="truncated"):
        ImageDataset(path=str(tmp_path)).test_set()


def test_missing_path_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ImageDataset(path=str(tmp_path / "nowhere")).test_set()
    with pytest.raises(DatasetError, match="no train-images-idx3-ubyte.gz"):
        (tmp_path / "empty").mkdir()
        ImageDataset(path=str(tmp_path / "empty")).test_set()


def test_corrupt_npz_is_reported(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(DatasetError, match="corrupt"):
        ImageDataset(path=str(bad)).test_set()


@pytest.mark.skipif(not FASHION.exists(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian():
    ds = ImageDataset(name="fashion_mnist", path=str(FASHION))
    x, y = ds.test_set()
    assert x.shape == (10000, 28, 28, 1) and sorted(set(y.tolist())) == list(range(10))
    assert ds.train_set(60000)[0].shape == (60000, 28, 28, 1)


def test_training_batches_shuffle_within_the_references_1024_buffer(tmp_path):
    """lib/data.py: shuffle(1024).repeat(). On data stored in order, the first batch can only hold
    examples among the first 1024 + batch - 1; a 60k buffer would draw from the whole set."""
    n = 4096
    x = np.repeat((np.arange(n) // 16).astype(np.uint8), 28 * 28).reshape(n, 28, 28)  # pixel = index // 16
    y = np.zeros(n, np.uint8)
    np.savez(tmp_path / "ordered.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    ds = ImageDataset(path=str(tmp_path / "ordered.npz"))
    assert ds.shuffle_buffer == 1024
    batch, _ = next(iter(ds.train_batches(64, seed=0, image_size=None)))
    index = np.round((batch.numpy()[:, 0, 0, 0] + 1) * 255 / 2) * 16
    assert index.max() < 1024 + 64 and len(np.unique(index)) > 16


# ---- image folders: one decoder with src/interpolate.py ----

def deep_png(path):
    """16-bit grayscale, a ramp over the whole range: 8 bits are round(v / 257), not clipped to white."""
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
    Image.fromarray(ramp).save(path)
    return np.repeat(((ramp.astype(np.uint32) + 128) // 257).astype(np.uint8)[..., None], 3, -1), 0


def turned_jpeg(path):
    """Stored with the left half white and EXIF orientation 6 ("rotate 90 degrees clockwise to view"):
    viewed upright the top half is white."""
    stored = np.zeros((32, 32), np.uint8)
    stored[:, :16] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored, "L").save(path, exif=exif, quality=100)
    return np.repeat(np.rot90(stored, -1)[..., None], 3, -1), 12  # JPEG blurs the edge a little


def palette_png(path):
    """A palette image whose index 0 (white) is transparent: those pixels are the black background."""
    index = np.zeros((32, 32), np.uint8)
    index[8:24, 8:24] = 1
    img = Image.fromarray(index, "P")
    img.putpalette([255, 255, 255, 200, 30, 0] + [0] * 762)
    img.save(path, transparency=0)
    expected = np.zeros((32, 32, 3), np.uint8)
    expected[8:24, 8:24] = (200, 30, 0)
    return expected, 0


def grey_alpha_png(path):
    """Grayscale with alpha: 200 at half opacity over black is 100."""
    pixels = np.zeros((32, 32, 2), np.uint8)
    pixels[..., 0], pixels[:, 16:, 1], pixels[:, :16, 1] = 200, 128, 255
    Image.fromarray(pixels, "LA").save(path)
    expected = np.zeros((32, 32, 3), np.uint8)
    expected[:, :16], expected[:, 16:] = 200, round(200 * 128 / 255)
    return expected, 0


def keyed_grey_png(path):
    """Grayscale whose value 255 is marked transparent (a tRNS chunk): those pixels are black, 200 stays."""
    pixels = np.full((32, 32), 255, np.uint8)
    pixels[:, ::2] = 200
    Image.fromarray(pixels, "L").save(path, transparency=255)
    return np.repeat(np.where(pixels == 255, 0, 200).astype(np.uint8)[..., None], 3, -1), 0


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("kind", [deep_png, turned_jpeg, palette_png, grey_alpha_png, keyed_grey_png])
def test_folder_and_interpolate_decode_each_kind_of_file_to_the_same_expected_pixels(tmp_path, kind, channels):
    folder = tmp_path / "folder"
    folder.mkdir()
    path = folder / ("a.jpg" if kind is turned_jpeg else "a.png")
    expected, tolerance = kind(path)
    for i in range(3):
        Image.new("RGB", (32, 32), (9, 9, 9)).save(folder / f"z{i}.png")
    ds = ImageFolder(path=str(folder), test_size=2, holdout=False, channels=channels)
    from_folder = np.asarray(ds.splits["train"].x[:1])[0]  # name order: a.* first
    from_file = np.rint((load_image(path, (32, 32, channels)) + 1) * 255 / 2).astype(np.uint8)
    assert np.array_equal(from_folder, from_file)
    if channels == 1:
        expected = np.asarray(Image.fromarray(expected).convert("L"))[..., None]
    assert int(np.abs(from_folder.astype(int) - expected).max()) <= tolerance


def test_files_that_are_not_regular_images_are_skipped_by_name_and_links_are_followed_once(tmp_path):
    folder = write_images(tmp_path / "f", 6, size=(32, 32), suffix=".png")  # stored as they are
    elsewhere = write_images(tmp_path / "elsewhere", 1, size=(32, 32), suffix=".png", seed=3)
    os.mkfifo(folder / "x.png")  # read naively, this waits forever for a writer
    (folder / "y.jpg").mkdir()
    (folder / "d.png").symlink_to(tmp_path / "gone.png")
    (folder / "linked.png").symlink_to(elsewhere / "000000.png")  # outside the folder: followed
    (folder / "loop").symlink_to(folder)  # a link loop: read once
    (folder / "u.png").write_bytes((folder / "000000.png").read_bytes())
    (folder / "locked").mkdir()
    with unreadable(folder / "u.png"), unreadable(folder / "locked"):
        ds = ImageFolder(path=str(folder), test_size=2)
        ds.test_set()
    assert len(ds.splits["train"].y) + len(ds.splits["test"].y) == 7  # 6 images and the linked one
    linked = np.asarray(Image.open(elsewhere / "000000.png"))
    assert any(np.array_equal(linked, im) for s in ds.splits.values() for im in np.asarray(s.x[:]))
    note = next(n for n in ds.notes() if n.startswith("skipped"))
    assert "skipped 5 unreadable image(s)" in note
    for part in ("x.png (not a regular file but a FIFO)", "d.png (a dangling symbolic link)",
                 "u.png (Permission denied)", "loop/ (the same folder as ./, read once)",
                 "locked/ (cannot be listed: Permission denied)"):
        assert part in note


def test_an_image_declaring_a_huge_size_is_skipped_before_it_is_decoded(tmp_path):
    folder = write_images(tmp_path / "f", 4, suffix=".png")
    png_declaring(folder / "bomb.png", 9000, 9000)  # 100 bytes; decoded it would be 324 MB
    ds = ImageFolder(path=str(folder), test_size=2)
    assert len(ds.splits["train"].y) + len(ds.splits["test"].y) == 4
    assert ("bomb.png (9000x9000 = 81,000,000 pixels, over the limit dataset.max_pixels=67,108,864; not "
            "decoded)") in " ".join(ds.notes())
    tight = ImageFolder(path=str(folder), test_size=2, max_pixels=40 * 48 - 1)  # the 40x48 images too
    with pytest.raises(DatasetError, match=r"no readable image left in the \w+ split \(skipped 5: .*40x48 = 1,920 "
                                           r"pixels, over the limit dataset.max_pixels=1,919"):
        tight.test_set()
    with pytest.raises(ConfigError, match="dataset.max_pixels=0"):
        ImageFolder(path=str(folder), max_pixels=0)


def test_a_zip_member_or_file_over_max_file_bytes_is_skipped_before_it_is_read(tmp_path):
    folder = write_images(tmp_path / "f", 4, suffix=".png")
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f.name)
        z.writestr("zeros.png", bytes(2_000_000))  # 2 MB of zeros compress to 2 kB
        z.writestr("liar.png", b"small")
    declare_member_size(archive, "liar.png", 4_000_000_000)
    ds = ImageFolder(path=str(archive), test_size=2, max_file_bytes=1_000_000)
    assert len(ds.splits["train"].y) + len(ds.splits["test"].y) == 4
    note = " ".join(ds.notes())
    assert "zeros.png (declares 2,000,000 bytes uncompressed, over the limit dataset.max_file_bytes=1,000,000)" in note
    assert "liar.png (declares 4,000,000,000 bytes uncompressed" in note
    (folder / "big.png").write_bytes(bytes(1_000_001))
    ds = ImageFolder(path=str(folder), test_size=2, max_file_bytes=1_000_000)
    ds.test_set()
    assert "big.png (1,000,001 bytes, over the limit dataset.max_file_bytes=1,000,000)" in " ".join(ds.notes())


def test_a_folder_of_small_images_is_enlarged_and_a_default_test_size_adapts(tmp_path):
    """Fashion-MNIST exported as 150 PNGs of 28x28: enlarged to 32 (bicubic), a tenth held out, and a
    note pointing to experiment=folder_cpu for so small a set at depth 64."""
    import tensorflow as tf

    folder = write_images(tmp_path / "fashion", 150, ["shirt", "shoe"], size=(28, 28), suffix=".png")
    ds = ImageFolder(path=str(folder), holdout=False, depth=64)  # conf/dataset/folder.yaml's depth
    x, _ = ds.test_set()
    assert x.shape == (15, 32, 32, 3) and ds.test_size == 15 and len(ds.splits["train"].y) == 150
    first = sorted(folder.rglob("*.png"))[0]
    original = np.asarray(Image.open(first), np.float32)[None]
    resized = tf.raw_ops.ResizeBicubic(images=original, size=[32, 32], align_corners=False, half_pixel_centers=False)
    assert np.array_equal(np.asarray(ds.splits["train"].x[:1]), np.clip(np.round(resized), 0, 255).astype(np.uint8))
    notes = " ".join(ds.notes())
    assert "150 of 150 images were smaller than dataset.size=32 and were enlarged" in notes
    assert "dataset.test_size: 15 of the 150 images are the test set" in notes
    assert "experiment=folder_cpu" in notes
    cpu = ImageFolder(path=str(folder), depth=16)
    cpu.test_set()
    assert "experiment=folder_cpu" not in " ".join(cpu.notes())
    with pytest.raises(ConfigError, match=r"dataset.test_size=200 .* has 150 images"):
        ImageFolder(path=str(folder), test_size=200).test_set()


def test_a_skipped_file_is_named_by_its_path_not_by_a_buffer(tmp_path):
    folder = write_images(tmp_path / "f", 4, ["a", "b"], suffix=".png")
    (folder / "b" / "notes.png").write_text("not a picture")
    ds = ImageFolder(path=str(folder), test_size=2)
    ds.test_set()
    note = next(n for n in ds.notes() if n.startswith("skipped"))
    assert "b/notes.png (not an image format Pillow recognises)" in note and "BytesIO" not in note


# ---- the prepared cache checks itself ----

def prepared_folder(tmp_path):
    folder = write_images(tmp_path / "f", 8, suffix=".png")
    ds = ImageFolder(path=str(folder), test_size=2)
    return folder, np.asarray(ds.splits["train"].x[:]), ds.splits["train"].x.path.parent


@pytest.mark.parametrize("damage, reason", [
    (lambda d: (d / "train.u8").write_bytes(bytes((d / "train.u8").stat().st_size)),
     "train.u8 has changed since it was prepared"),
    (lambda d: (d / "train.u8").write_bytes((d / "train.u8").read_bytes()[:-10]), "train.u8 holds"),
    (lambda d: (d / "info.json").write_text("{"), "info.json cannot be read"),
    (lambda d: (d / "info.json").write_text('{"splits": []}'), "info.json cannot be read"),
    (lambda d: (d / "train.labels.npy").write_bytes(b"junk"), "train.labels.npy holds"),
    (lambda d: (d / "test.labels.npy").unlink(), "test.labels.npy: No such file"),
])
def test_a_damaged_prepared_copy_is_noticed_and_prepared_again(tmp_path, capsys, damage, reason):
    folder, pixels, entry = prepared_folder(tmp_path)
    damage(entry)
    capsys.readouterr()
    again = ImageFolder(path=str(folder), test_size=2)
    assert np.array_equal(np.asarray(again.splits["train"].x[:]), pixels)  # the real images, not zeros
    err = capsys.readouterr().err
    assert f"prepared copy of dataset=folder in {entry} is damaged ({reason}" in err and "Traceback" not in err
    assert "preparing it again" in err and "Preparing dataset=folder once" in err
    capsys.readouterr()
    ImageFolder(path=str(folder), test_size=2).test_set()
    assert "damaged" not in capsys.readouterr().err  # sound again
