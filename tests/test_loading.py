"""Bringing back what a run logged: a missing artifact is "none", a failing store is an error."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, free_port
from mlflow.tracking import MlflowClient

from acai.errors import TrackingError
from acai.tracking.loading import CLASSIFIER_ARTIFACT, load_classifier, run_config

sys.path.insert(0, str(ROOT / "src"))


def test_classifier_is_none_only_when_the_run_logged_none(tmp_path, monkeypatch):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("acai", artifact_location=(tmp_path / "mlruns").as_uri())
    run_id = client.create_run(exp).info.run_id
    assert load_classifier(client, run_id) is None
    with pytest.raises(TrackingError, match=f"run {run_id} has no config.yaml artifact"):
        run_config(client, run_id)

    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = tmp_path / "latent_classifier.keras"
    classifier.save(path)
    client.log_artifact(run_id, str(path), CLASSIFIER_ARTIFACT.rsplit("/", 1)[0])
    loaded = load_classifier(client, run_id)
    for a, b in zip(loaded.weights, classifier.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # A store that cannot be reached is not "this run has no classifier".
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    down = MlflowClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrackingError, match=f"run {run_id}: cannot list its artifacts in http://127.0.0.1"):
        load_classifier(down, run_id)


def logged_run(tmp_path, config: bytes, finished: bool = True) -> tuple[str, str]:
    """A run in a new store under tmp_path whose config.yaml artifact holds `config`: (store URI, run id)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("smoke", artifact_location=(tmp_path / "mlruns").as_uri())
    run_id = client.create_run(exp).info.run_id
    (tmp_path / "upload").mkdir()
    (tmp_path / "upload" / "config.yaml").write_bytes(config)
    client.log_artifact(run_id, str(tmp_path / "upload" / "config.yaml"))
    if finished:
        client.set_terminated(run_id, "FINISHED")
    return uri, run_id


def real_config(compose_cfg, **groups: str) -> str:
    """config.yaml as src/train.py logs it, with `_target_` of the given groups replaced."""
    from omegaconf import OmegaConf

    cfg = compose_cfg("experiment=smoke", "model=mlp")
    for group, target in groups.items():
        cfg[group]["_target_"] = target
    return OmegaConf.to_yaml(cfg, resolve=True)


BROKEN_CONFIGS = [
    ("YAML syntax error", b"dataset: {name: lines\nmodel: [", r"is not a YAML config \(\w+Error: "),
    ("binary content", bytes(range(256)) * 4, r"is not a YAML config"),
    ("a Python object tag", b"dataset: !!python/object/apply:os.system ['echo hi']\n", r"is not a YAML config"),
    ("a list", b"- a\n- b\n", r"is not a run's config: no dataset"),
    ("plain text", b"this is not a config", r"is not a run's config: no dataset"),
    ("YAML without the sections", b"seed: 3\ndataset: lines\n",
     r"is not a run's config: no dataset, model, regularizer, trainer, evaluation, tracking section"),
]


@pytest.mark.parametrize("name,content,pattern", BROKEN_CONFIGS, ids=[c[0] for c in BROKEN_CONFIGS])
def test_a_broken_config_artifact_is_one_line_naming_the_run_and_the_artifact(tmp_path, capsys, name, content,
                                                                               pattern):
    import evaluate

    uri, run_id = logged_run(tmp_path, content)
    assert evaluate.main([run_id, "--tracking-uri", uri]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, errors
    assert f"run {run_id}: its config.yaml artifact " in errors[0]
    assert re.search(pattern, errors[0]), errors[0]


def planted_module(tmp_path, monkeypatch) -> Path:
    """A module on the path that leaves a file behind when imported: (the file it would write)."""
    marker = tmp_path / "imported"
    (tmp_path / "planted.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Thing: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return marker


def test_tools_refuse_a_foreign_target_in_a_run_config_without_importing_it(tmp_path, compose_cfg, capsys,
                                                                            monkeypatch):
    import evaluate

    marker = planted_module(tmp_path, monkeypatch)
    uri, run_id = logged_run(tmp_path, real_config(compose_cfg, dataset="planted.Thing").encode())
    assert evaluate.main([run_id, "--tracking-uri", uri]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: run {run_id}: its config.yaml artifact names dataset._target_='planted.Thing', not a "
                      "class of this project (acai.*); classes outside it are not loaded from a run's artifacts "
                      "(nothing was imported)"]
    assert not marker.exists()


def test_resume_refuses_a_foreign_target_in_the_logged_config_without_importing_it(tmp_path, compose_cfg,
                                                                                   monkeypatch):
    from acai.training.run import train

    marker = planted_module(tmp_path, monkeypatch)
    _, run_id = logged_run(tmp_path, real_config(compose_cfg, regularizer="planted.Thing").encode(), finished=False)
    with pytest.raises(TrackingError, match=r"names regularizer._target_='planted.Thing', not a class of this project"):
        train(compose_cfg(f"resume={run_id}"))
    assert not marker.exists()


def test_a_config_artifact_of_the_project_still_loads(tmp_path, compose_cfg):
    uri, run_id = logged_run(tmp_path, real_config(compose_cfg).encode())
    assert run_config(MlflowClient(uri), run_id).model._target_ == "acai.networks.mlp.MlpArchitecture"
