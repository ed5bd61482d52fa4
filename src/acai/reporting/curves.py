"""Learning curves: each measurement over samples seen, mean ± std over seeds
(`learning_curves.csv` and `learning_curves.png`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from acai.reporting.measurements import LABELS, MEASUREMENTS, REGULARIZERS, SETTING
from acai.reporting.runs import Histories


def curves(histories: Histories, per_run: pd.DataFrame) -> pd.DataFrame:
    """Learning curves: for each measurement, setting and regularizer, the mean and std (ddof=0) over its runs
    of `eval/<metric>` at each number of samples seen that every one of those runs logged (undefined values
    left out of that step's mean; `n` counts the defined ones)."""
    rows = []
    for m in MEASUREMENTS:
        for keys, group in per_run.groupby([*SETTING, "regularizer"], sort=False):
            read = [histories(run_id, m.metric) for run_id in group["run_id"]]
            steps = sorted(set.intersection(*(set(h) for h in read))) if read else []
            for step in steps:
                values = np.array([h[step] for h in read], float) * m.scale
                defined = values[np.isfinite(values)]
                rows.append({"measurement": m.key, "dataset": keys[0], "model": keys[1], "latent_dim": keys[2],
                             "regularizer": keys[3], "samples": step, "n": len(defined),
                             "mean": float(defined.mean()) if len(defined) else math.nan,
                             "std": float(defined.std()) if len(defined) else math.nan})
    return pd.DataFrame(rows, columns=["measurement", *SETTING, "regularizer", "samples", "n", "mean", "std"])


def curves_figure(data: pd.DataFrame) -> Figure:
    """One panel per measurement: each model's mean over seeds against samples seen, with a ± std band."""
    shown = [m for m in MEASUREMENTS if (data["measurement"] == m.key).any()]
    fig = Figure(figsize=(10, 3.2 * max(1, len(shown))), layout="constrained")
    if not shown:
        fig.text(0.5, 0.5, "no evaluations logged", ha="center")
        return fig
    palette = {r: f"C{i}" for i, r in enumerate(REGULARIZERS)}
    several = data.groupby(SETTING).ngroups > 1
    for ax, m in zip(fig.subplots(len(shown), 1, squeeze=False)[:, 0], shown):
        part = data[data["measurement"] == m.key]
        for keys, line in part.groupby([*SETTING, "regularizer"], sort=False):
            label = LABELS.get(keys[3], keys[3]) + (f" ({'/'.join(map(str, keys[:3]))})" if several else "")
            color = palette.get(keys[3])
            ax.plot(line["samples"], line["mean"], marker=".", label=label, color=color)
            ax.fill_between(line["samples"], line["mean"] - line["std"], line["mean"] + line["std"], alpha=0.2,
                            color=color)
        ax.set(title=f"{m.title} ({m.better} is better): mean ± std over seeds", xlabel="samples seen")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig
