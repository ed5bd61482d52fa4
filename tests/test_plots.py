"""Figures that explain themselves: labelled, scalable grids and a colour bar that says what it colours."""

import numpy as np
import pytest

from acai.data.lines import Lines
from acai.tracking.plots import (
    alpha_labels,
    image_grid,
    interpolation_grid,
    labelled_grid,
    latent_scatter,
    reconstruction_grid,
)


@pytest.fixture(scope="module")
def lines():
    return Lines(test_size=32).test_set()


def test_alpha_labels_name_both_ends_and_every_step():
    assert alpha_labels(11) == ["α=0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "α=1"]
    assert alpha_labels(2) == ["α=0", "α=1"]


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_a_labelled_grid_holds_the_exact_enlarged_grid_below_its_labels(lines, scale):
    x, _ = lines
    cells = np.stack([x[:4], x[4:8]])
    plain = image_grid(cells)
    out = labelled_grid(cells, ["a", "b", "c", "d"], ["top", "bottom"], caption="what this shows", scale=scale)
    enlarged = np.repeat(np.repeat(plain, scale, 0), scale, 1)
    top, left = out.shape[0] - enlarged.shape[0], out.shape[1] - enlarged.shape[1]
    assert top > 0 and left > 0  # bands for the caption + column labels, and for the row labels
    np.testing.assert_array_equal(out[top:, left:left + enlarged.shape[1]], enlarged)
    assert (out[:top] < 128).any() and (out[top:, :left] < 128).any()  # text was drawn in both bands


def test_interpolation_and_reconstruction_grids_are_labelled(lines):
    x, _ = lines
    frames = np.repeat(x[:3, None], 5, axis=1)
    grid = interpolation_grid(x[:3], frames, x[3:6], scale=2)
    plain = labelled_grid(np.concatenate([x[:3, None], frames, x[3:6, None]], 1), scale=2)
    assert grid.shape[1] == plain.shape[1] and grid.shape[0] > plain.shape[0]  # caption + α row on top
    bare = interpolation_grid(None, frames, None, scale=1)  # no input columns without the inputs
    with_inputs = interpolation_grid(x[:3], frames, x[3:6], scale=1)
    assert bare.shape[0] == with_inputs.shape[0] and (bare != 255).sum() < (with_inputs != 255).sum()
    recon = reconstruction_grid(x[:4], x[4:8], scale=2)
    assert recon.shape[0] == 2 * image_grid(np.stack([x[:4], x[4:8]])).shape[0]  # rows labelled at the left
    assert recon.shape[1] > 2 * image_grid(np.stack([x[:4], x[4:8]])).shape[1]


def test_the_lines_pca_plot_says_angle_bin(lines):
    x, y = lines
    fig = latent_scatter(np.random.default_rng(0).normal(size=(32, 8)), y, "test", Lines.label_name)
    assert [ax.get_ylabel() for ax in fig.axes][1] == "angle bin"
    assert Lines.label_name == "angle bin"
