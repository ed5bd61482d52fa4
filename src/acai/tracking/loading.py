"""Bring back what a run logged: its config, its autoencoder and its latent classifier."""

from __future__ import annotations

import importlib
import pkgutil
import posixpath
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import keras
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from acai.config import PROJECT_ROOT
from acai.errors import TrackingError, first_line
from acai.locks import run_state
from acai.tracking.mlflow_run import quiet_download

CLASSIFIER_ARTIFACT = "latent_classifier/latent_classifier.keras"
CONFIG_ARTIFACT = "config.yaml"
# What a run's config.yaml must hold: the sections src/train.py logs and the tools and resume read.
CONFIG_SECTIONS = ("dataset", "model", "regularizer", "trainer", "evaluation", "tracking")
GROUPS = ("dataset", "model", "regularizer")


def register_custom_layers() -> None:
    """Import every module that registers Keras objects, so safe-mode loading finds them."""
    import acai.networks.layers  # noqa: F401
    import acai.regularizers as regs

    for info in pkgutil.iter_modules(regs.__path__):
        importlib.import_module(f"{regs.__name__}.{info.name}")


def get_run(client: MlflowClient, run_id: str):
    try:
        return client.get_run(run_id)
    except MlflowException as e:
        raise TrackingError(
            f"run id {run_id!r}: no such MLflow run in {client.tracking_uri} ({e.error_code})") from None
    except Exception as e:  # noqa: BLE001 - a store that cannot be read at all
        raise TrackingError(f"run id {run_id!r}: cannot read {client.tracking_uri} ({type(e).__name__})") from None


def has_artifact(client: MlflowClient, run_id: str, path: str) -> bool:
    """Whether the run logged this artifact file. A store that cannot be listed is an error, not a no."""
    folder = posixpath.dirname(path) or None
    try:
        return any(f.path == path for f in client.list_artifacts(run_id, folder))
    except Exception as e:  # noqa: BLE001 - unreachable server, unreadable artifact store, ...
        raise TrackingError(f"run {run_id}: cannot list its artifacts in {client.tracking_uri} "
                            f"({type(e).__name__}: {e})") from None


def download(client: MlflowClient, run_id: str, path: str, into: str) -> str:
    """Download one artifact that the run has; a failure names the artifact and the cause."""
    try:
        with quiet_download():
            return client.download_artifacts(run_id, path, into)
    except Exception as e:  # noqa: BLE001
        raise TrackingError(f"run {run_id}: cannot download {path} ({type(e).__name__}: {e})") from None


def require_finished(run) -> None:
    """The tools read what a run logs at its end (the model, the classifier): a run that has not
    finished has none, and the user is told how to finish it rather than that something is missing."""
    if run.info.status != "FINISHED":
        raise TrackingError(f"run {run.info.run_id} has not finished ({run_state(run)}); its model is logged when "
                            f"training ends: finish it with `python src/train.py resume={run.info.run_id}`")


def run_config(client: MlflowClient, run_id: str) -> DictConfig:
    """The resolved config the run logged as `config.yaml`."""
    run = get_run(client, run_id)
    uri = run.info.artifact_uri or ""
    folder = Path(unquote(urlparse(uri).path))
    # src/train.py logs the params and config.yaml together: params without the folder means it moved
    if uri.startswith("file://") and run.data.params and not folder.is_dir():
        raise TrackingError(f"run {run_id}: its artifact folder {folder} does not exist (moved or deleted?); "
                            "the store records artifact folders by absolute path")
    if not has_artifact(client, run_id, CONFIG_ARTIFACT):
        raise TrackingError(f"run {run_id} has no config.yaml artifact; was it made by src/train.py?")
    with tempfile.TemporaryDirectory() as tmp:
        return parse_config(Path(download(client, run_id, CONFIG_ARTIFACT, tmp)), run_id)


def parse_config(path: Path, run_id: str) -> DictConfig:
    """A run's logged config, refused in one line naming the run and the artifact when it is not YAML, not a
    run's config, or names a class outside the project (checked before anything it names is imported)."""
    where = f"run {run_id}: its {CONFIG_ARTIFACT} artifact"
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - YAML syntax, binary content, a YAML tag, a top-level list, ...
        first = first_line(e, 200)
        raise TrackingError(f"{where} is not a YAML config ({type(e).__name__}: {first}); it is what "
                            "src/train.py logged: restore it or train the run again") from None
    missing = [k for k in CONFIG_SECTIONS if not isinstance(cfg, DictConfig) or not isinstance(cfg.get(k), DictConfig)]
    if missing:
        raise TrackingError(f"{where} is not a run's config: no {', '.join(missing)} section(s); it is what "
                            "src/train.py logged: restore it or train the run again")
    check_targets(OmegaConf.to_container(cfg, resolve=False), where)
    return cfg


def registered_targets() -> set[str]:
    """The classes the dataset, model and regularizer groups of conf/ name."""
    found = set()
    for group in GROUPS:
        for path in (PROJECT_ROOT / "conf" / group).glob("*.yaml"):
            target = OmegaConf.load(path).get("_target_")
            if isinstance(target, str):
                found.add(target)
    return found


def check_targets(tree: object, where: str, key: str = "") -> None:
    """Only the project's own classes (`acai.*`, or those conf/'s groups register) are imported from a run's
    artifacts: a `_target_` there could otherwise import any module on the path, and run its code."""
    if isinstance(tree, dict):
        for name, value in tree.items():
            full = f"{key}.{name}" if key else str(name)
            if name == "_target_" and not (isinstance(value, str) and (value.startswith("acai.")
                                                                       or value in registered_targets())):
                raise TrackingError(f"{where} names {full}={value!r}, not a class of this project (acai.*); "
                                    "classes outside it are not loaded from a run's artifacts (nothing was imported)")
            check_targets(value, where, full)
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            check_targets(value, where, f"{key}[{i}]")


def load_autoencoder(model_uri: str) -> keras.Model:
    """A logged autoencoder (`runs:/<id>/model` or `models:/...`), with `encode`/`decode` sub-models."""
    register_custom_layers()
    try:
        with quiet_download():
            model = mlflow.keras.load_model(model_uri)
    except Exception as e:  # noqa: BLE001
        raise TrackingError(f"model {model_uri!r} could not be loaded ({type(e).__name__}: {e})") from None
    if not isinstance(model, keras.Model):  # e.g. logged with save_exported_model=True: a bare SavedModel
        raise TrackingError(f"model {model_uri!r} is a {type(model).__name__}, not a Keras model (logged with "
                            "save_exported_model=True?); the tools need the .keras format that src/train.py logs")
    names = {layer.name for layer in model.layers}
    if not {"encode", "decode"} <= names:
        raise TrackingError(f"model {model_uri!r} is not an acai autoencoder (no encode/decode layers)")
    return model


def load_classifier(client: MlflowClient, run_id: str) -> keras.Model | None:
    """The latent classifier trained alongside the autoencoder, or None if the run logged none.

    Only a missing artifact means None; a store that fails is an error, not "no classifier"."""
    if not has_artifact(client, run_id, CLASSIFIER_ARTIFACT):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return keras.saving.load_model(Path(download(client, run_id, CLASSIFIER_ARTIFACT, tmp)), safe_mode=True)
