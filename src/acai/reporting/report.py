"""The whole report: read, aggregate, write the tables and figures to a folder and log them to a new run
(`build_report`, what `src/report.py` and a sweep's summary call)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from acai.config import DEFAULT_TRACKING_URI
from acai.errors import ConfigError, TrackingError
from acai.reporting.aggregate import aggregate
from acai.reporting.curves import curves, curves_figure
from acai.reporting.figures import figure
from acai.reporting.measurements import MEASUREMENTS, REPORT_TAG
from acai.reporting.runs import (
    Histories,
    NoRuns,
    find_experiment,
    load_runs,
    mixed_settings,
    search_filter,
    summarize,
    window_note,
)
from acai.reporting.sweep_summary import log_summary
from acai.reporting.tables import combined_markdown, table_markdown
from acai.tracking.sweep import find_parent


@dataclass
class Report:
    """What one call produced: per-run medians, one tidy table per measurement, the files and the logged run."""

    per_run: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    markdown: str
    files: list[Path]
    notes: list[str]
    run_id: str | None = None


def build_report(tracking_uri: str = DEFAULT_TRACKING_URI, experiment: str = "acai", filter_string: str | None = None,
                 *, sweep: str | None = None, out: str | Path = "reports", log: bool = True,
                 last: int | None = None) -> Report:
    """Read, aggregate, write the files and (unless `log=False`) log them to a new summary run.

    `last`: per run the median of its last `last` evaluations; None: of its `summary/*` window."""
    client, experiment_id = find_experiment(tracking_uri, experiment)
    runs, notes = load_runs(client, experiment_id, filter_string, sweep)
    if not runs:
        query = search_filter(filter_string, sweep)
        raise NoRuns(f"no finished training runs in experiment {experiment!r} match {query!r}"
                     + (f" ({'; '.join(notes)})" if notes else ""))
    notes += mixed_settings(runs)
    if last is not None and last < 1:
        raise ConfigError("--last", last, "must be >= 1 (evaluations per run to take the median of)")
    histories = Histories(client)
    per_run = summarize(histories, runs, last)
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
        learning = curves(histories, per_run)
        learning.to_csv(out / "learning_curves.csv", index=False)
        curves_figure(learning).savefig(out / "learning_curves.png", dpi=120)
        markdown = combined_markdown(experiment, sweep, filter_string, per_run, tables, notes=notes, window=window)
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
