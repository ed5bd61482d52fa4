"""A sweep's summary in its parent run: the report of its children (tables, figures, learning curves under
`summary/`), mean, std and n of every table cell as metrics, and an Optuna sweep's best parameters and value."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from acai.reporting.measurements import MEASUREMENTS


def log_summary(client: MlflowClient, parent_id: str, built: Any, sweep_dir: str | None = None) -> None:
    """The parent's summary: the report's files under `summary/`, mean/std/n of every table cell as metrics
    (`<measurement>/<regularizer>/<dataset>-<model>-z<latent>/mean`) and, after an Optuna sweep (its
    `optimization_results.yaml` in the sweep folder), the best parameters and value."""
    for path in built.files:
        client.log_artifact(parent_id, str(path), "summary")
    metrics: dict[str, float] = {"summary/runs": float(len(built.per_run))}
    for m in MEASUREMENTS:
        for row in built.tables[m.key].itertuples():
            if row.n:
                name = f"{m.key}/{row.regularizer}/{row.dataset}-{row.model}-z{row.latent_dim}"
                metrics |= {f"{name}/mean": row.mean, f"{name}/std": row.std, f"{name}/n": float(row.n)}
    best = Path(sweep_dir) / "optimization_results.yaml" if sweep_dir else None
    if best is not None and best.is_file():
        result = yaml.safe_load(best.read_text()) or {}
        if "best_value" in result:
            metrics["best/value"] = float(result["best_value"])
        for name, value in (result.get("best_params") or {}).items():
            client.log_param(parent_id, f"best.{name}", value)
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for start in range(0, len(items), 500):
        client.log_batch(parent_id, metrics=items[start:start + 500])
