"""The typed schema of a run and the validation that turns a composed Hydra config into objects.

Top-level sections (trainer, evaluation, tracking) are dataclasses stored in Hydra's ConfigStore, so a
misspelt key or a wrong type is refused while composing. The `dataset`, `model` and `regularizer`
groups are polymorphic: each YAML names a `_target_` dataclass, and `build` merges the YAML into that
dataclass -- unknown keys and wrong types fail there, before any training starts.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
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
    """How long and how fast to train. Lengths are in samples, as the paper's kimg."""

    batch_size: int = 64
    total_samples: int = 131072
    eval_every: int = 16384
    lr: float = 1e-4
    adam_epsilon: float = 1e-8
    jit_compile: str = "auto"  # auto: XLA on a GPU, and on a CPU for models faster with it (mlp); or true/false
    precision: str = "float32"  # or mixed_bfloat16: networks compute in bfloat16 (AMX CPUs, GPUs)
    log_every: int = 50
    checkpoint_every: int = 16384
    checkpoint_dir: str = "checkpoints"
    keep_checkpoints: bool = False  # a FINISHED run's checkpoints are pruned (training.checkpoint.prune)
    verbose: int = 1
    strategy: str = "none"  # or mirrored: one run over every visible GPU (training/distribute.py)

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
        (the mlp: 1.4x; the paper's conv step ran 2.4x slower)."""
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
    """The paper's measurements (reference sections 3 and 6) and the logged images."""

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
    cluster_pixels: bool | None = None  # None: on for grayscale data, off for colour (3,072 dims: minutes, GBs)
    grid_pairs: int = 8
    grid_steps: int = 11
    grid_scale: int = 2  # logged grids are enlarged this many times, labels sized to match
    reconstructions: int = 16
    # On the initial plateau: reconstruction error >= (1 - margin) x predicting every test image by the mean one
    plateau_margin: float = 0.1

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
    """Where MLflow writes. Relative paths are taken from the directory the command runs in."""

    uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlruns"
    experiment: str = "acai"
    run_name: str | None = None
    log_model: bool = True
    sweep: str | None = None
    skip_finished: bool = False  # a rerun sweep skips the jobs that already have a finished run
    objective: str | None = None  # a logged metric the job returns to a sweeper (Optuna), e.g. final/smoothness
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


def register() -> None:
    """Store the schema under the name `conf/config.yaml` lists first in its defaults, and the
    `${project_root:}` resolver that anchors the default store, checkpoints and Hydra outputs."""
    ConfigStore.instance().store(name="base_config", node=Config)
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
