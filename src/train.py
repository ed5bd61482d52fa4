"""Train an autoencoder: `python src/train.py [group=option ...] [key=value ...]` (Hydra)."""

import os
import signal
import sys


class EarlySignal(KeyboardInterrupt):
    """SIGINT or SIGTERM before the run installs its own handlers (imports, Hydra) or after it ended."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def early_signal(signum: int, frame) -> None:
    """Until the run takes over: a signal ends the process with one line, not a traceback or a silent death."""
    raise EarlySignal(signum)


def stopped_outside_a_run(kind, error, tb) -> None:
    """sys.excepthook: an EarlySignal (raised anywhere, imports included) is one line and 128 + signal."""
    if not isinstance(error, EarlySignal):
        sys.__excepthook__(kind, error, tb)
        return
    print(f"stopped by {signal.Signals(error.signum).name} outside a run (start-up or exit): no MLflow run was "
          "left unfinished by it; rerun the same command", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + error.signum)


if __name__ == "__main__":  # from the first import on, until a run takes over: one line, never a traceback
    sys.excepthook = stopped_outside_a_run
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, early_signal)

from acai.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow(filter_stderr=__name__ == "__main__")  # before TensorFlow is imported

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from acai.config import register  # noqa: E402
from acai.errors import AcaiError, Interrupted  # noqa: E402
from acai.training.command_line import check_keys, check_launcher, refused_with_resume  # noqa: E402

register()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Train; return `tracking.objective` of the run when set (what an Optuna sweeper minimises)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from acai.errors import ConfigError
    from acai.tracking.mlflow_run import run_metric
    from acai.tracking.sweep import sweep_tag
    from acai.training.run import train

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN and cfg.tracking.sweep is None:
        cfg.tracking.sweep = sweep_tag(hydra_cfg.sweep.dir)  # every job of a -m sweep carries its sweep's tag
    try:
        if "optuna" in str(hydra_cfg.sweeper.get("_target_", "")).lower() and not cfg.tracking.objective:
            raise ConfigError("tracking.objective", None, "an Optuna sweep needs the logged metric to optimise, "
                              "e.g. tracking.objective=summary/mean_distance")
        if cfg.resume:
            if why := refused_with_resume(list(hydra_cfg.overrides.task)):
                raise ConfigError("resume", cfg.resume, why)
        run_id = train(cfg)
        return run_metric(run_id, cfg.tracking.objective) if cfg.tracking.objective else None
    except Interrupted as e:  # Ctrl-C / SIGTERM: one line on how to resume, exit status 128 + signal
        print(str(e), file=sys.stderr)
        sys.exit(e.exit_code)
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    check_launcher(sys.argv[1:])
    check_keys(sys.argv[1:])
    main()
