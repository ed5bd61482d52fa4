"""Hydra's Optuna sweeper, resumable: `hydra/sweeper=optuna_acai` (see acai.tracking.optuna_sweep). Hydra loads
plugins from the `hydra_plugins` namespace only, hence this package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig


def journal_path(config: DictConfig) -> Path:
    """Where a sweep's study is journaled: named by the sweep's key, so that rerunning the command finds it."""
    from acai.tracking.sweep import sweep_key

    return Path(config.trainer.checkpoint_dir).expanduser().resolve() / "optuna" / f"{sweep_key(config)}.jsonl"


class ResumableOptunaSweeper(OptunaSweeper):
    """Hydra's Optuna sweeper whose study, unless a `storage` is given, is journaled and resumed."""

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from acai.tracking.optuna_sweep import JournaledStorage

        if not config.tracking.get("objective"):  # refused before a study is journaled (the job refuses it too)
            import sys

            print("error: tracking.objective=None is not valid: an Optuna sweep needs the logged metric to optimise, "
                  "e.g. tracking.objective=summary/mean_distance", file=sys.stderr)
            sys.exit(2)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        impl = self.sweeper
        if impl.storage is not None:
            return
        impl.storage = JournaledStorage(journal_path(config))
        done = impl.storage.finished(impl.study_name)
        if done:
            print(f"Resuming Optuna study {impl.study_name!r} ({impl.storage.path}): {done} of {impl.n_trials} "
                  "trials done", flush=True)
            seed = config.hydra.sweeper.get("sampler", {}).get("seed")
            if seed is not None:  # the same seed would propose the first trials' parameters again
                impl.sampler = instantiate(config.hydra.sweeper.sampler, seed=seed + done)
        impl.n_trials = max(0, impl.n_trials - done)
