"""`report.png`: bar charts with error bars, one panel per measurement."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from acai.reporting.measurements import LABELS, MEASUREMENTS, PAPER_LABEL, REGULARIZERS
from acai.reporting.tables import columns_of


def figure(tables: dict[str, pd.DataFrame]) -> Figure:
    """Bar charts with error bars, one panel per measurement: regularizers side by side for each setting."""
    shown = [m for m in MEASUREMENTS if (tables[m.key]["n"] > 0).any()]
    fig = Figure(figsize=(10, 3.2 * max(1, len(shown))), layout="constrained")
    if not shown:
        fig.text(0.5, 0.5, "no metrics logged", ha="center")
        return fig
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    palette = {r: f"C{i}" for i, r in enumerate(REGULARIZERS)} | {"pixels": "0.6"}
    for ax, m in zip(axes, shown):
        table = tables[m.key]
        cols = columns_of(table)
        settings = list(dict.fromkeys(zip(table["dataset"], table["model"], table["latent_dim"])))
        width = min(0.8 / len(cols), 0.3)
        paper_label = PAPER_LABEL
        for i, reg in enumerate(cols):
            rows = table[(table["regularizer"] == reg) & (table["n"] > 0)]
            index = {(r.dataset, r.model, r.latent_dim): r for r in rows.itertuples()}
            x = [s + (i - (len(cols) - 1) / 2) * width for s, key in enumerate(settings) if key in index]
            got = [index[key] for key in settings if key in index]
            ax.bar(x, [r.mean for r in got], width, yerr=[r.std for r in got], capsize=3,
                   color=palette.get(reg, f"C{(len(REGULARIZERS) + i) % 10}"), label=LABELS.get(reg, reg))
            px = [(xi, r.paper_mean) for xi, r in zip(x, got) if not math.isnan(r.paper_mean)]
            if px:
                ax.scatter(*zip(*px), marker="x", color="black", zorder=3, label=paper_label)
                paper_label = None  # one legend entry
        ax.set_xticks(range(len(settings)), ["/".join(map(str, s)) for s in settings])
        ax.set_xlim(-0.5, len(settings) - 0.5)
        ax.set_title(f"{m.title} ({m.better} is better)")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig
