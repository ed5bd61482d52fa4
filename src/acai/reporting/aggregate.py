"""Aggregating over seeds: one tidy table per measurement, mean ± std (ddof=0) and n per setting and
regularizer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from acai.reporting.measurements import LABELS, NEVER_LEFT, SETTING, Measurement, sort_key


def aggregate(per_run: pd.DataFrame, m: Measurement) -> pd.DataFrame:
    """Tidy table: one row per setting x regularizer (plus `pixels` for a reference) with mean, std, n, paper.

    `n` counts the runs with a value; `undefined` those whose window was all NaN (not in the mean); `plateau`
    those of the n that never left the initial plateau (0 for the `pixels` reference, which is no model's).
    """
    rows = []

    def add(keys: tuple, regularizer: str, group: pd.DataFrame, metric: str) -> None:
        measured = group[group[metric].notna()]
        values = measured[metric].to_numpy(dtype=float) * m.scale
        stuck = int((measured["plateau"] == NEVER_LEFT).sum()) if regularizer != "pixels" else 0
        undefined = int(group["undefined"].str.split().map(lambda names: metric in names).sum())
        if len(values) or undefined:
            dataset, model, latent = keys
            paper = m.paper.get((dataset, latent), {}).get(regularizer, (math.nan, None))
            rows.append({"dataset": dataset, "model": model, "latent_dim": latent, "regularizer": regularizer,
                         "label": LABELS.get(regularizer, regularizer),
                         "mean": float(np.mean(values)) if len(values) else math.nan,
                         "std": float(np.std(values)) if len(values) else math.nan, "n": len(values),
                         "plateau": stuck, "undefined": undefined, "paper_mean": paper[0],
                         "paper_std": math.nan if paper[1] is None else paper[1]})

    for keys, group in per_run.groupby([*SETTING, "regularizer"], sort=False):
        add(keys[:3], keys[3], group, m.metric)
    if m.reference:
        for keys, group in per_run.groupby(SETTING, sort=False):
            add(keys, "pixels", group, m.reference)
    table = pd.DataFrame(rows, columns=[*SETTING, "regularizer", "label", "mean", "std", "n", "plateau", "undefined",
                                        "paper_mean", "paper_std"])
    return table.sort_values([*SETTING, "regularizer"], key=sort_key, ignore_index=True)
