"""Pictures logged with every run: image grids and the latent-space and critic plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8, clipped (decoded images may overshoot)."""
    return np.clip((np.asarray(images) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, border: int = 1) -> np.ndarray:
    """[rows, cols, H, W, C] in [-1, 1] -> one uint8 picture [rows*(H+b), cols*(W+b), C]."""
    rows, cols, h, w, c = images.shape
    canvas = np.full((rows * (h + border) + border, cols * (w + border) + border, c), 255, np.uint8)
    pix = to_uint8(images)
    for r in range(rows):
        for q in range(cols):
            top, left = border + r * (h + border), border + q * (w + border)
            canvas[top:top + h, left:left + w] = pix[r, q]
    return canvas[..., 0] if c == 1 else canvas


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Two rows: test images above, their reconstructions below."""
    return image_grid(np.stack([originals, reconstructions]))


def latent_scatter(latents: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """The test set's latents projected on their first two principal components, coloured by label."""
    flat = latents.reshape(len(latents), -1)
    xy = PCA(n_components=2, random_state=0).fit_transform(flat) if flat.shape[1] > 2 else flat
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
    fig.colorbar(points, ax=ax, label="label")
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    fig.tight_layout()
    return fig


def critic_path(t: np.ndarray, predicted: np.ndarray) -> Figure:
    """The critic's predicted alpha along interpolation paths (mean and spread over pairs)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    mean, std = predicted.mean(0), predicted.std(0)
    ax.plot(t, mean, marker="o", label="critic output (mean over pairs)")
    ax.fill_between(t, mean - std, mean + std, alpha=0.25)
    ax.plot(t, np.minimum(t, 1 - t), "k--", lw=1, label="true alpha = min(t, 1-t)")
    ax.set(xlabel="interpolation position t", ylabel="predicted alpha", title="Critic along interpolations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
