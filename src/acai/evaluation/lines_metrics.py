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


def float32_dot_error(n: int) -> float:
    """A bound on |float32(u.v) - u.v| for unit vectors of length n, in any summation order.

    gamma_n = n eps / (1 - n eps) bounds the accumulation error by gamma_n sum|u_i v_i| <= gamma_n
    (Cauchy-Schwarz); 4 eps more covers rounding u and v to float32 (Higham, Accuracy and Stability, 3.1).
    """
    eps = float(np.finfo(np.float32).eps) / 2
    return n * eps / (1 - n * eps) + 4 * eps


def exact_nearest(unit: np.ndarray, bank64: np.ndarray, bank32: np.ndarray, dense_above: int = 64
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(index, float64 similarity) of the most similar bank row for each unit row, as a float64 search.

    One float32 matrix product ranks the bank; every row within twice the float32 error bound of the
    float32 maximum can be the true winner, so all of them are settled in float64 (ties: lowest index,
    as the reference's argmin). Frames with many candidates (blurred, far from any line) are rescored
    against the whole bank with one float64 product instead.
    """
    sims32 = unit.astype(np.float32) @ bank32.T
    tol = 2 * float32_dot_error(unit.shape[1])
    mask = sims32 >= sims32.max(axis=1, keepdims=True) - tol
    counts = mask.sum(axis=1)
    best = np.empty(len(unit), np.int64)
    sim = np.empty(len(unit), np.float64)
    dense = np.flatnonzero(counts > dense_above)
    if len(dense):
        full = unit[dense] @ bank64.T
        best[dense] = np.argmax(full, axis=1)
        sim[dense] = full[np.arange(len(dense)), best[dense]]
    mask[dense] = False
    rows, cols = np.nonzero(mask)
    if len(rows):
        exact = np.einsum("ij,ij->i", unit[rows], bank64[cols])
        order = np.lexsort((cols, -exact, rows))  # per row: highest similarity, then lowest index
        first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
        best[rows[first]], sim[rows[first]] = cols[first], exact[first]
    return best, sim


def closest_lines(frames: np.ndarray, count: int = 10000, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(cosine distance to the nearest reference line, its angle) for each frame in [..., H, W, 1].

    The same nearest line as a float64 search over the whole bank (the reference's scipy cdist), at
    the cost of a float32 one: see `exact_nearest`.
    """
    size = frames.shape[-2]
    bank64, bank32, angles = reference_bank(count, size)
    flat = frames.reshape(-1, size * size).astype(np.float64)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    best = np.empty(len(flat), np.int64)
    sims = np.empty(len(flat), np.float64)
    for start in range(0, len(flat), chunk):
        part = slice(start, start + chunk)
        best[part], sims[part] = exact_nearest(unit[part], bank64, bank32)
    lead = frames.shape[:-3]
    return (1.0 - sims).reshape(lead), angles[best].reshape(lead)


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
