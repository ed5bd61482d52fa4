"""Reading the training runs of an MLflow experiment: which runs count, and each run's median of its
last evaluations (`summarize`), one row per run."""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence

import pandas as pd
from mlflow.entities import Metric, Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from acai.config import EvaluationConfig
from acai.errors import TrackingError, first_line
from acai.evaluation.summary import finite_median, on_plateau, plateau_state, summary_window
from acai.locks import run_state
from acai.reporting.measurements import (
    GROUP_PARAMS,
    LAST,
    METRICS,
    PLATEAU_METRICS,
    REPORT_TAG,
    SAME_EXPERIMENT,
    SETTING,
    SWEEP_PARENT_TAG,
    sort_key,
)
from acai.tracking.mlflow_run import open_existing_store


class NoRuns(TrackingError):
    """The experiment exists but no finished training run matches: nothing to tabulate (exit 1)."""


def find_experiment(tracking_uri: str, experiment: str) -> tuple[MlflowClient, str]:
    """A client and the experiment id; a missing SQLite file is an error here, not a new empty store."""
    client = open_existing_store(tracking_uri)
    uri = client.tracking_uri
    try:
        found = client.get_experiment_by_name(experiment)
        known = [] if found else sorted(e.name for e in client.search_experiments(view_type=ViewType.ALL))
    except Exception as e:  # noqa: BLE001 - any store failure means the same to the user
        raise TrackingError(f"--tracking-uri {tracking_uri!r}: cannot read the MLflow store "
                            f"({type(e).__name__}: {first_line(e)})") from None
    if found is None:
        raise TrackingError(f"--experiment {experiment!r}: no such experiment in {uri}; known: {known}")
    if found.lifecycle_stage == "deleted":
        raise TrackingError(f"--experiment {experiment!r} is deleted in {uri}; restore it with `mlflow experiments "
                            "restore` first")
    return client, found.experiment_id


def search_filter(filter_string: str | None, sweep: str | None) -> str:
    """Finished runs only, ANDed with --sweep and the user's --filter."""
    parts = ["attributes.status = 'FINISHED'"]
    if sweep:
        parts.append(f"tags.sweep = '{sweep}'")
    if filter_string and filter_string.strip():
        parts.append(filter_string.strip())
    return " and ".join(parts)


def load_runs(client: MlflowClient, experiment_id: str, filter_string: str | None = None,
              sweep: str | None = None) -> tuple[list[Run], list[str]]:
    """The training runs to tabulate, and notes on the runs left out (report runs, runs without a config)."""
    query = search_filter(filter_string, sweep)
    runs: list[Run] = []
    token = None
    try:
        while True:
            page = client.search_runs([experiment_id], query, ViewType.ACTIVE_ONLY, max_results=1000,
                                      page_token=token)
            runs += page
            token = page.token
            if not token:
                break
    except MlflowException as e:
        raise TrackingError(f"--filter {filter_string!r}: MLflow cannot search with {query!r} ({e.message})") from None
    reports = [r for r in runs if not is_training(r)]
    training = [r for r in runs if is_training(r)]
    usable = [r for r in training if all(p in r.data.params for p in GROUP_PARAMS.values())]
    notes = [note] if (note := unfinished_note(client, experiment_id, sweep)) else []
    if reports:
        notes.append(f"left out {len(reports)} report run(s)")
    if len(usable) < len(training):
        names = ", ".join(sorted(r.info.run_name or r.info.run_id for r in training if r not in usable)[:5])
        notes.append(f"left out {len(training) - len(usable)} run(s) without the params "
                     f"{', '.join(GROUP_PARAMS.values())} (not made by src/train.py): {names}")
    return usable, notes


def is_training(run: Run) -> bool:
    """A training run, not a report run nor a sweep's parent (those hold summaries of training runs)."""
    return run.data.tags.get(REPORT_TAG) != "true" and SWEEP_PARENT_TAG not in run.data.tags


def unfinished_note(client: MlflowClient, experiment_id: str, sweep: str | None) -> str | None:
    """What the tables leave out for not having finished, telling a run in progress from one whose
    process is gone (killed, out of memory: MLflow still says RUNNING; its lock says nobody holds it)."""
    query = "attributes.status != 'FINISHED'" + (f" and tags.sweep = '{sweep}'" if sweep else "")
    try:
        runs = [r for r in client.search_runs([experiment_id], query, ViewType.ACTIVE_ONLY, max_results=1000)
                if is_training(r)]
    except MlflowException:
        return None
    if not runs:
        return None
    states = Counter(run_state(r) for r in runs)
    return (f"left out {len(runs)} unfinished run(s): " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            + "; rerun a run's command, or `python src/train.py resume=<id>`, to finish it")


def by_step(history: Iterable[Metric]) -> dict[int, float]:
    """A metric's values in step order; a step logged twice (a resumed run redoing an evaluation) counts once,
    with its latest value."""
    latest: dict[int, Metric] = {}
    for m in history:
        if m.step not in latest or m.timestamp >= latest[m.step].timestamp:
            latest[m.step] = m
    return {s: _stored_inf(latest[s].value) for s in sorted(latest)}


def median_of_last(history: Iterable[Metric], n: int = LAST) -> float:
    """Median of the last `n` evaluations by step, skipping undefined (NaN, +-inf) ones; NaN when none is."""
    return finite_median(list(by_step(history).values())[-n:])


def run_plateau(histories: dict[str, dict[int, float]], params: dict[str, str]) -> str:
    """The run's plateau state ('never left', 'left at <samples>', 'back on at <samples>'), from its logged
    `eval/on_plateau`, else recomputed from `eval/reconstruction_error` against a logged `eval/mean_image_error`
    (with its own `evaluation.plateau_margin`); '' (unknown) for a run logged before either existed."""
    flags = histories.get("on_plateau", {})
    errors, baseline = histories.get("reconstruction_error", {}), histories.get("mean_image_error", {})
    if not flags and errors and baseline:
        margin = float(params.get("evaluation.plateau_margin", EvaluationConfig.plateau_margin))
        mean_image_error = next(iter(baseline.values()))
        flags = {s: float(on_plateau(e, mean_image_error, margin)) for s, e in errors.items()}
    return plateau_state(list(flags.values()), list(flags)) or ""


def _stored_inf(value: float) -> float:
    """MLflow's SQL stores keep an infinite metric as +-1.797e308 (the largest float): read it back as the
    infinity it was, so that the median skips it like NaN instead of averaging a 1e308 into the table."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def _latent(value: str) -> int | str:
    return int(value) if value.strip().lstrip("-").isdigit() else value


class Histories:
    """Each run's `eval/<metric>` by step, read from the store once: the tables and the learning curves
    read the same histories."""

    def __init__(self, client: MlflowClient):
        self.client = client
        self._read: dict[tuple[str, str], dict[int, float]] = {}

    def __call__(self, run_id: str, metric: str) -> dict[int, float]:
        if (run_id, metric) not in self._read:
            self._read[run_id, metric] = by_step(self.client.get_metric_history(run_id, f"eval/{metric}"))
        return self._read[run_id, metric]


def summarize(read: Histories, runs: Sequence[Run], last: int | None = None) -> pd.DataFrame:
    """One row per run: its setting, regularizer, seed, its number of evaluations, the window taken (`last`, or
    by default its `summary/*` window from that number), the median over that window of each `eval/` metric,
    and its plateau state.

    A metric the run never logged is NaN; one it logged but whose window is all NaN is NaN too, and is named
    in the `undefined` column so that the tables can tell "not measured" from "undefined".
    """
    rows = []
    for run in runs:
        params = run.data.params
        row: dict[str, object] = {"run_id": run.info.run_id, "run_name": run.info.run_name}
        row |= {col: params[p] for col, p in GROUP_PARAMS.items()}
        row["latent_dim"] = _latent(params["model.latent_dim"])
        row["seed"] = params.get("seed", "")
        histories = {metric: read(run.info.run_id, metric)
                     for metric in (*METRICS, *PLATEAU_METRICS) if f"eval/{metric}" in run.data.metrics}
        row["evaluations"] = len({step for history in histories.values() for step in history})
        paper_n = int(params.get("evaluation.median_of_last", LAST))  # summary/* follows the run's own setting
        row["window"] = window = last or summary_window(int(row["evaluations"]), paper_n)
        undefined = []
        for metric in METRICS:
            row[metric] = finite_median(list(histories[metric].values())[-window:]) if metric in histories \
                else math.nan
            if metric in histories and math.isnan(row[metric]):
                undefined.append(metric)
        row["undefined"] = " ".join(undefined)
        row["plateau"] = run_plateau(histories, params)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["run_id", "run_name", "regularizer", *SETTING, "seed", "evaluations",
                                        "window", *METRICS, "undefined", "plateau"])
    return frame.sort_values([*SETTING, "regularizer", "seed"], key=sort_key, ignore_index=True)


def window_note(per_run: pd.DataFrame, last: int | None) -> str:
    """Which evaluations each run's median covers, in words: `--last N`, or the summary windows found."""
    if last is not None:
        return f"its last {last} evaluations (`--last {last}`)"
    windows = Counter(zip(per_run["window"], per_run["evaluations"]))
    found = ", ".join(f"the last {w} of {e} ({n} run{'s' if n > 1 else ''})" for (w, e), n in sorted(windows.items()))
    return ("its last round(E·20/256) of E evaluations, at least 1 and at most 20, the window of its own "
            f"`summary/*` (the paper's 20 of 256): {found}")


def mixed_settings(runs: Sequence[Run]) -> list[str]:
    """Warnings for cells whose runs differ in more than the seed (e.g. a smoke run next to a full one)."""
    cells: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for run in runs:
        params = run.data.params
        cells.setdefault(tuple(params[p] for p in GROUP_PARAMS.values()), []).append(params)
    notes = []
    for cell, group in cells.items():
        keys = {k for params in group for k in params if not k.startswith(SAME_EXPERIMENT)}
        differ = sorted(k for k in keys if len({params.get(k) for params in group}) > 1)
        if differ:
            more = f" and {len(differ) - 6} more" if len(differ) > 6 else ""
            notes.append(f"the {len(group)} runs of {'/'.join(cell)} differ in {', '.join(differ[:6])}{more}")
    return notes
