"""A `-m` sweep's tag: every job's MLflow run carries it, and the sweep announces it before its first job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from acai.config import PROJECT_ROOT


def sweep_tag(sweep_dir: str) -> str:
    """The sweep folder, relative to the repository root when inside it (`multirun/2026-11-25/20-16-30`):
    short enough to type into `src/report.py --sweep` and the UI's search box."""
    path = Path(sweep_dir).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


class AnnounceSweep(Callback):
    """Hydra callback (conf/config.yaml): prints the sweep tag and how to compare its runs, once."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        tag = sweep_tag(config.hydra.sweep.dir)
        print(f"Sweep {tag}: every job's run carries the tag sweep={tag}\n"
              f"  compare: python src/report.py --sweep {tag}   (UI search: tags.sweep = '{tag}')", flush=True)
