"""The numbers runs are compared by: the paper's median of 20, and a summary honest on short runs."""

import math

import numpy as np
import pytest

from acai.evaluation.summary import end_of_training_summary, finite_median


def plateau_then_learned(evaluations: int) -> list[float]:
    """A Mean Distance history: stuck at 32e-3 for the first half, then 13e-3 plus a little noise."""
    rng = np.random.default_rng(0)
    half = evaluations // 2
    return [32.0] * half + list(13.0 + rng.normal(0, 0.1, evaluations - half))


def test_a_default_run_is_summarised_by_its_final_evaluation_not_the_plateau():
    history = {"mean_distance_x1e3": plateau_then_learned(8)}
    out = end_of_training_summary(history, 20, evaluations=8)
    assert "median20/mean_distance_x1e3" not in out  # 8 evaluations are not a median of 20
    assert out["summary/mean_distance_x1e3"] == history["mean_distance_x1e3"][-1]
    assert out["summary/evaluations"] == 1
    assert np.median(history["mean_distance_x1e3"]) > 20  # what the old median20 gave: the plateau


@pytest.mark.parametrize("evaluations, window", [(8, 1), (16, 1), (64, 5), (128, 10), (256, 20), (1024, 20)])
def test_the_summary_covers_the_papers_share_of_training(evaluations, window):
    values = plateau_then_learned(evaluations)
    out = end_of_training_summary({"m": values}, 20, evaluations)
    assert out["summary/evaluations"] == window
    assert out["summary/m"] == pytest.approx(np.median(values[-window:]))
    if evaluations >= 20:
        assert out["median20/m"] == pytest.approx(np.median(values[-20:]))
    else:
        assert "median20/m" not in out


def test_mid_run_the_summary_covers_what_exists_and_metrics_logged_once_give_their_value():
    history = {"m": [5.0, 4.0, 3.0], "probe_accuracy": [99.0]}
    out = end_of_training_summary(history, 20, evaluations=256)
    assert out["summary/evaluations"] == 3 and out["summary/m"] == 4.0 and out["summary/probe_accuracy"] == 99.0


def test_undefined_evaluations_are_skipped_and_all_undefined_is_nan():
    assert finite_median([1.0, math.nan, 3.0, math.inf]) == 2.0
    assert math.isnan(finite_median([math.nan, math.nan]))
    out = end_of_training_summary({"smoothness": [math.nan] * 25}, 20, evaluations=256)
    assert math.isnan(out["median20/smoothness"]) and math.isnan(out["summary/smoothness"])
