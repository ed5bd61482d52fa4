"""The typed schema of a run and the validation that turns a composed Hydra config into objects.

Every default is written once, in a dataclass (Hydra's structured-config pattern). Top-level sections
(trainer, evaluation, tracking) are dataclasses stored in Hydra's ConfigStore, so a misspelt key or a
wrong type is refused while composing; conf/ has no YAML for them. The `dataset`, `model` and
`regularizer` groups are polymorphic: each option's YAML names a `_target_` dataclass and states only
where that option differs from it; the dataclass's defaults are composed under it (`register`), and
`build` merges the YAML into that dataclass -- unknown keys and wrong types fail there, before any
training starts.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.config_store import ConfigNode, ConfigStore
from hydra.utils import get_class
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from acai.errors import ConfigError, first_line

T = TypeVar("T")


def _positive(section: str, obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ConfigError(f"{section}.{name}", value, "must be > 0")


# The clone this code runs from (src/acai/config.py -> the folder holding conf/ and src/). Default runs
# go to its mlflow.db, mlruns/ and checkpoints/ whichever folder they start in, so that `mlflow ui` in
# the repository root sees every run; a path given on the command line is taken as given.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
# trainer.precision's choices (acai.networks.precision applies them); float16 would need loss scaling
PRECISIONS = ("float32", "mixed_bfloat16")


@dataclass
class TrainerConfig:
    """How long and how fast to train. Lengths are in samples, as the paper's kimg (the paper: 2^24 total,
    an evaluation every 2^16). The default is a CPU-sized run: 2^17 samples of ACAI on lines, 8 evaluations
    (time measured on a CPU: docs/performance.md), the shortest budget past the conv AE's initial plateau
    (ACAI left it after 80-100k samples in our runs; at 2^16 every line still decodes to the same blob)."""

    batch_size: int = 64
    total_samples: int = 131072
    eval_every: int = 16384
    lr: float = 1e-4
    adam_epsilon: float = 1e-8
    jit_compile: str = "auto"  # auto: XLA on a GPU, and on a CPU for models faster with it (mlp, not conv:
    # docs/performance.md); or true/false
    precision: str = "float32"  # or mixed_bfloat16: networks compute in bfloat16 (AMX CPUs, GPUs); losses float32
    log_every: int = 50
    checkpoint_every: int = 16384  # rounded to whole evaluation intervals
    checkpoint_dir: str = str(PROJECT_ROOT / "checkpoints")  # one sub-folder per config fingerprint
    keep_checkpoints: bool = False  # a FINISHED run's checkpoints are pruned (training.checkpoint.prune)
    verbose: int = 1
    strategy: str = "none"  # or mirrored: one run over every visible GPU (global batch = batch_size, split;
    # XLA off; training/distribute.py)

    def __post_init__(self) -> None:
        _positive("trainer", self, "batch_size", "total_samples", "eval_every", "lr", "adam_epsilon",
                  "log_every", "checkpoint_every")
        if str(self.jit_compile).lower() not in ("auto", "true", "false"):
            raise ConfigError("trainer.jit_compile", self.jit_compile, "must be auto, true or false")
        if self.precision not in PRECISIONS:
            raise ConfigError("trainer.precision", self.precision,
                              "must be float32 or mixed_bfloat16 (float16 would need loss scaling)")
        if self.strategy not in ("none", "mirrored"):
            raise ConfigError("trainer.strategy", self.strategy, "must be none (one device) or mirrored (every "
                              "visible GPU; one run uses one machine: scale out across runs)")
        if self.strategy == "mirrored" and str(self.jit_compile).lower() == "true":
            raise ConfigError("trainer.jit_compile", self.jit_compile,
                              "must be auto or false under trainer.strategy=mirrored (XLA fails there in TF 2.21: "
                              "\"Trying to access resource ... located in device ... from device ...\")")
        if self.batch_size < 2:
            raise ConfigError("trainer.batch_size", self.batch_size, "must be >= 2: interpolation pairs need two")
        if self.eval_every > self.total_samples:
            raise ConfigError("trainer.eval_every", self.eval_every,
                              f"must be <= trainer.total_samples={self.total_samples} (training runs in whole "
                              "evaluation intervals: it would train a whole interval)")

    def budget_note(self) -> str | None:
        """A line when rounding to whole steps and evaluation intervals changes the budget asked for."""
        samples = self.total_steps * self.batch_size
        if samples == self.total_samples and self.steps_per_eval * self.batch_size == self.eval_every:
            return None
        return (f"Training {samples} samples ({self.evaluations} evaluations every {self.steps_per_eval} steps of "
                f"{self.batch_size}): trainer.total_samples={self.total_samples} and trainer.eval_every="
                f"{self.eval_every} rounded to whole steps and evaluation intervals")

    def use_xla(self, xla_on_cpu: bool = False) -> bool:
        """XLA where it helps: always on a GPU; on a CPU only for models that measured faster with it
        (the mlp; the paper's conv step ran slower with it: docs/performance.md)."""
        mode = str(self.jit_compile).lower()
        if self.strategy == "mirrored":
            return False  # XLA fails under MirroredStrategy (TF 2.21); auto turns it off there
        if mode == "auto":
            import tensorflow as tf

            return xla_on_cpu or bool(tf.config.list_physical_devices("GPU"))
        return mode == "true"

    @property
    def steps_per_eval(self) -> int:
        return max(1, round(self.eval_every / self.batch_size))

    @property
    def evaluations(self) -> int:
        return max(1, round(self.total_samples / (self.steps_per_eval * self.batch_size)))

    @property
    def total_steps(self) -> int:
        return self.steps_per_eval * self.evaluations


@dataclass
class EvaluationConfig:
    """The paper's measurements (reference sections 3 and 6) and the logged images. kmeans_restarts: the
    paper used 1000 (slow on a CPU)."""

    interpolation_pairs: int = 256
    interpolation_frames: int = 16
    reference_lines: int = 10000
    median_of_last: int = 20
    cluster: bool = True
    cluster_every_eval: bool = False
    cluster_train_size: int = 60000
    kmeans_restarts: int = 10
    kmeans_max_iter: int = 1000
    kmeans_seed: int = 0  # the reference's random_state=0 for every run, whatever the training seed
    # K-means on raw pixels as a reference column; None: on for grayscale data, off for colour (3,072 dims:
    # gigabytes and minutes, docs/performance.md)
    cluster_pixels: bool | None = None
    grid_pairs: int = 8
    grid_steps: int = 11
    grid_scale: int = 2  # logged grids are enlarged this many times, labels sized to match
    reconstructions: int = 16
    # On the initial plateau (eval/on_plateau): reconstruction error >= (1 - margin) x predicting every test
    # image by the mean one
    plateau_margin: float = 0.1
    # More metrics, from your own package: import paths of `acai.evaluation.metrics.Metric` objects
    # (module.NAME), measured after the built-in ones (docs/extending.md)
    metrics: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.plateau_margin < 1:
            raise ConfigError("evaluation.plateau_margin", self.plateau_margin,
                              "must be in [0, 1): on the plateau means reconstruction error >= (1 - margin) x the "
                              "mean-image error")
        _positive("evaluation", self, "interpolation_pairs", "reference_lines", "median_of_last", "grid_scale",
                  "cluster_train_size", "kmeans_restarts", "kmeans_max_iter", "grid_pairs", "reconstructions")
        if self.kmeans_seed < 0:
            raise ConfigError("evaluation.kmeans_seed", self.kmeans_seed, "must be >= 0 (scikit-learn's random_state)")
        if self.interpolation_frames < 2 or self.grid_steps < 2:
            raise ConfigError("evaluation.interpolation_frames/grid_steps",
                              (self.interpolation_frames, self.grid_steps), "must both be >= 2")


@dataclass
class TrackingConfig:
    """Where MLflow writes: by default a SQLite store and an artifact folder in the repository root,
    whichever folder you run from, so `mlflow ui --backend-store-uri sqlite:///mlflow.db` there shows every
    run. A relative path given on the command line is taken from the directory the command runs in."""

    uri: str = DEFAULT_TRACKING_URI
    artifact_location: str = str(PROJECT_ROOT / "mlruns")
    experiment: str = "acai"
    run_name: str | None = None
    log_model: bool = True
    sweep: str | None = None  # set to the sweep folder for every job of a -m run
    skip_finished: bool = False  # true: a job whose exact config already has a FINISHED run returns it instead
    objective: str | None = None  # a logged metric the job returns to a sweeper (hydra/sweeper=optuna_acai),
    # e.g. summary/mean_distance
    system_metrics: bool = True  # MLflow's own CPU, memory, disk (and GPU) metrics, `system/*`, every interval
    system_metrics_interval: float = 10.0  # seconds between two samples

    def __post_init__(self) -> None:
        if not self.experiment or not self.experiment.strip():
            raise ConfigError("tracking.experiment", self.experiment, "must be a non-empty experiment name")
        if self.system_metrics_interval <= 0:
            raise ConfigError("tracking.system_metrics_interval", self.system_metrics_interval, "must be > 0 seconds")


@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    regularizer: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0
    resume: str | None = None


#: The polymorphic groups: each option's YAML in conf/<group>/ names a `_target_` dataclass.
GROUPS = ("dataset", "model", "regularizer")


def schema_defaults(cls: type) -> dict[str, Any]:
    """The defaults a group option's YAML is composed over: every field of the dataclass `cls` but
    `_target_` (the YAML names it) and those the class lists in `unlisted` (kept out of the composed
    config, and so out of a run's fingerprint, unless an option or the command line sets them)."""
    left_out = {"_target_", *getattr(cls, "unlisted", ())}
    fields = OmegaConf.to_container(OmegaConf.structured(cls))
    return {key: value for key, value in fields.items() if key not in left_out}


class _Schema(ConfigNode):
    """The ConfigStore entry `schema/<group>/<option>`: the defaults of the class `conf/<group>/<option>.yaml`
    names, made when Hydra first composes that option (the classes import TensorFlow; `--help` need not)."""

    def __init__(self, name: str, group: str, target: str) -> None:
        self.name, self.group, self.package, self.provider = name, group, None, "acai"
        self.target = target
        self._node: DictConfig | None = None

    @property  # type: ignore[override]
    def node(self) -> DictConfig:
        if self._node is None:
            try:
                cls = get_class(self.target)
                defaults = schema_defaults(cls) if dataclasses.is_dataclass(cls) else {}
            except Exception:  # noqa: BLE001 - a bad `_target_` is refused by `build`, naming it
                defaults = {}
            self._node = OmegaConf.create({"_target_": self.target, **defaults})  # the YAML's own, first
        return self._node

    @node.setter
    def node(self, value: DictConfig) -> None:
        self._node = value


def register() -> None:
    """Store the schema under the name `conf/config.yaml` lists first in its defaults; for each option of
    the polymorphic groups, its class's defaults as `schema/<group>/<option>` (which `conf/config.yaml`
    composes under the option's YAML); and the `${project_root:}` resolver that anchors Hydra's outputs."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group in GROUPS:
        for path in sorted((PROJECT_ROOT / "conf" / group).glob("*.yaml")):
            target = OmegaConf.load(path).get("_target_")
            if isinstance(target, str):
                store.store(name=path.stem, node={}, group=f"schema/{group}")  # makes the group's folders
                store.repo["schema"][group][path.name] = _Schema(path.name, f"schema/{group}", target)
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))


def _typed(node: DictConfig, cls: type[T], name: str) -> T:
    """Merge a (resolved) config node into the dataclass `cls` and construct it."""
    try:
        resolved = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), resolved))
    except OmegaConfBaseException as e:
        full = getattr(e, "full_key", None) or ""
        key = f"{name}.{full}" if full else name
        value = getattr(e, "value", None)
        message = first_line(e)
        if full and value is None:  # an unknown key: OmegaConf gives no value, the user did
            value = OmegaConf.select(node, full, default=None)
            known = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
            close = difflib.get_close_matches(full.split(".")[-1], known, n=1)
            message = (f"{name} has no key {full!r}"
                       + (f"; did you mean {name}.{close[0]}?" if close else f"; its keys: {', '.join(known)}"))
        raise ConfigError(key, value, message) from None


def build(node: DictConfig, group: str, base: type[T]) -> T:
    """Validate a group's YAML against its `_target_` dataclass and return the object."""
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    try:
        cls = get_class(target) if target else None
    except Exception:  # noqa: BLE001 - hydra raises ImportError or ValueError here
        cls = None
    if cls is None or not dataclasses.is_dataclass(cls) or not issubclass(cls, base):
        raise ConfigError(f"{group}._target_", target, f"must name a dataclass subclass of {base.__qualname__}")
    return _typed(node, cls, group)


def section(node: DictConfig, cls: type[T], name: str) -> T:
    """A typed top-level section (its __post_init__ checks ranges)."""
    return _typed(node, cls, name)
