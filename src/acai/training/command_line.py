"""What `src/train.py` checks on its command line before Hydra composes the config: a launcher whose
extra is not installed, a misspelt `key=value`, and overrides that `resume=<id>` cannot honour; each is
one line naming the fix instead of Hydra's message or a silently ignored setting."""

from __future__ import annotations

import sys

from acai.config import PROJECT_ROOT

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

    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from omegaconf import DictConfig, OmegaConf

    conf = PROJECT_ROOT / "conf"
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
