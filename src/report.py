"""The paper's tables from an MLflow experiment: `python src/report.py [options]`.

    python src/report.py                                   # every finished run of experiment `acai`
    python src/report.py --sweep table1                    # only runs trained with tracking.sweep=table1
    python src/report.py --filter "params.seed != '2'"     # any MLflow search filter, ANDed with the rest
    python src/report.py --tracking-uri sqlite:///mlflow.db --experiment acai --out reports/ --no-log

Reads the finished training runs, groups them by dataset / model / latent size (rows) and regularizer
(columns, in the paper's order: Baseline = `none`, dropout, denoising, vae, aae, vqvae, acai), and
aggregates over seeds as the paper does: per run the median of its last evaluations (recomputed from the
`eval/<metric>` history, by step), then mean ± std (np.std, ddof=0) over the runs, with their count n.
The window is the one of the runs' own `summary/*`, the paper's share of training: the last round(E·20/256)
of a run's E evaluations, at least 1 and at most 20 (the paper's 20 of 256); `--last N` forces N for every run.
A cell whose runs never left the initial plateau (`eval/on_plateau` = 1 at every evaluation: reconstructing
no better than the mean test image) is marked `†` (`†k/n` when k of its n runs never left): its numbers
describe the plateau, not the model.
One table per measurement -- Mean Distance (x10^-3), Smoothness, latent classifier accuracy (%), a
linear probe's accuracy (%, not in the paper), clustering accuracy (%) with a K-means-on-pixels reference
column, reconstruction error -- with the paper's values as our reference notes recall them (not checked
against the paper's PDF) in a `paper (unverified)` row where the paper reports that setting.

Writes `<table>.md` and `<table>.csv` per table, `runs.csv` (each run's medians), `report.md` and
`report.png` (bar charts with error bars) to --out, prints report.md, and, unless --no-log, logs them
all as artifacts of a new run `report-<experiment>[-<sweep>]` tagged `acai.report=true` (report runs are
never read back as training runs). Exit status: 0 done, 1 no finished runs match, 2 bad store/experiment/filter.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: its start-up chatter goes to fd 2 at import
    from acai.console import quiet_native_logs

    quiet_native_logs()

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from acai.config import DEFAULT_TRACKING_URI, EvaluationConfig
from acai.errors import AcaiError, ConfigError, TrackingError
from acai.evaluation.summary import finite_median, on_plateau, plateau_state, summary_window
from acai.locks import run_state
from acai.tracking.mlflow_run import open_store as open_existing_store
from acai.tracking.sweep import find_parent, log_summary

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


class NoRuns(TrackingError):
    """The experiment exists but no finished training run matches: nothing to tabulate (exit 1)."""


@dataclass
class Report:
    """What one call produced: per-run medians, one tidy table per measurement, the files and the logged run."""

    per_run: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    markdown: str
    files: list[Path]
    notes: list[str]
    run_id: str | None = None


# ---------------------------------------------------------------- reading the store


def open_store(tracking_uri: str, experiment: str) -> tuple[MlflowClient, str]:
    """A client and the experiment id; a missing SQLite file is an error here, not a new empty store."""
    client = open_existing_store(tracking_uri)
    uri = client.tracking_uri
    try:
        found = client.get_experiment_by_name(experiment)
        known = [] if found else sorted(e.name for e in client.search_experiments(view_type=ViewType.ALL))
    except Exception as e:  # noqa: BLE001 - any store failure means the same to the user
        raise TrackingError(f"--tracking-uri {tracking_uri!r}: cannot read the MLflow store "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
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


def summarize(client: MlflowClient, runs: Sequence[Run], last: int | None = None) -> pd.DataFrame:
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
        histories = {metric: by_step(client.get_metric_history(run.info.run_id, f"eval/{metric}"))
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
    return frame.sort_values([*SETTING, "regularizer", "seed"], key=_sort_key, ignore_index=True)


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


# ---------------------------------------------------------------- aggregating


def _order(name: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(name), "") if name in order else (len(order), str(name))


def _sort_key(col: pd.Series) -> pd.Series:
    if col.name == "regularizer":
        return col.map(lambda v: _order(v, (*REGULARIZERS, "pixels")))
    if col.name == "dataset":
        return col.map(lambda v: _order(v, DATASETS))
    if col.name in ("latent_dim", "seed"):  # numbers in numeric order, anything else after them
        return col.map(lambda v: (0, int(v), "") if str(v).lstrip("-").isdigit() else (1, 0, str(v)))
    return col.map(str)


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
    return table.sort_values([*SETTING, "regularizer"], key=_sort_key, ignore_index=True)


# ---------------------------------------------------------------- rendering


def cell(mean: float, std: float) -> str:
    """`{mean:.2f}±{std:.2f}`; blank when there is no value, `~mean` when the paper gives no std."""
    if mean is None or math.isnan(mean):
        return ""
    return f"~{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f}±{std:.2f}"


def plateau_mark(stuck: int, n: int) -> str:
    """`†` when every run of a cell never left the initial plateau, `†k/n` when k of its n did, else nothing."""
    return "" if not stuck else MARK if stuck == n else f"{MARK}{stuck}/{n}"


def columns_of(table: pd.DataFrame) -> list[str]:
    """Regularizers present, in the paper's order (unknown ones after, by name), `pixels` last."""
    present = [r for r in table["regularizer"].unique() if r != "pixels"]
    cols = sorted(present, key=lambda r: _order(r, REGULARIZERS))
    return cols + (["pixels"] if "pixels" in set(table["regularizer"]) else [])


def _n_cell(ns: dict[str, int]) -> str:
    if len(set(ns.values())) <= 1:
        return str(next(iter(ns.values()), ""))
    return " ".join(f"{LABELS.get(r, r)}:{n}" for r, n in ns.items())


def table_markdown(m: Measurement, table: pd.DataFrame, window: str = f"its last {LAST} evaluations") -> str:
    """One paper table: a row per setting, a column per regularizer, the paper's row under ours where it has one;
    `window` says which evaluations each run's median covers (`window_note`)."""
    head = f"## {m.heading}\n\n"
    if table.empty:
        return head + f"_No finished run logged `eval/{m.metric}`._\n"
    cols = columns_of(table)
    lines = ["| dataset | model | latent | " + " | ".join(LABELS.get(c, c) for c in cols) + " | n |",
             "|---|---|---:|" + "---:|" * len(cols) + "---:|"]
    paper_rows = 0
    for keys, group in table.groupby(SETTING, sort=False):
        by_reg = {row.regularizer: row for row in group.itertuples()}
        ours = [("NaN" if by_reg[c].n == 0 else cell(by_reg[c].mean, by_reg[c].std)
                 + plateau_mark(by_reg[c].plateau, by_reg[c].n)) if c in by_reg else "" for c in cols]
        ns = {c: by_reg[c].n for c in cols if c in by_reg and c != "pixels" and by_reg[c].n}
        lines.append(f"| {keys[0]} | {keys[1]} | {keys[2]} | " + " | ".join(ours) + f" | {_n_cell(ns)} |")
        paper = m.paper.get((keys[0], keys[2]), {})
        if any(c in paper for c in cols):
            values = [cell(*paper[c]) if c in paper else "" for c in cols]
            lines.append(f"| {PAPER_LABEL} | | | " + " | ".join(values) + " | |")
            paper_rows += 1
    scale = f" x {m.scale:g}" if m.scale != 1 else ""
    notes = [f"Mean ± std (np.std, ddof=0) over the n runs (seeds) of each run's median of {window} "
             f"of `eval/{m.metric}`{scale}; {m.better} is better."]
    stuck = table[table["plateau"] > 0]
    if len(stuck):
        cells = ", ".join(f"{r.label} {r.dataset}/{r.model}/{r.latent_dim} ({r.plateau} of {r.n})"
                          for r in stuck.itertuples())
        notes.append(f"`{MARK}`: every run of the cell never left the initial plateau (`eval/on_plateau` = 1 at "
                     "every evaluation: its reconstruction error stayed within `evaluation.plateau_margin` of "
                     f"predicting every test image by the mean test image), so the value describes the plateau, "
                     f"not a result; `{MARK}k/n`: k of its n runs never left, and their values are in the mean. "
                     f"Runs that never left: {cells}.")
    undefined = table[table["undefined"] > 0]
    if len(undefined):
        cells = ", ".join(f"{r.label} {r.dataset}/{r.model}/{r.latent_dim} ({r.undefined})"
                          for r in undefined.itertuples())
        notes.append(f"Runs whose window was all undefined (NaN) or infinite (±inf, taken as undefined), left out "
                     f"of n and the mean (`NaN`: no run defined): {cells}. Single undefined (NaN or ±inf) "
                     "evaluations are skipped in the median.")
    if m.reference:
        notes.append(f"`pixels`: K-means on raw pixels (`eval/{m.reference}`), over all runs of the setting.")
    if paper_rows:
        notes.append(f"`{PAPER_LABEL}`: the paper's value for that setting as our reference notes recall it, not "
                     "checked against the paper (a rough target); "
                     "`~` where it gives no std.")
    return head + "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


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


def curves(client: MlflowClient, per_run: pd.DataFrame) -> pd.DataFrame:
    """Learning curves: for each measurement, setting and regularizer, the mean and std (ddof=0) over its runs
    of `eval/<metric>` at each number of samples seen that every one of those runs logged (undefined values
    left out of that step's mean; `n` counts the defined ones)."""
    rows = []
    for m in MEASUREMENTS:
        for keys, group in per_run.groupby([*SETTING, "regularizer"], sort=False):
            histories = [by_step(client.get_metric_history(run_id, f"eval/{m.metric}")) for run_id in group["run_id"]]
            steps = sorted(set.intersection(*(set(h) for h in histories))) if histories else []
            for step in steps:
                values = np.array([h[step] for h in histories], float) * m.scale
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


# ---------------------------------------------------------------- the whole report


def build_report(tracking_uri: str = DEFAULT_TRACKING_URI, experiment: str = "acai", filter_string: str | None = None,
                 sweep: str | None = None, out: str | Path = "reports", log: bool = True,
                 last: int | None = None) -> Report:
    """Read, aggregate, write the files and (unless `log=False`) log them to a new summary run.

    `last`: per run the median of its last `last` evaluations; None: of its `summary/*` window."""
    client, experiment_id = open_store(tracking_uri, experiment)
    runs, notes = load_runs(client, experiment_id, filter_string, sweep)
    if not runs:
        query = search_filter(filter_string, sweep)
        raise NoRuns(f"no finished training runs in experiment {experiment!r} match {query!r}"
                     + (f" ({'; '.join(notes)})" if notes else ""))
    notes += mixed_settings(runs)
    if last is not None and last < 1:
        raise ConfigError("--last", last, "must be >= 1 (evaluations per run to take the median of)")
    per_run = summarize(client, runs, last)
    tables = {m.key: aggregate(per_run, m) for m in MEASUREMENTS}
    window = window_note(per_run, last)

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for m in MEASUREMENTS:
            title = f"# {experiment}: " + table_markdown(m, tables[m.key], window).removeprefix("## ")
            (out / f"{m.key}.md").write_text(title, encoding="utf-8")
            tables[m.key].to_csv(out / f"{m.key}.csv", index=False)
            files += [out / f"{m.key}.md", out / f"{m.key}.csv"]
        per_run.to_csv(out / "runs.csv", index=False)
        figure(tables).savefig(out / "report.png", dpi=120)
        learning = curves(client, per_run)
        learning.to_csv(out / "learning_curves.csv", index=False)
        curves_figure(learning).savefig(out / "learning_curves.png", dpi=120)
        markdown = combined_markdown(experiment, sweep, filter_string, per_run, tables, notes, window)
        (out / "report.md").write_text(markdown, encoding="utf-8")
        files += [out / "runs.csv", out / "report.png", out / "learning_curves.csv", out / "learning_curves.png",
                  out / "report.md"]
    except OSError as e:
        raise TrackingError(f"--out {str(out)!r}: cannot write the report there ({e.strerror or e})") from None

    report = Report(per_run, tables, markdown, files, notes)
    if log and sweep and (parent := find_parent(client, experiment_id, sweep)):  # a cut-short sweep's summary
        log_summary(client, parent, report)
    if log:
        report.run_id = log_report(client, experiment_id, f"report-{experiment}" + (f"-{sweep}" if sweep else ""),
                                   files, {"filter": filter_string or "", "sweep": sweep or "", "runs": len(per_run),
                                    "last": last or "summary"})
    return report


def combined_markdown(experiment: str, sweep: str | None, filter_string: str | None, per_run: pd.DataFrame,
                      tables: dict[str, pd.DataFrame], notes: list[str],
                      window: str = f"its last {LAST} evaluations") -> str:
    """report.md: what was read, which evaluations each run counts with, every table, the figure."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    selection = [f"experiment `{experiment}`"] + ([f"sweep `{sweep}`"] if sweep else []) \
        + ([f"filter `{filter_string}`"] if filter_string else [])
    head = [f"# ACAI report: {', '.join(selection)}", "",
            f"{len(per_run)} finished runs, {per_run.groupby(SETTING).ngroups} setting(s), "
            f"regularizers {', '.join(LABELS.get(r, r) for r in columns_of(per_run))}; "
            f"generated {when}.", "", f"Each run counts with the median of {window}.", ""]
    stuck = int((per_run["plateau"] == NEVER_LEFT).sum())
    if stuck:
        head += [f"{stuck} of the {len(per_run)} runs never left the initial plateau; their cells are marked "
                 f"`{MARK}`.", ""]
    head += [f"> Note: {n}" for n in notes] + ([""] if notes else [])
    body = "\n".join(table_markdown(m, tables[m.key], window) for m in MEASUREMENTS)
    return "\n".join(head) + "\n" + body + "\n![bar charts](report.png)\n\n![learning curves](learning_curves.png)\n"


def log_report(client: MlflowClient, experiment_id: str, name: str, files: Sequence[Path],
               params: dict[str, object]) -> str:
    """A summary run holding the report; tagged so that the next report does not read it as a training run."""
    try:
        run = client.create_run(experiment_id, run_name=name, tags={REPORT_TAG: "true"})
    except Exception as e:  # noqa: BLE001
        raise TrackingError(f"cannot create the report run in the MLflow store ({e})") from None
    run_id = run.info.run_id
    try:
        client.log_batch(run_id, params=[Param(f"report.{k}", str(v)) for k, v in params.items()])
        for path in files:
            client.log_artifact(run_id, str(path))
    except Exception as e:  # noqa: BLE001
        client.set_terminated(run_id, "FAILED")
        raise TrackingError(f"cannot log the report to run {run_id} ({type(e).__name__}: {e})") from None
    client.set_terminated(run_id, "FINISHED")
    return run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help="the MLflow store (default: mlflow.db in the repository root)")
    parser.add_argument("--experiment", default="acai")
    parser.add_argument("--filter", dest="filter_string", help="an MLflow search filter, e.g. \"params.seed = '0'\"")
    parser.add_argument("--sweep", help="only runs trained with tracking.sweep=NAME (the run tag `sweep`)")
    parser.add_argument("--out", default="reports", help="folder for the tables, report.md and report.png")
    parser.add_argument("--no-log", dest="log", action="store_false", help="do not log the report to MLflow")
    parser.add_argument("--last", type=int, metavar="N",
                        help="per run, the median of its last N evaluations (default: the window of the run's own "
                             f"summary/*, the paper's share of training: the last round(E*20/256) of its E "
                             f"evaluations, 1 to {LAST})")
    args = parser.parse_args(argv)
    args.sweep = args.sweep.rstrip("/") or None if args.sweep else None  # as a shell completes a folder
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # an unreachable server fails in seconds
    try:
        report = build_report(args.tracking_uri, args.experiment, args.filter_string, args.sweep, args.out, args.log,
                              args.last)
    except NoRuns as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.markdown)
    where = f"; logged to run {report.run_id}" if report.run_id else ""
    print(f"wrote {len(report.files)} files to {args.out}{where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
