"""Pictures logged with every run: image grids and the latent-space and critic plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
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


LABEL_FONT = font_manager.findfont("DejaVu Sans")  # shipped with matplotlib; has α and ·


def labelled_grid(images: np.ndarray, columns: list[str] | None = None, rows: list[str] | None = None,
                  caption: str | None = None, scale: int = 2) -> np.ndarray:
    """`image_grid` enlarged `scale` times (nearest neighbour, pixels stay sharp), with a caption line,
    a label above each column and one left of each row: a figure that says what it shows."""
    grid = image_grid(images)
    grid = np.repeat(np.repeat(grid, scale, 0), scale, 1)
    n_rows, n_cols, h, w = images.shape[:4]
    font = ImageFont.truetype(LABEL_FONT, size=6 + 5 * scale)
    line = font.size + 4
    left = 4 + max((int(font.getlength(r)) + 6 for r in rows or []), default=0)
    top = line * ((caption is not None) + (columns is not None))
    width = max(left + grid.shape[1], left + int(font.getlength(caption or "")) + 4)
    canvas = Image.new("L" if grid.ndim == 2 else "RGB", (width, top + grid.shape[0]), "white")
    canvas.paste(Image.fromarray(grid), (left, top))
    draw = ImageDraw.Draw(canvas)
    if caption is not None:
        draw.text((left, 2), caption, fill="black", font=font)
    for q, label in enumerate(columns or []):  # centred over its cell
        centre = left + scale * (1 + q * (w + 1) + w / 2)
        draw.text((centre, top - 2), label, fill="black", font=font, anchor="mb")
    for r, label in enumerate(rows or []):
        middle = top + scale * (1 + r * (h + 1) + h / 2)
        draw.text((left - 6, middle), label, fill="black", font=font, anchor="rm")
    return np.asarray(canvas)


def alpha_labels(steps: int) -> list[str]:
    """Column labels of an interpolation: 'α=0', '0.1', ..., '0.9', 'α=1'."""
    t = np.linspace(0.0, 1.0, steps)
    return ["α=0"] + [f"{a:.2g}" for a in t[1:-1]] + ["α=1"]


INTERPOLATION_CAPTION = "decode((1-α)·z(A) + α·z(B)), A and B the input images"


def interpolation_grid(a: np.ndarray | None, frames: np.ndarray, b: np.ndarray | None, scale: int = 2,
                       caption: str = INTERPOLATION_CAPTION) -> np.ndarray:
    """Rows of [input A | decoded frames along α | input B] ([N, H, W, C] ends, [N, steps, ...] frames);
    without the inputs, the frames alone under their α labels."""
    steps = frames.shape[1]
    if a is None or b is None:
        return labelled_grid(frames, alpha_labels(steps), caption=caption, scale=scale)
    cells = np.concatenate([a[:, None], frames, b[:, None]], axis=1)
    return labelled_grid(cells, ["A", *alpha_labels(steps), "B"], caption=caption, scale=scale)


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, scale: int = 2) -> np.ndarray:
    """Two labelled rows: test images above, their reconstructions below."""
    return labelled_grid(np.stack([originals, reconstructions]), rows=["input", "reconstruction"], scale=scale)


def latent_scatter(latents: np.ndarray, labels: np.ndarray | None, title: str,
                   label_name: str = "class") -> Figure:
    """The test set's latents projected on their first two principal components, coloured by label
    (one colour where the data has no labels)."""
    flat = latents.reshape(len(latents), -1)
    xy = PCA(n_components=2, random_state=0).fit_transform(flat) if flat.shape[1] > 2 else flat
    fig, ax = plt.subplots(figsize=(6, 5))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.5)
    else:
        points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
        fig.colorbar(points, ax=ax, label=label_name)
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
