"""Shared fixtures: Hydra's compose API on the real `conf/`, MLflow stores under tmp_path, tiny datasets."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from acai.config import register  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
FASHION = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("lines", "mnist", "fashion_mnist")
MODELS = ("conv", "mlp")

register()


# Set at import, before any test builds a subprocess environment: results cached between runs (the
# pixel K-means) and Hydra's own output folders go to this session's scratch folder, never to ~/.cache
# or the repository; it is removed at the end.
SCRATCH = Path(tempfile.mkdtemp(prefix="acai-tests-"))
os.environ["ACAI_CACHE_DIR"] = str(SCRATCH / "cache")
os.environ["ACAI_HYDRA_DIR"] = str(SCRATCH / "hydra")


@pytest.fixture(scope="session", autouse=True)
def scratch():
    yield SCRATCH
    shutil.rmtree(SCRATCH, ignore_errors=True)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for servers the tests start, or a closed one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tiny_mnist(path: Path, n_train: int = 256, n_test: int = 128, seed: int = 0) -> Path:
    """A Keras-format .npz of MNIST-shaped data: class k is a bright square at position k."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            r, c = divmod(int(k), 4)
            x[i, 2 + 6 * r: 8 + 6 * r, 2 + 6 * c: 8 + 6 * c] = 255
        return x, y

    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


@pytest.fixture
def tiny_mnist(tmp_path) -> Path:
    return write_tiny_mnist(tmp_path / "mnist.npz")


def dataset_overrides(dataset: str, tiny_mnist: Path | None) -> list[str]:
    """Offline data for each dataset: a tiny written MNIST, real Fashion-MNIST from Debian."""
    if dataset == "mnist":
        return ["dataset=mnist", f"dataset.path={tiny_mnist}"]
    if dataset == "fashion_mnist":
        if not FASHION.exists():
            pytest.skip("Debian package dataset-fashion-mnist is not installed")
        return ["dataset=fashion_mnist", f"dataset.path={FASHION}", "dataset.test_limit=600"]
    return [f"dataset={dataset}"]


def compose_in(tmp_path: Path, *overrides: str):
    """Compose `conf/config.yaml` with overrides; tracking and checkpoints go to tmp_path, never the repo."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(
            "config",
            overrides=[f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                       f"tracking.artifact_location={tmp_path}/mlruns",
                       f"trainer.checkpoint_dir={tmp_path}/checkpoints", *overrides],
        )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One finished smoke run (lines, MLP, plain AE) shared by the tools' tests: (config, run id)."""
    from acai.training.run import train

    cfg = compose_in(tmp_path_factory.mktemp("smoke_store"), "model=mlp", "regularizer=none", "experiment=smoke")
    return cfg, train(cfg)


@pytest.fixture
def compose_cfg(tmp_path):
    """`compose_in(tmp_path, ...)` for one test."""
    return lambda *overrides: compose_in(tmp_path, *overrides)
