"""Latent interpolation helpers shared by the metrics, the logged grids and `src/interpolate.py`."""

from __future__ import annotations

import numpy as np


def mix_weights(steps: int) -> np.ndarray:
    """t = 0 .. 1 in `steps` points, endpoints included."""
    return np.linspace(0.0, 1.0, steps)


def lerp(za: np.ndarray, zb: np.ndarray, steps: int) -> np.ndarray:
    """[N, ...] x [N, ...] -> [N, steps, ...]: z_t = (1 - t) z_a + t z_b, as the reference's grid."""
    t = mix_weights(steps).reshape((1, steps) + (1,) * (za.ndim - 1))
    return (1.0 - t) * za[:, None] + t * zb[:, None]


def slerp(za: np.ndarray, zb: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation on the flattened codes (falls back to lerp for parallel codes)."""
    shape = za.shape
    a, b = za.reshape(len(za), -1), zb.reshape(len(zb), -1)
    cos = np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))[:, None, None]
    t = mix_weights(steps)[None, :, None]
    sin = np.sin(omega)
    safe = np.where(sin > 1e-6, sin, 1.0)
    wa = np.where(sin > 1e-6, np.sin((1 - t) * omega) / safe, 1 - t)
    wb = np.where(sin > 1e-6, np.sin(t * omega) / safe, t)
    out = wa * a[:, None] + wb * b[:, None]
    return out.reshape((len(za), steps) + shape[1:])
