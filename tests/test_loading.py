"""Bringing back what a run logged: a missing artifact is "none", a failing store is an error."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import free_port
from mlflow.tracking import MlflowClient

from acai.errors import TrackingError
from acai.tracking.loading import CLASSIFIER_ARTIFACT, load_classifier, run_config


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
