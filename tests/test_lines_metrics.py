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
