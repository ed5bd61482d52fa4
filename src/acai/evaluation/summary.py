"""How a run's evaluations are summarised into the numbers runs are compared by."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def finite_median(values: Sequence[float]) -> float:
    """The median of the defined (finite) values; NaN when none is (a smoothness of a constant path)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if len(finite) else math.nan


PAPER_EVALUATIONS = 256  # 2^24 samples, an evaluation every 2^16: its last 20 are the final 7.8% of training


def summary_window(evaluations: int, n: int = 20) -> int:
    """How many of a run's last evaluations `summary/*` covers: the paper's share of training (n of 256
    evaluations), at least 1 and at most n; `src/report.py` takes the same window by default."""
    return min(n, max(1, round(evaluations * n / PAPER_EVALUATIONS)))


def end_of_training_summary(history: dict[str, list[float]], n: int, evaluations: int) -> dict[str, float]:
    """What a run is compared by, over the end of training only.

    `median20/*` is the paper's statistic, the median of the last 20 evaluations, logged once there are
    20 (on a shorter run it would reach back onto the initial plateau). `summary/*` is the value to sort by
    on any run: the median over the paper's share of training, the last n/256 of the planned evaluations
    (at least 1, at most n: 8 evaluations -> the last 1, 64 -> 5, 256 -> 20), and `summary/evaluations`
    says how many evaluations it covers.
    """
    window = summary_window(evaluations, n)
    out: dict[str, float] = {}
    for key, values in history.items():
        if len(values) >= n:
            out[f"median{n}/{key}"] = finite_median(values[-n:])
        out[f"summary/{key}"] = finite_median(values[-window:])
    out["summary/evaluations"] = float(min(window, max(map(len, history.values()), default=0)))
    return out


def on_plateau(reconstruction_error: float, mean_image_error: float, margin: float) -> bool:
    """Still on the initial plateau: reconstructing no better than (1 - margin) x predicting every test image
    by the mean test image, which is what an autoencoder that has not started to learn outputs."""
    return reconstruction_error >= (1 - margin) * mean_image_error


def plateau_state(flags: Sequence[float], samples: Sequence[int]) -> str | None:
    """A run's plateau history in words, from its `on_plateau` flag per evaluation and the samples seen at each:
    'never left', 'left at <samples>' (the start of the final stretch off it) or 'back on at <samples>' (it
    left, then fell back); None without flags (a run logged before the flag existed)."""
    if not len(flags):
        return None
    on = [bool(f) for f in flags]
    if all(on):
        return "never left"
    start = len(on)
    while start > 0 and on[start - 1] == on[-1]:
        start -= 1
    return f"{'back on' if on[-1] else 'left'} at {samples[start]}"
