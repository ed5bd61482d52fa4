"""The lines generator against the reference's rasteriser and its documented facts."""

import math

import numpy as np
import pytest

from acai.data.lines import Lines, angle_labels, draw_lines


def scanline_line(angle: float, size: int = 32, width: float = 2.0) -> np.ndarray:
    """A scalar, loop-by-loop rasteriser written from the reference's description, as an oracle."""
    img = np.zeros((size, size))
    c = size * 0.5
    col1, row1 = c + (c - 1) * math.cos(-angle), c + (c - 1) * math.sin(-angle)
    flip = abs(c - row1) < abs(c - col1)
    a0, b0, a1, b1 = (c, c, col1, row1) if flip else (c, c, row1, col1)  # a = major, b = minor
    if a1 < a0:
        a0, a1, b0, b1 = a1, a0, b1, b0
    b0, b1 = b0 - width / 2, b1 - width / 2
    slope = (b1 - b0) / (a1 - a0) if a1 != a0 else 0.0
    for a in range(int(a0), math.ceil(a1)):
        w = math.ceil(a0) - a0 if a < math.ceil(a0) else (a1 - int(a1) if a > int(a1) else 1.0)
        s = b0 + (a - a0 - 0.5) * slope
        e = s + width
        lo, hi = math.ceil(s), int(e)
        hits = [(b, w) for b in range(lo, hi)]
        if lo != s:
            hits.append((int(s), w * (lo - s)))
        if hi != e:
            hits.append((hi, w * (e - hi)))
        for b, v in hits:
            r, q = (b, a) if flip else (a, b)
            img[r, q] += 2 * v
    return np.clip(img - 1, -1, 1)


def test_angle_zero_lights_rows_15_16_and_columns_16_to_30():
    img = draw_lines([0.0])[0, ..., 0]
    rows, cols = np.nonzero(img > -1)
    assert set(rows) == {15, 16}
    assert set(cols) == set(range(16, 31))
    assert ((img + 1) / 2).sum() == pytest.approx(30.0)


def test_angle_half_pi_points_up():
    img = draw_lines([math.pi / 2])[0, ..., 0]
    rows, cols = np.nonzero(img > -1)
    assert rows.max() <= 16 and rows.min() == 1
    assert set(cols) == {15, 16}


def test_vectorised_matches_scalar_rasteriser():
    angles = np.random.default_rng(0).uniform(0, 2 * math.pi, 200)
    fast = draw_lines(angles)[..., 0]
    for a, img in zip(angles, fast):
        np.testing.assert_allclose(img, scanline_line(a), atol=1e-6)


def test_value_range_shape_and_ink():
    imgs = draw_lines(np.linspace(0, 2 * math.pi, 500, endpoint=False))
    assert imgs.shape == (500, 32, 32, 1) and imgs.dtype == np.float32
    assert imgs.min() == -1.0 and imgs.max() == 1.0
    ink = ((imgs + 1) / 2).sum(axis=(1, 2, 3))
    assert ink.min() > 20 and ink.max() <= 30 + 1e-4


def test_labels_are_ten_angle_bins():
    angles = np.array([0.0, 0.1, math.pi, 2 * math.pi - 1e-9])
    np.testing.assert_array_equal(angle_labels(angles), [0, 0, 5, 9])


def test_test_set_is_deterministic_and_train_batches_are_fresh():
    a, b = Lines(test_size=50), Lines(test_size=50)
    np.testing.assert_array_equal(a.test_set()[0], b.test_set()[0])
    assert not np.array_equal(a.test_set()[0], a.train_set(50)[0])
    it = iter(a.train_batches(8, seed=1, image_size=None))
    (x1, y1), (x2, _) = next(it), next(it)
    assert x1.shape == (8, 32, 32, 1) and y1.shape == (8,)
    assert not np.array_equal(x1.numpy(), x2.numpy())
    again = next(iter(Lines().train_batches(8, seed=1, image_size=None)))[0]
    np.testing.assert_array_equal(x1.numpy(), again.numpy())
