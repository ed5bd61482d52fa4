"""What the report measures: the paper's tables (`Measurement`), their numbers as our notes recall
them, and the order and labels of its rows and columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

LAST = 20  # the paper: "the median value of the last 20 evaluations" (of 256: see summary_window)
NEVER_LEFT = "never left"  # a run's plateau state (acai.evaluation.summary.plateau_state) that marks its cell
MARK = "†"
REPORT_TAG = "acai.report"
SWEEP_PARENT_TAG = "acai.sweep_parent"  # a sweep's parent run (acai.tracking.sweep): it holds a summary, not a result
REGULARIZERS = ("none", "dropout", "denoising", "vae", "aae", "vqvae", "acai")  # the paper's column order
LABELS = {"none": "Baseline", "dropout": "Dropout", "denoising": "Denoising", "vae": "VAE", "aae": "AAE",
          "vqvae": "VQ-VAE", "acai": "ACAI", "pixels": "pixels"}
DATASETS = ("lines", "mnist", "svhn", "cifar10", "celeba", "fashion_mnist")  # the paper's row order, then ours
SETTING = ["dataset", "model", "latent_dim"]
GROUP_PARAMS = {"regularizer": "regularizer.name", "dataset": "dataset.name", "model": "model.name",
                "latent_dim": "model.latent_dim"}
# Params that may differ between the seeds of one cell without making them different experiments.
SAME_EXPERIMENT = ("seed", "resume", "tracking.", "trainer.verbose", "trainer.checkpoint_dir", "dataset.path")
PAPER_LABEL = "paper (unverified)"

Paper = dict[tuple[str, int], dict[str, tuple[float, float | None]]]


@dataclass(frozen=True)
class Measurement:
    """One of the paper's tables: which logged metric, how it is scaled and what the paper reports."""

    key: str  # file name and `eval/<metric>` name
    title: str
    metric: str
    scale: float = 1.0
    better: str = "higher"
    reference: str | None = None  # a metric shown as an extra column, e.g. K-means on raw pixels
    paper: Paper = field(default_factory=dict)
    table: str | None = None  # which of the paper's tables this is

    @property
    def heading(self) -> str:
        return f"{self.title}: the paper's {self.table}" if self.table else self.title


# The paper's numbers as our reference notes recall them, NOT checked against the PDF (no copy of its
# tables could be found to cite): shown as "paper (unverified)", a rough target, never as the paper's values.
# Table 1 is the synthetic lines benchmark (latent 2x2x16 = 64), Tables 2 and 3 are MNIST at latent 32 and 256.
TABLE1_LINES = {"none": ((6.88, 0.21), (0.44, 0.04)), "dropout": ((2.85, 0.54), (0.74, 0.02)),
                "denoising": ((4.21, 0.32), (0.66, 0.02)), "vae": ((1.21, 0.17), (0.49, 0.13)),
                "aae": ((3.26, 0.19), (0.14, 0.02)), "vqvae": ((5.41, 0.49), (0.77, 0.02)),
                "acai": ((0.24, 0.01), (0.10, 0.01))}
MEASUREMENTS = (
    Measurement("mean_distance", "Mean Distance (x10^-3)", "mean_distance", 1e3, "lower", table="Table 1",
                paper={("lines", 64): {k: v[0] for k, v in TABLE1_LINES.items()}}),
    Measurement("smoothness", "Smoothness", "smoothness", better="lower", table="Table 1",
                paper={("lines", 64): {k: v[1] for k, v in TABLE1_LINES.items()}}),
    Measurement("latent_accuracy", "Latent classifier accuracy (%)", "latent_accuracy", table="Table 2",
                paper={("mnist", 32): {"none": (94.90, 0.14), "acai": (98.25, 0.11)},
                       ("mnist", 256): {"acai": (99.00, 0.08)}}),
    # Not in the paper: a logistic-regression probe fitted on the frozen latents at each evaluation. Short
    # runs need it: the paper's classifier trains alongside the AE at lr 1e-4 and lags far behind early on.
    Measurement("probe_accuracy", "Linear probe accuracy (%)", "probe_accuracy"),
    Measurement("cluster_accuracy", "Clustering accuracy (%)", "cluster_accuracy", reference="cluster_accuracy_pixels",
                table="Table 3",
                paper={("mnist", 32): {"acai": (94.38, None)}, ("mnist", 256): {"acai": (96.17, None)}}),
    Measurement("reconstruction_error", "Reconstruction error (MSE x10^-3)", "reconstruction_error", 1e3, "lower"),
)
METRICS = tuple(dict.fromkeys(x for m in MEASUREMENTS for x in (m.metric, m.reference) if x))
PLATEAU_METRICS = ("on_plateau", "mean_image_error")  # read for the plateau mark only


def paper_order(name: str, order: Sequence[str]) -> tuple[int, str]:
    """Sort key: the names of `order` in its order, any other name after them, by name."""
    return (order.index(name), "") if name in order else (len(order), str(name))


def sort_key(col: pd.Series) -> pd.Series:
    """`DataFrame.sort_values` key: regularizers and datasets in the paper's order, numbers numerically."""
    if col.name == "regularizer":
        return col.map(lambda v: paper_order(v, (*REGULARIZERS, "pixels")))
    if col.name == "dataset":
        return col.map(lambda v: paper_order(v, DATASETS))
    if col.name in ("latent_dim", "seed"):  # numbers in numeric order, anything else after them
        return col.map(lambda v: (0, int(v), "") if str(v).lstrip("-").isdigit() else (1, 0, str(v)))
    return col.map(str)
