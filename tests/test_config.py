"""Composition of every group option, and the errors a user's typo or bad value gets."""

import dataclasses
import itertools

import pytest
from conftest import CONF, DATASETS, MODELS, ROOT
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import OmegaConf

from acai.config import EvaluationConfig, TrackingConfig, TrainerConfig, build, schema_defaults
from acai.data.base import Dataset
from acai.errors import ConfigError
from acai.networks.base import Architecture
from acai.regularizers.base import Regularizer
from acai.training.spec import RunSpec

REGULARIZERS = sorted(p.stem for p in (CONF / "regularizer").glob("*.yaml"))


@pytest.mark.parametrize("dataset,model,regularizer", itertools.product(DATASETS, MODELS, REGULARIZERS))
def test_every_combination_composes_and_builds(compose_cfg, dataset, model, regularizer):
    cfg = compose_cfg(f"dataset={dataset}", f"model={model}", f"regularizer={regularizer}", "experiment=smoke")
    spec = RunSpec.from_config(cfg)
    ds, arch, reg = spec.dataset, spec.arch, spec.regularizer
    assert ds.name == dataset and arch.name == model and reg.name == regularizer
    assert arch.latent_dim == ds.latent_dim


def test_default_is_acai_conv_on_lines_with_the_paper_settings(compose_cfg):
    cfg = compose_cfg()
    spec = RunSpec.from_config(cfg)
    trainer, ds, arch, reg = spec.trainer, spec.dataset, spec.arch, spec.regularizer
    assert (ds.name, arch.name, reg.name) == ("lines", "conv", "acai")
    assert (reg.advweight, reg.reg, trainer.lr, trainer.adam_epsilon, trainer.batch_size) == (0.5, 0.2, 1e-4, 1e-8, 64)
    assert arch.latent_shape((32, 32, 1)) == (2, 2, 16)


def test_overrides_reach_the_objects(compose_cfg):
    cfg = compose_cfg("model.latent_dim=16", "trainer.batch_size=32", "trainer.total_samples=1024",
                      "trainer.eval_every=512", "seed=3", "tracking.experiment=other")
    spec = RunSpec.from_config(cfg)
    trainer, tracking, arch = spec.trainer, spec.tracking, spec.arch
    assert (arch.latent_dim, trainer.batch_size, trainer.total_samples, cfg.seed) == (16, 32, 1024, 3)
    assert tracking.experiment == "other"


@pytest.mark.parametrize("override,error", [
    ("trainer.batchsize=3", ConfigCompositionException),
    ("trainer.batch_size=abc", ConfigCompositionException),
    ("regularizer=nonesuch", ConfigCompositionException),
    ("dataset=cifar", ConfigCompositionException),
])
def test_typos_fail_while_composing(compose_cfg, override, error):
    with pytest.raises(error):
        compose_cfg(override)


@pytest.mark.parametrize("override,match", [
    ("+regularizer.lamda=1", r"regularizer.lamda"),
    ("regularizer.advweight=heavy", r"regularizer.advweight"),
    ("+model.widht=3", r"model.widht"),
    ("trainer.batch_size=1", r"trainer.batch_size=1 .*need two"),
    ("trainer.lr=0", r"trainer.lr=0.0 .*> 0"),
    ("trainer.total_samples=-5", r"trainer.total_samples"),
    ("evaluation.metrics=[no_such_package.METRIC]", r"evaluation.metrics='no_such_package.METRIC' .*module.NAME"),
    ("evaluation.metrics=[os.path]", r"evaluation.metrics='os.path' .*names a module, not an acai"),
])
def test_bad_values_fail_before_training_with_the_setting_named(compose_cfg, override, match):
    with pytest.raises(ConfigError, match=match):
        RunSpec.from_config(compose_cfg(override))


def test_unknown_target_is_refused(compose_cfg):
    cfg = compose_cfg("regularizer._target_=os.system")
    with pytest.raises(ConfigError, match="regularizer._target_"):
        build(cfg.regularizer, "regularizer", Regularizer)
    with pytest.raises(ConfigError, match="dataset._target_"):
        build(cfg.model, "dataset", Dataset)
    assert isinstance(build(cfg.model, "model", Architecture), Architecture)


def test_training_length_rounds_to_whole_evaluations():
    t = TrainerConfig(batch_size=64, total_samples=65536, eval_every=16384)
    assert (t.steps_per_eval, t.evaluations, t.total_steps) == (256, 4, 1024)


def test_default_store_checkpoints_and_outputs_are_in_the_repository_root_from_any_folder(tmp_path, monkeypatch):
    """Running from src/ (or anywhere) must not start a second store that `mlflow ui` at the root misses."""
    from hydra import compose, initialize_config_dir

    from acai.config import DEFAULT_TRACKING_URI, PROJECT_ROOT

    assert PROJECT_ROOT == ROOT
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACAI_HYDRA_DIR")  # what the tests set to keep Hydra's folders out of the repository
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
        smoke = compose("config", overrides=["experiment=smoke"])
    assert cfg.tracking.uri == f"sqlite:///{ROOT}/mlflow.db" == DEFAULT_TRACKING_URI
    assert cfg.tracking.artifact_location == f"{ROOT}/mlruns"
    assert cfg.trainer.checkpoint_dir == f"{ROOT}/checkpoints"
    assert cfg.hydra.run.dir.startswith(f"{ROOT}/outputs/") and cfg.hydra.sweep.dir.startswith(f"{ROOT}/multirun/")
    assert cfg.tracking.experiment == "acai" and smoke.tracking.experiment == "smoke"
    monkeypatch.setenv("ACAI_HYDRA_DIR", str(tmp_path / "hydra"))
    with initialize_config_dir(str(CONF), version_base="1.3"):
        moved = compose("config", return_hydra_config=True)
    assert moved.hydra.run.dir.startswith(f"{tmp_path}/hydra/outputs/")


SECTIONS = {"trainer": TrainerConfig, "evaluation": EvaluationConfig, "tracking": TrackingConfig}
GROUP_BASES = {"dataset": Dataset, "model": Architecture, "regularizer": Regularizer}


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("path", sorted(p.relative_to(CONF).as_posix() for group in GROUP_BASES
                                        for p in (CONF / group).glob("*.yaml")))
def test_a_group_option_states_only_its_target_and_what_differs_from_its_class(path):
    """One source of defaults: an option's YAML names its class and only the settings where it differs."""
    group = path.split("/")[0]
    node = OmegaConf.to_container(OmegaConf.load(CONF / path))
    cls = get_class(node["_target_"])
    assert dataclasses.is_dataclass(cls) and issubclass(cls, GROUP_BASES[group])
    defaults = OmegaConf.to_container(OmegaConf.structured(cls))
    unknown = sorted(set(node) - _field_names(cls))
    assert not unknown, f"conf/{path} names keys {cls.__name__} lacks: {unknown}"
    restated = sorted(k for k, v in node.items() if k != "_target_" and v == defaults[k])
    assert not restated, f"conf/{path} restates {cls.__name__}'s defaults (drop them): {restated}"


def test_conf_has_no_yaml_for_the_sections_whose_defaults_are_dataclasses():
    assert not [p for name in SECTIONS for p in (CONF / name).glob("*.yaml")]
    assert not any(name in str(entry) for entry in OmegaConf.load(CONF / "config.yaml").defaults for name in SECTIONS)


def test_the_composed_sections_are_their_dataclass_defaults():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config")
    for name, cls in SECTIONS.items():
        assert OmegaConf.to_container(cfg[name], resolve=True) == dataclasses.asdict(cls()), name


@pytest.mark.parametrize("dataset,model,regularizer", [("lines", "conv", "acai"), ("cifar10", "conv", "dropout"),
                                                       ("celeba", "mlp", "vqvae"), ("fashion_mnist", "mlp", "aae")])
def test_an_option_composes_over_its_class_defaults(dataset, model, regularizer):
    """The composed group node is the class's defaults (less those it keeps unlisted) under the option's YAML."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"dataset={dataset}", f"model={model}", f"regularizer={regularizer}"])
    for group, option in (("dataset", dataset), ("model", model), ("regularizer", regularizer)):
        yaml = OmegaConf.load(CONF / group / f"{option}.yaml")
        expected = OmegaConf.merge(schema_defaults(get_class(yaml._target_)), yaml)
        assert OmegaConf.to_container(cfg[group]) == OmegaConf.to_container(expected)


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_an_experiment_preset_only_overrides(preset):
    """Every setting a preset gives exists and differs from what its group choices compose without it."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{preset}.yaml"))
    choices = [f"{next(iter(d)).split()[-1].strip('/')}={d[next(iter(d))]}"
               for d in raw.pop("defaults", []) if isinstance(d, dict)]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        base = compose("config", overrides=choices)
    assert raw, f"experiment/{preset} sets nothing"
    for section, values in raw.items():
        cls = SECTIONS.get(section) or get_class(base[section]._target_)
        defaults = OmegaConf.to_container(OmegaConf.structured(cls))
        composed = OmegaConf.to_container(base[section])
        for key, value in values.items():
            assert key in defaults, f"experiment/{preset}: {section}.{key} is not a setting of {cls.__name__}"
            assert value != composed.get(key, defaults[key]), f"experiment/{preset} restates {section}.{key}={value!r}"


def test_a_config_without_extra_metrics_keeps_its_fingerprint_and_one_with_them_gets_its_own(compose_cfg):
    """`evaluation.metrics` came after runs were fingerprinted: left empty, the key is that of a config that
    lacks the setting (so those runs still resume); naming a metric makes it another configuration."""
    from omegaconf import OmegaConf

    from acai.training.spec import config_key

    cfg = compose_cfg("experiment=smoke")
    older = OmegaConf.to_container(cfg)
    del older["evaluation"]["metrics"]
    assert config_key(cfg) == config_key(OmegaConf.create(older))
    assert config_key(compose_cfg("experiment=smoke", "evaluation.metrics=[acai.evaluation.metrics.METRICS]")) \
        != config_key(cfg)
