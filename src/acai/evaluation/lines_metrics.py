"""Mean Distance and Smoothness of interpolations on the lines benchmark (reference `lib/eval.py`).

Every decoded frame is compared, by cosine distance on raw [-1, 1] pixels, with a bank of reference
lines at evenly spaced angles: one matrix product for all frames. The nearest line gives the frame's
distance and its recovered angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from acai.data.lines import draw_lines


@lru_cache(maxsize=4)
def reference_bank(count: int = 10000, size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-normalised reference lines [count, size*size] in float64 and float32, and their angles
    linspace(0, 2pi - 2pi/count, count)."""
    angles = np.linspace(0.0, 2 * math.pi - 2 * math.pi / count, count)
    lines = draw_lines(angles, size).reshape(count, -1).astype(np.float64)
    unit = lines / np.linalg.norm(lines, axis=1, keepdims=True)
    return unit, unit.astype(np.float32), angles


def closest_lines(frames: np.ndarray, count: int = 10000, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(cosine distance to the nearest reference line, its angle) for each frame in [..., H, W, 1].

    The nearest line is found with one float32 matrix product per chunk; its distance is then
    settled in float64 among its neighbours, so near-zero distances are exact to ~1e-12 rather than ~1e-6.
    """
    size = frames.shape[-2]
    bank64, bank32, angles = reference_bank(count, size)
    flat = frames.reshape(-1, size * size).astype(np.float64)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    best = np.empty(len(flat), np.int64)
    for start in range(0, len(flat), chunk):
        best[start:start + chunk] = np.argmax(unit[start:start + chunk].astype(np.float32) @ bank32.T, axis=1)
    # float32 cannot separate neighbouring reference angles (their similarities differ by ~1e-6):
    # settle between the float32 winner and its neighbours in float64.
    candidates = (best[:, None] + np.arange(-2, 3)[None, :]) % count
    sims = np.einsum("ij,ikj->ik", unit, bank64[candidates])
    pick = np.argmax(sims, axis=1)
    best = candidates[np.arange(len(best)), pick]
    dist = 1.0 - sims[np.arange(len(best)), pick]
    lead = frames.shape[:-3]
    return dist.reshape(lead), angles[best].reshape(lead)


def smoothness(angles: np.ndarray) -> float:
    """Mean over interpolations [N, T] of max|delta a| / |a_0 - a_T| - 1/(T-1) on unwrapped angles.

    As the reference: an interpolation whose ends recover the same angle (|a_0 - a_T| < 1e-4) is
    undefined, counts as 0 and stays in the denominator; all-undefined gives NaN.
    """
    a = np.unwrap(np.asarray(angles, np.float64), axis=1)
    diffs = np.abs(np.diff(a, axis=1))
    total = np.abs(a[:, 0] - a[:, -1])
    defined = total >= 1e-4
    if not defined.any():
        return float("nan")
    scores = diffs[defined].max(axis=1) / total[defined] - 1.0 / (a.shape[1] - 1)
    return float(scores.sum() / len(a))


@dataclass
class LinesScores:
    mean_distance: float
    smoothness: float


def score_interpolations(frames: np.ndarray, reference_lines: int = 10000) -> LinesScores:
    """Score decoded interpolations shaped [pairs, frames, H, W, 1] (endpoints included)."""
    dist, angles = closest_lines(frames, reference_lines)
    return LinesScores(mean_distance=float(dist.mean()), smoothness=smoothness(angles))
