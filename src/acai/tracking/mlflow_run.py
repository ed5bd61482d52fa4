"""The MLflow store and run: where runs go, what they are called, what is recorded at the start and end."""

from __future__ import annotations

import importlib
import os
import posixpath
import re
import sqlite3
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_EXPERIMENT_NAME_LENGTH
from omegaconf import DictConfig, OmegaConf

from acai.config import TrackingConfig
from acai.errors import ConfigError, TrackingError, first_line
from acai.locks import store_lock

LOCAL_SCHEMES = ("sqlite:///",)
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
MLFLOW_NAGS = re.compile("Add type hints to the `predict` method|An input example was not provided")
# What MLflow versions that read it take for the experiment's kind (training, not GenAI); 3.17's UI opens
# the view from its own setting instead, which the run header's `?workflowType=machine_learning` link sets
EXPERIMENT_KIND = "mlflow.experimentKind"
INTERPOLATOR_CODE = Path(__file__).resolve().parents[1] / "serving" / "interpolator.py"
CRITIC_ARTIFACT = "critic/critic.keras"
# MLflow's SQL schema keeps a run name in runs.name, String(250), the length of its entity keys: SQLite
# stores a longer one, PostgreSQL refuses it mid-start. Checked up front, the same for every store.
MAX_RUN_NAME_LENGTH = MAX_ENTITY_KEY_LENGTH
SQLITE_HEADER = b"SQLite format 3\x00"


@contextmanager
def quiet_download() -> Iterator[None]:
    """No MLflow progress bar while fetching a config or a model of a few MB: it would only put noise on
    stderr ahead of the tools' one-line errors. Scoped to the download, so the rest of the process (a
    training run's uploads) keeps MLflow's default; a user who set the variable keeps their choice."""
    if PROGRESS_BAR in os.environ:
        yield
        return
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        os.environ.pop(PROGRESS_BAR, None)


def resolve_uri(uri: str) -> str:
    """Make a relative SQLite path absolute, so runs from any directory and Hydra job land in one store."""
    for scheme in LOCAL_SCHEMES:
        if uri.startswith(scheme):
            path = uri[len(scheme):]
            if path and not path.startswith("/") and path != ":memory:":
                return scheme + str(Path(path).resolve())
    return uri


def is_remote(uri: str) -> bool:
    """An MLflow tracking server (it stores the artifacts itself), as opposed to a database the client opens."""
    return uri.startswith(("http://", "https://"))


def _local_path(uri: str) -> Path | None:
    for scheme in LOCAL_SCHEMES:
        if uri.startswith(scheme):
            return Path(uri[len(scheme):])
    return None


def _shown(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width] + "..."


def check_names(cfg: TrackingConfig) -> None:
    """Names longer than MLflow's store columns: one line before anything is started, whatever the store."""
    for setting, name, limit in (("tracking.run_name", cfg.run_name, MAX_RUN_NAME_LENGTH),
                                 ("tracking.experiment", cfg.experiment, MAX_EXPERIMENT_NAME_LENGTH)):
        if name is not None and len(str(name)) > limit:
            raise ConfigError(setting, _shown(str(name)), f"is {len(str(name))} characters; MLflow stores at most "
                              f"{limit} (PostgreSQL refuses a longer one, SQLite would keep it): shorten it")


def check_sqlite_file(db: Path | None, setting: str, uri: str) -> None:
    """A store path that is a folder or not an SQLite database: MLflow would retry it for minutes."""
    if db is None or str(db) == ":memory:":
        return
    if db.is_dir():
        raise TrackingError(f"{setting}={uri!r}: {db} is a folder; give the path of the database file in it, "
                            f"e.g. sqlite:///{db / 'mlflow.db'}")
    try:
        with db.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as e:
        raise TrackingError(f"{setting}={uri!r}: {db} cannot be read ({e.strerror})") from None
    if head and head != SQLITE_HEADER[:len(head)]:
        raise TrackingError(f"{setting}={uri!r}: {db} is not an SQLite database; give an MLflow store's file or a "
                            "new file name")


def check_driver(uri: str, setting: str) -> None:
    """A database URI needs its Python driver, which the `server` extra installs: one line, not SQLAlchemy's."""
    scheme = uri.split("://", 1)[0].lower()
    if not scheme.startswith("postgresql"):
        return
    module, install = (("psycopg2", "pip install psycopg2-binary") if "psycopg2" in scheme
                       else ("psycopg", "pip install -e '.[server]'"))
    try:
        importlib.import_module(module)
    except ImportError:
        raise TrackingError(f"{setting}={uri!r} needs the PostgreSQL driver {module}, which is not installed: "
                            f"{install}") from None


def check_server(uri: str, setting: str, timeout: float = 10.0) -> None:
    """Fail in seconds on an MLflow server that does not answer: MLflow's own client retries with
    back-off for minutes before it gives up."""
    if not is_remote(uri):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answers (a proxy or an auth wall): let MLflow speak for it
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(f"{setting}={uri!r}: the MLflow server does not answer ({reason}); start it "
                            "(`mlflow server`) or use a local store, e.g. sqlite:///mlflow.db") from None


def repair_interrupted_migration(db: Path) -> None:
    """An SQLite store whose schema migration was cut off keeps alembic's `_alembic_tmp_<table>` copies,
    and every later migration fails on them ("table _alembic_tmp_experiments already exists"). A copy
    whose original table is still there is a leftover: drop it. A copy without its original holds the
    only data of that table: report the exact fix, never guess."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        con = sqlite3.connect(db)
    except sqlite3.Error:
        return  # not ours to judge: MLflow reports an unreadable store itself
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for tmp in sorted(t for t in tables if t.startswith("_alembic_tmp_")):
            original = tmp.removeprefix("_alembic_tmp_")
            if original not in tables:
                raise TrackingError(
                    f"the MLflow store {db} was left half-migrated: table {original} exists only as {tmp}. Fix: "
                    f"sqlite3 {db} 'ALTER TABLE {tmp} RENAME TO {original}', then rerun")
            con.execute(f'DROP TABLE "{tmp}"')
            print(f"Repaired the MLflow store {db}: dropped {tmp}, left by an interrupted schema migration")
        con.commit()
    except sqlite3.Error as e:
        raise TrackingError(f"the MLflow store {db} cannot be checked ({e})") from None
    finally:
        con.close()


@contextmanager
def first_use(db: Path | None) -> Iterator[None]:
    """Creating or migrating an SQLite store is not safe from two processes at once (`duplicate column
    name`, a half-migrated store): processes that open one store take turns, through `<db>.lock`."""
    if db is None or str(db) == ":memory:":
        yield
        return
    with store_lock(db.with_name(db.name + ".lock")):
        repair_interrupted_migration(db)
        yield


def open_experiment(cfg: TrackingConfig) -> str:
    """Point MLflow at the store and return the experiment id, creating it with its artifact root."""
    check_names(cfg)
    uri = resolve_uri(cfg.uri)
    db = _local_path(uri)
    if db is not None and not (db.parent.is_dir() and os.access(db.parent, os.W_OK)):
        raise TrackingError(f"tracking.uri={cfg.uri!r}: the folder {db.parent} does not exist or is not writable")
    check_sqlite_file(db, "tracking.uri", cfg.uri)
    check_driver(uri, "tracking.uri")
    check_server(uri, "tracking.uri")
    with first_use(db):
        return _open_experiment(cfg, uri)


def artifact_root(cfg: TrackingConfig, uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: `tracking.artifact_location` (created) for a database the
    client opens; None on a server, which then keeps them in its own store (a `file://` location would
    leave every artifact on the client's disk)."""
    if is_remote(uri):
        return None
    artifacts = Path(cfg.artifact_location).expanduser().resolve()
    try:
        artifacts.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrackingError(f"tracking.artifact_location={cfg.artifact_location!r}: {e}") from None
    return artifacts.as_uri()


def _open_experiment(cfg: TrackingConfig, uri: str) -> str:
    try:
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            try:
                return client.create_experiment(cfg.experiment, artifact_location=artifact_root(cfg, uri),
                                                tags={EXPERIMENT_KIND: "custom_model_development"})
            except MlflowException:  # created by a parallel job meanwhile
                experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(f"tracking.experiment={cfg.experiment!r} is deleted in {uri}; restore or rename it")
        return experiment.experiment_id
    except TrackingError:
        raise
    except Exception as e:  # noqa: BLE001 - any store failure is reported the same way
        raise TrackingError(f"tracking.uri={cfg.uri!r}: cannot reach or write the MLflow store ({e})") from None


def open_existing_store(tracking_uri: str) -> MlflowClient:
    """A client on an existing store, for the tools that read runs: never creates an empty SQLite file
    (a typo or the wrong folder), and any failure to open it is one clear line."""
    uri = resolve_uri(tracking_uri)
    check_driver(uri, "--tracking-uri")
    check_server(uri, "--tracking-uri")
    db = _local_path(uri)
    check_sqlite_file(db, "--tracking-uri", tracking_uri)
    if db is not None and str(db) != ":memory:" and not db.is_file():
        raise TrackingError(f"--tracking-uri={tracking_uri!r}: there is no MLflow store at {db}; run from the "
                            "folder holding mlflow.db or give its path, e.g. --tracking-uri sqlite:///mlflow.db")
    try:
        mlflow.set_tracking_uri(uri)
        return MlflowClient(uri)
    except Exception as e:  # noqa: BLE001 - unsupported scheme, unreachable server, ...
        raise TrackingError(f"--tracking-uri={tracking_uri!r}: cannot open the MLflow store "
                            f"({type(e).__name__}: {first_line(e)})") from None


def run_metric(run_id: str, name: str) -> float:
    """The latest value of a run's metric, for a sweeper that optimises it (`tracking.objective`)."""
    metrics = MlflowClient().get_run(run_id).data.metrics
    if name not in metrics:
        summaries = sorted(k for k in metrics if k.startswith(("final/", "summary/")))
        raise ConfigError("tracking.objective", name, f"a metric this run logged, e.g. {', '.join(summaries)}")
    return float(metrics[name])


def run_name(cfg: DictConfig) -> str:
    """`<regularizer>-<dataset>-<model>-z<latent>-s<seed>`: what ran, at a glance in the UI."""
    return (f"{cfg.regularizer.name}-{cfg.dataset.name}-{cfg.model.name}"
            f"-z{cfg.model.latent_dim}-s{cfg.seed}")


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> {'trainer.batch_size': '64', ...} for MLflow params."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(tree)}


def log_config(cfg: DictConfig) -> None:
    """The fully resolved config: flattened as params and whole as `config.yaml`."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = flatten(resolved)
    items = list(params.items())
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start:start + 100]))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")


def log_classifier(classifier) -> None:
    """The latent classifier as a plain .keras file (fast; `src/evaluate.py` reloads it)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "latent_classifier.keras"
        classifier.save(path)
        mlflow.log_artifact(str(path), "latent_classifier")


def log_critic(regularizer) -> None:
    """The adversary as `critic/critic.keras` when it judges decoded images (ACAI's critic, whose
    `judge_interpolations` scores frames), so `src/explore.py` can show its estimate of α along a path.
    Its head is the registered `acai>MeanOverFeatures`: load it with safe_mode after importing
    `acai.networks.layers` (`acai.tracking.loading.register_custom_layers`)."""
    critic = getattr(regularizer, "adversary", None)
    if critic is None:
        return
    probe = np.zeros((1, *critic.input_shape[1:]), np.float32)
    if regularizer.judge_interpolations(probe) is None:  # an adversary on latents (AAE) judges no images
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / posixpath.basename(CRITIC_ARTIFACT)
        critic.save(path)
        mlflow.log_artifact(str(path), posixpath.dirname(CRITIC_ARTIFACT))


def requirements() -> list[str]:
    """Pinned requirements of a logged model (faster than letting MLflow infer them)."""
    import keras
    import tensorflow as tf

    return [f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}", f"mlflow=={mlflow.__version__}"]


def log_keras_model(model, name: str = "model") -> None:
    """The autoencoder as MLflow's Keras flavour, with its input and output signature."""
    from mlflow.models import infer_signature

    example = np.zeros((1, *model.input_shape[1:]), np.float32)
    mlflow.keras.log_model(model, name=name, pip_requirements=requirements(),
                           signature=infer_signature(example, example))


def log_interpolator(model, name: str = "interpolator") -> None:
    """The pyfunc interpolator (`acai/serving/interpolator.py`, logged as code) around this autoencoder."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    shape = tuple(model.input_shape[1:])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *shape), "a"),
                       TensorSpec(np.dtype(np.float32), (-1, *shape), "b")]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, *shape))]),
        params=ParamSchema([ParamSpec("steps", "long", 11)]))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught, quiet_download():
        path = Path(tmp) / "autoencoder.keras"
        model.save(path)
        mlflow.pyfunc.log_model(name=name, python_model=str(INTERPOLATOR_CODE), artifacts={"autoencoder": str(path)},
                                signature=signature, pip_requirements=requirements())
    for w in caught:  # the explicit signature stands in for the type hints and input example MLflow asks for
        if not MLFLOW_NAGS.search(str(w.message)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


