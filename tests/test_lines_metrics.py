"""Known answers for Mean Distance and Smoothness on decoded sequences that need no training."""

import math

import numpy as np
import pytest

from acai.data.lines import draw_lines
from acai.evaluation.lines_metrics import closest_lines, score_interpolations, smoothness

FRAMES = 16


def rotation(a0: float, a1: float) -> np.ndarray:
    return draw_lines(np.linspace(a0, a1, FRAMES))


def test_reference_lines_are_recovered_exactly():
    angles = np.linspace(0, 2 * math.pi, 10000, endpoint=False)[::997]
    dist, found = closest_lines(draw_lines(angles))
    np.testing.assert_allclose(dist, 0, atol=1e-6)
    np.testing.assert_allclose(found, angles, atol=1e-9)


def test_constant_speed_rotation_scores_near_zero_on_both():
    frames = np.stack([rotation(a, a + 1.0) for a in np.linspace(0, 5, 8)])
    s = score_interpolations(frames)
    assert s.mean_distance < 1e-5
    assert s.smoothness < 0.02


def test_pixel_crossfade_has_high_mean_distance():
    a, b = draw_lines([0.3]), draw_lines([2.0])
    t = np.linspace(0, 1, FRAMES)[:, None, None, None]
    fade = ((1 - t) * a + t * b)[None]
    good = score_interpolations(rotation(0.3, 2.0)[None])
    bad = score_interpolations(fade)
    # on [-1, 1] images the -1 background dominates the cosine: a cross-fade scores ~7e-3, as the
    # paper's worst models (Table 1: ~1e-3 to 7e-3); a true rotation ~1e-7.
    assert bad.mean_distance > 5e-3 and bad.mean_distance > 1000 * good.mean_distance


def test_abrupt_switch_has_high_smoothness():
    a, b = draw_lines([0.3]), draw_lines([2.0])
    switch = np.concatenate([np.repeat(a, 8, 0), np.repeat(b, 8, 0)])[None]
    s = score_interpolations(switch)
    assert s.mean_distance < 1e-6
    assert s.smoothness == pytest.approx(1 - 1 / 15, abs=1e-6)


def test_constant_sequence_is_undefined_counts_zero_and_stays_in_denominator():
    assert math.isnan(smoothness(np.full((3, FRAMES), 1.0)))
    switch = np.r_[np.zeros(8), np.ones(8)]
    mixed = np.stack([np.full(FRAMES, 1.0), switch])
    assert smoothness(mixed) == pytest.approx((1 - 1 / 15) / 2)


def test_unwrap_across_zero():
    angles = np.linspace(2 * math.pi - 0.5, 2 * math.pi + 0.5, FRAMES) % (2 * math.pi)
    assert smoothness(angles[None]) == pytest.approx(0, abs=1e-9)


def test_nearest_line_is_the_float64_search_of_the_reference_even_far_from_any_line():
    """The reference's scipy cdist (float64, cosine, over all 10,000 lines) picks the same line and the
    same distance for clean lines, cross-fades, faint noisy lines and noise, where a float32 search
    refined only among near neighbours can land several reference angles away."""
    from scipy.spatial.distance import cdist

    from acai.evaluation.lines_metrics import reference_bank

    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 2 * math.pi, (2, 100))
    fades = 0.5 * draw_lines(a) + 0.5 * draw_lines(b)
    faint = 0.3 * draw_lines(b[:50]) + rng.normal(0, 0.05, (50, 32, 32, 1))
    noise = rng.normal(size=(50, 32, 32, 1))
    frames = np.concatenate([draw_lines(a[:50] + 1e-4), fades, faint, noise]).astype(np.float32)
    dist, angles = closest_lines(frames)
    bank, _, bank_angles = reference_bank()
    truth = cdist(frames.reshape(len(frames), -1).astype(np.float64), bank, "cosine")
    np.testing.assert_array_equal(angles, bank_angles[truth.argmin(axis=1)])
    np.testing.assert_allclose(dist, truth.min(axis=1), rtol=0, atol=1e-12)
