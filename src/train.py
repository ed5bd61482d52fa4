"""Train an autoencoder: `python src/train.py [group=option ...] [key=value ...]` (Hydra)."""

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
    # before TensorFlow is imported: its start-up chatter goes to fd 2 at import
    from acai.console import quiet_native_logs

    quiet_native_logs()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from acai.config import register  # noqa: E402
from acai.errors import AcaiError, Interrupted  # noqa: E402

register()

# Launchers that come with an extra: named on the command line without it, Hydra would only say it
# cannot find the config.
EXTRA_LAUNCHERS = {"slurm": "cluster", "submitit_slurm": "cluster", "submitit_local": "cluster"}


def check_launcher(argv: list[str]) -> None:
    """One line naming the extra when `hydra/launcher=<name>` needs a plugin that is not installed."""
    import importlib

    for arg in argv:
        name = arg.split("=", 1)[1] if arg.startswith("hydra/launcher=") else None
        if name in EXTRA_LAUNCHERS:
            try:
                importlib.import_module("hydra_plugins.hydra_submitit_launcher")
            except ImportError:
                print(f"error: hydra/launcher={name} needs hydra-submitit-launcher, which is not installed: "
                      f"pip install -e '.[{EXTRA_LAUNCHERS[name]}]'", file=sys.stderr)
                sys.exit(2)


def check_keys(argv: list[str]) -> None:
    """A misspelt `key=value` (no `+`): one line with the nearest valid key, as the `+key` form gets, instead
    of Hydra's 'Could not override' block. Keys are looked up in the config composed with the group choices
    given; anything this cannot judge (a sweep of groups, a syntax error) is left to Hydra."""
    import difflib
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from omegaconf import DictConfig, OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf"
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if "=" in a and not a.startswith("-")])
    except Exception:  # noqa: BLE001 - Hydra reports its own syntax errors
        return
    plain = [o for o in overrides if o.type == OverrideType.CHANGE and o.package is None
             and not o.key_or_group.startswith("hydra")]
    groups = [o for o in plain if "." not in o.key_or_group and (conf / o.key_or_group).is_dir()]
    keys = [o for o in plain if o not in groups]
    if not keys or any(o.is_sweep_override() for o in groups):
        return
    try:
        with initialize_config_dir(str(conf), version_base="1.3"):
            cfg = compose("config", overrides=[o.input_line for o in groups])
    except Exception:  # noqa: BLE001 - an unknown group option: Hydra names it
        return
    for o in keys:
        parent, _, name = o.key_or_group.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or name in node.keys():
            continue
        known = [str(k) for k in node.keys() if not str(k).startswith("_")]
        close = difflib.get_close_matches(name, known, n=1)
        where = parent or "the config"
        prefix = f"{parent}." if parent else ""
        hint = f"did you mean {prefix}{close[0]}?" if close else f"its keys: {', '.join(known)}"
        value = o.input_line.split("=", 1)[1] if o.is_sweep_override() else o.value()
        print(f"error: {o.key_or_group}={value!r} is not valid: {where} has no key {name!r}; {hint}", file=sys.stderr)
        sys.exit(2)


# What may accompany `resume=<id>`: how talkative to be, and the store that holds the run (the run goes on
# in that store, under the fingerprint it began with). Anything else would be silently ignored (the run
# continues with the config it logged), so it is refused instead, naming each one.
WITH_RESUME = ("resume", "trainer.verbose", "tracking.uri")
# Refused with resume for a reason of their own: the run's artifacts stay where the run began.
RUN_OWNS = {"tracking.artifact_location": "a run keeps the artifact folder it began with"}


def refused_with_resume(overrides: list[str]) -> str | None:
    """Why the overrides given with `resume=<id>` cannot be honoured, naming each one (None: all can)."""
    ignored = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in WITH_RESUME]
    if not ignored:
        return None
    reasons = "; ".join(f"{o.split('=', 1)[0].lstrip('+~')}: {RUN_OWNS[o.split('=', 1)[0].lstrip('+~')]}"
                        for o in ignored if o.split("=", 1)[0].lstrip("+~") in RUN_OWNS)
    return (f"continues that run with the config it logged, so {' '.join(ignored)} would be ignored: drop "
            f"{'it' if len(ignored) == 1 else 'them'}{f' ({reasons})' if reasons else ''} (allowed with resume: "
            f"{', '.join(WITH_RESUME[1:])})")


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
