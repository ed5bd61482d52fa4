"""What a run is made of, validated, and the one function that builds its model.

`RunSpec.from_config` checks every section and builds the config objects before anything heavy happens
(data, networks), so bad input fails first. Runs, `src/evaluate.py`'s checks, the docs' tests and the
benchmarks all go through it, and through `build_model`, so they measure what a run trains.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from acai.config import PROJECT_ROOT, EvaluationConfig, TrackingConfig, TrainerConfig, build, register, section
from acai.data.base import Dataset
from acai.errors import ConfigError
from acai.evaluation.metrics import from_paths
from acai.networks.base import Architecture
from acai.regularizers.base import Regularizer


@dataclass(frozen=True)
class RunSpec:
    """A composed config and the typed objects it names: everything a run is made of except its store."""

    config: DictConfig
    trainer: TrainerConfig
    evaluation: EvaluationConfig
    tracking: TrackingConfig
    dataset: Dataset
    arch: Architecture
    regularizer: Regularizer

    @property
    def seed(self) -> int:
        return int(self.config.seed)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> RunSpec:
        """Validate every section and build the objects; fails here, before any training, on bad input."""
        trainer = section(cfg.trainer, TrainerConfig, "trainer")
        evaluation = section(cfg.evaluation, EvaluationConfig, "evaluation")
        tracking = section(cfg.tracking, TrackingConfig, "tracking")
        dataset = build(cfg.dataset, "dataset", Dataset)
        arch = build(cfg.model, "model", Architecture)
        regularizer = build(cfg.regularizer, "regularizer", Regularizer)
        if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2**32:
            raise ConfigError("seed", cfg.seed, "must be an integer in 0 .. 2^32 - 1")
        arch.latent_shape((0, 0, 1))  # a latent size that does not fit fails here, before any data is loaded
        from_paths(evaluation.metrics)  # a metric that cannot be imported, likewise
        return cls(cfg, trainer, evaluation, tracking, dataset, arch, regularizer)

    @classmethod
    def compose(cls, overrides: list[str]) -> RunSpec:
        """The spec `python src/train.py <overrides>` would run (Hydra's compose API, this clone's conf/)."""
        from hydra import compose, initialize_config_dir

        register()
        with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
            return cls.from_config(compose("config", overrides=list(overrides)))


def config_key(cfg: DictConfig) -> str:
    """A fingerprint of everything that shapes training: the same command gives the same key.

    Leaves out what only labels or steers the run: the sweep a job belongs to (a rerun `-m` sweep gets a
    new, time-stamped folder, yet its jobs must find the runs a crash interrupted), verbosity, resume.
    """
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("resume", None)
    for label in ("verbose", "keep_checkpoints"):
        data["trainer"].pop(label, None)
    for label in ("sweep", "skip_finished", "objective", "system_metrics", "system_metrics_interval"):
        data["tracking"].pop(label, None)
    if not data["evaluation"].get("metrics"):  # added later: the fingerprints of configs without it stay
        data["evaluation"].pop("metrics", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_model(spec: RunSpec, image_shape: tuple[int, int, int], *, regularizer: Regularizer | None = None,
                jit_compile: bool | None = None):
    """The compiled autoencoder of a run (inside the caller's strategy scope, if any). `regularizer` replaces
    the spec's (a regularizer holds its model's adversary: two models need two); `jit_compile` replaces
    what `trainer.jit_compile` decides."""
    from acai.training.autoencoder import Autoencoder

    trainer = spec.trainer
    model = Autoencoder(spec.arch, regularizer or spec.regularizer, image_shape, spec.dataset.num_classes,
                        lr=trainer.lr, epsilon=trainer.adam_epsilon, seed=spec.seed, precision=trainer.precision)
    model.compile(jit_compile=trainer.use_xla(spec.arch.xla_on_cpu) if jit_compile is None else jit_compile)
    return model
