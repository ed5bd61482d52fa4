"""The paper's tables from an MLflow experiment: `python src/report.py [options]`.

    python src/report.py                                   # every finished run of experiment `acai`
    python src/report.py --sweep table1                    # only runs trained with tracking.sweep=table1
    python src/report.py --filter "params.seed != '2'"     # any MLflow search filter, ANDed with the rest
    python src/report.py --tracking-uri sqlite:///mlflow.db --experiment acai --out reports/ --no-log

Reads the finished training runs, groups them by dataset / model / latent size (rows) and regularizer
(columns, in the paper's order: Baseline = `none`, dropout, denoising, vae, aae, vqvae, acai), and
aggregates over seeds as the paper does: per run the median of its last 20 evaluations (recomputed from
the `eval/<metric>` history, by step), then mean ± std (np.std, ddof=0) over the runs, with their count n.
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

from acai.config import DEFAULT_TRACKING_URI
from acai.errors import AcaiError, ConfigError, TrackingError
from acai.evaluation.summary import finite_median
from acai.locks import run_state
from acai.tracking.mlflow_run import open_store as open_existing_store

LAST = 20  # the paper: "the median value of the last 20 evaluations"
REPORT_TAG = "acai.report"
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
    reports = [r for r in runs if r.data.tags.get(REPORT_TAG) == "true"]
    training = [r for r in runs if r.data.tags.get(REPORT_TAG) != "true"]
    usable = [r for r in training if all(p in r.data.params for p in GROUP_PARAMS.values())]
    notes = [note] if (note := unfinished_note(client, experiment_id, sweep)) else []
    if reports:
        notes.append(f"left out {len(reports)} report run(s)")
    if len(usable) < len(training):
        names = ", ".join(sorted(r.info.run_name or r.info.run_id for r in training if r not in usable)[:5])
        notes.append(f"left out {len(training) - len(usable)} run(s) without the params "
                     f"{', '.join(GROUP_PARAMS.values())} (not made by src/train.py): {names}")
    return usable, notes


def unfinished_note(client: MlflowClient, experiment_id: str, sweep: str | None) -> str | None:
    """What the tables leave out for not having finished, telling a run in progress from one whose
    process is gone (killed, out of memory: MLflow still says RUNNING; its lock says nobody holds it)."""
    query = "attributes.status != 'FINISHED'" + (f" and tags.sweep = '{sweep}'" if sweep else "")
    try:
        runs = [r for r in client.search_runs([experiment_id], query, ViewType.ACTIVE_ONLY, max_results=1000)
                if r.data.tags.get(REPORT_TAG) != "true"]
    except MlflowException:
        return None
    if not runs:
        return None
    states = Counter(run_state(r) for r in runs)
    return (f"left out {len(runs)} unfinished run(s): " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            + "; rerun a run's command, or `python src/train.py resume=<id>`, to finish it")


def median_of_last(history: Iterable[Metric], n: int = LAST) -> float:
    """Median of the last `n` evaluations by step, skipping undefined (NaN, +-inf) ones; NaN when none is.

    A step logged twice (a resumed run redoing an evaluation) counts once, with its latest value.
    """
    by_step: dict[int, Metric] = {}
    for m in history:
        if m.step not in by_step or m.timestamp >= by_step[m.step].timestamp:
            by_step[m.step] = m
    return finite_median([_stored_inf(by_step[s].value) for s in sorted(by_step)][-n:])


def _stored_inf(value: float) -> float:
    """MLflow's SQL stores keep an infinite metric as +-1.797e308 (the largest float): read it back as the
    infinity it was, so that the median skips it like NaN instead of averaging a 1e308 into the table."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def _latent(value: str) -> int | str:
    return int(value) if value.strip().lstrip("-").isdigit() else value


def summarize(client: MlflowClient, runs: Sequence[Run], n: int = LAST) -> pd.DataFrame:
    """One row per run: its setting, regularizer, seed and the median of the last `n` of each `eval/` metric.

    A metric the run never logged is NaN; one it logged but whose last `n` values are all NaN is NaN too, and
    is named in the `undefined` column so that the tables can tell "not measured" from "undefined".
    """
    rows = []
    for run in runs:
        params = run.data.params
        row: dict[str, object] = {"run_id": run.info.run_id, "run_name": run.info.run_name}
        row |= {col: params[p] for col, p in GROUP_PARAMS.items()}
        row["latent_dim"] = _latent(params["model.latent_dim"])
        row["seed"] = params.get("seed", "")
        undefined = []
        for metric in METRICS:
            key = f"eval/{metric}"
            row[metric] = median_of_last(client.get_metric_history(run.info.run_id, key), n) \
                if key in run.data.metrics else math.nan
            if key in run.data.metrics and math.isnan(row[metric]):
                undefined.append(metric)
        row["undefined"] = " ".join(undefined)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["run_id", "run_name", "regularizer", *SETTING, "seed", *METRICS, "undefined"])
    return frame.sort_values([*SETTING, "regularizer", "seed"], key=_sort_key, ignore_index=True)


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

    `n` counts the runs with a value; `undefined` those whose last evaluations were all NaN (not in the mean).
    """
    rows = []

    def add(keys: tuple, regularizer: str, group: pd.DataFrame, metric: str) -> None:
        values = group[metric].dropna().to_numpy(dtype=float) * m.scale
        undefined = int(group["undefined"].str.split().map(lambda names: metric in names).sum())
        if len(values) or undefined:
            dataset, model, latent = keys
            paper = m.paper.get((dataset, latent), {}).get(regularizer, (math.nan, None))
            rows.append({"dataset": dataset, "model": model, "latent_dim": latent, "regularizer": regularizer,
                         "label": LABELS.get(regularizer, regularizer),
                         "mean": float(np.mean(values)) if len(values) else math.nan,
                         "std": float(np.std(values)) if len(values) else math.nan, "n": len(values),
                         "undefined": undefined, "paper_mean": paper[0],
                         "paper_std": math.nan if paper[1] is None else paper[1]})

    for keys, group in per_run.groupby([*SETTING, "regularizer"], sort=False):
        add(keys[:3], keys[3], group, m.metric)
    if m.reference:
        for keys, group in per_run.groupby(SETTING, sort=False):
            add(keys, "pixels", group, m.reference)
    table = pd.DataFrame(rows, columns=[*SETTING, "regularizer", "label", "mean", "std", "n", "undefined",
                                        "paper_mean", "paper_std"])
    return table.sort_values([*SETTING, "regularizer"], key=_sort_key, ignore_index=True)


# ---------------------------------------------------------------- rendering


def cell(mean: float, std: float) -> str:
    """`{mean:.2f}±{std:.2f}`; blank when there is no value, `~mean` when the paper gives no std."""
    if mean is None or math.isnan(mean):
        return ""
    return f"~{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f}±{std:.2f}"


def columns_of(table: pd.DataFrame) -> list[str]:
    """Regularizers present, in the paper's order (unknown ones after, by name), `pixels` last."""
    present = [r for r in table["regularizer"].unique() if r != "pixels"]
    cols = sorted(present, key=lambda r: _order(r, REGULARIZERS))
    return cols + (["pixels"] if "pixels" in set(table["regularizer"]) else [])


def _n_cell(ns: dict[str, int]) -> str:
    if len(set(ns.values())) <= 1:
        return str(next(iter(ns.values()), ""))
    return " ".join(f"{LABELS.get(r, r)}:{n}" for r, n in ns.items())


def table_markdown(m: Measurement, table: pd.DataFrame, last: int = LAST) -> str:
    """One paper table: a row per setting, a column per regularizer, the paper's row under ours where it has one."""
    head = f"## {m.heading}\n\n"
    if table.empty:
        return head + f"_No finished run logged `eval/{m.metric}`._\n"
    cols = columns_of(table)
    lines = ["| dataset | model | latent | " + " | ".join(LABELS.get(c, c) for c in cols) + " | n |",
             "|---|---|---:|" + "---:|" * len(cols) + "---:|"]
    paper_rows = 0
    for keys, group in table.groupby(SETTING, sort=False):
        by_reg = {row.regularizer: row for row in group.itertuples()}
        ours = [("NaN" if by_reg[c].n == 0 else cell(by_reg[c].mean, by_reg[c].std)) if c in by_reg else ""
                for c in cols]
        ns = {c: by_reg[c].n for c in cols if c in by_reg and c != "pixels" and by_reg[c].n}
        lines.append(f"| {keys[0]} | {keys[1]} | {keys[2]} | " + " | ".join(ours) + f" | {_n_cell(ns)} |")
        paper = m.paper.get((keys[0], keys[2]), {})
        if any(c in paper for c in cols):
            values = [cell(*paper[c]) if c in paper else "" for c in cols]
            lines.append(f"| {PAPER_LABEL} | | | " + " | ".join(values) + " | |")
            paper_rows += 1
    scale = f" x {m.scale:g}" if m.scale != 1 else ""
    notes = [f"Mean ± std (np.std, ddof=0) over the n runs (seeds) of each run's median of its last {last} "
             f"evaluations of `eval/{m.metric}`{scale}; {m.better} is better."]
    undefined = table[table["undefined"] > 0]
    if len(undefined):
        cells = ", ".join(f"{r.label} {r.dataset}/{r.model}/{r.latent_dim} ({r.undefined})"
                          for r in undefined.itertuples())
        notes.append(f"Runs whose last {last} evaluations were all undefined (NaN) or infinite (±inf, taken as "
                     f"undefined), left out of n and the mean (`NaN`: no run defined): {cells}. Single undefined "
                     "(NaN or ±inf) evaluations are skipped in the median.")
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


# ---------------------------------------------------------------- the whole report


def build_report(tracking_uri: str = DEFAULT_TRACKING_URI, experiment: str = "acai", filter_string: str | None = None,
                 sweep: str | None = None, out: str | Path = "reports", log: bool = True, last: int = LAST) -> Report:
    """Read, aggregate, write the files and (unless `log=False`) log them to a new summary run."""
    client, experiment_id = open_store(tracking_uri, experiment)
    runs, notes = load_runs(client, experiment_id, filter_string, sweep)
    if not runs:
        query = search_filter(filter_string, sweep)
        raise NoRuns(f"no finished training runs in experiment {experiment!r} match {query!r}"
                     + (f" ({'; '.join(notes)})" if notes else ""))
    notes += mixed_settings(runs)
    if last < 1:
        raise ConfigError("--last", last, "must be >= 1 (evaluations per run to take the median of)")
    per_run = summarize(client, runs, last)
    tables = {m.key: aggregate(per_run, m) for m in MEASUREMENTS}

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for m in MEASUREMENTS:
            title = f"# {experiment}: " + table_markdown(m, tables[m.key], last).removeprefix("## ")
            (out / f"{m.key}.md").write_text(title, encoding="utf-8")
            tables[m.key].to_csv(out / f"{m.key}.csv", index=False)
            files += [out / f"{m.key}.md", out / f"{m.key}.csv"]
        per_run.to_csv(out / "runs.csv", index=False)
        figure(tables).savefig(out / "report.png", dpi=120)
        markdown = combined_markdown(experiment, sweep, filter_string, per_run, tables, notes, last)
        (out / "report.md").write_text(markdown, encoding="utf-8")
        files += [out / "runs.csv", out / "report.png", out / "report.md"]
    except OSError as e:
        raise TrackingError(f"--out {str(out)!r}: cannot write the report there ({e.strerror or e})") from None

    report = Report(per_run, tables, markdown, files, notes)
    if log:
        report.run_id = log_report(client, experiment_id, f"report-{experiment}" + (f"-{sweep}" if sweep else ""),
                                   files, {"filter": filter_string or "", "sweep": sweep or "", "runs": len(per_run),
                                    "last": last})
    return report


def combined_markdown(experiment: str, sweep: str | None, filter_string: str | None, per_run: pd.DataFrame,
                      tables: dict[str, pd.DataFrame], notes: list[str], last: int = LAST) -> str:
    """report.md: what was read, every table, the figure."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    selection = [f"experiment `{experiment}`"] + ([f"sweep `{sweep}`"] if sweep else []) \
        + ([f"filter `{filter_string}`"] if filter_string else [])
    head = [f"# ACAI report: {', '.join(selection)}", "",
            f"{len(per_run)} finished runs, {per_run.groupby(SETTING).ngroups} setting(s), "
            f"regularizers {', '.join(LABELS.get(r, r) for r in columns_of(per_run))}; "
            f"generated {when}.", ""]
    head += [f"> Note: {n}" for n in notes] + ([""] if notes else [])
    body = "\n".join(table_markdown(m, tables[m.key], last) for m in MEASUREMENTS)
    return "\n".join(head) + "\n" + body + "\n![bar charts](report.png)\n"


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
    parser.add_argument("--last", type=int, default=LAST, metavar="N",
                        help=f"per run, the median of its last N evaluations (default {LAST}, the paper's; a "
                             "short run with few evaluations may want fewer, so early ones do not count)")
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
