"""Image datasets from local files: IDX and .npz, padding, and clear errors for bad files."""

import gzip
import struct

import numpy as np
import pytest
from conftest import FASHION

from acai.data.base import pad_to, unit_range
from acai.data.images import ImageDataset, read_idx
from acai.errors import DatasetError


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
