"""Clustering accuracy: invariances and known answers."""

import numpy as np
import pytest

from acai.evaluation.clustering import cluster_accuracy, matched_accuracy, probe_accuracy


def test_matched_accuracy_is_invariant_to_cluster_ids():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    clusters = np.where(rng.random(500) < 0.8, labels, rng.integers(0, 10, 500))
    perm = rng.permutation(10)
    assert matched_accuracy(labels, clusters) == pytest.approx(matched_accuracy(labels, perm[clusters]))
    assert matched_accuracy(labels, perm[labels]) == 1.0


CENTRES = np.random.default_rng(1).normal(0, 10, (10, 5))


def blobs(n, rng, spread):
    labels = rng.integers(0, 10, n)
    return CENTRES[labels] + rng.normal(0, spread, (n, 5)), labels


def test_separated_data_clusters_perfectly_and_noise_is_near_chance():
    rng = np.random.default_rng(0)
    xtr, _ = blobs(1000, rng, 0.01)
    xte, yte = blobs(300, rng, 0.01)
    assert cluster_accuracy(xtr, xte, yte, restarts=100) == 1.0
    noise_acc = cluster_accuracy(rng.normal(size=(1000, 5)), rng.normal(size=(300, 5)), rng.integers(0, 10, 300))
    assert noise_acc < 0.25


def test_probe_separates_informative_from_noise_codes():
    rng = np.random.default_rng(0)
    xtr, ytr = blobs(600, rng, 1.0)
    xte, yte = blobs(200, rng, 1.0)
    assert probe_accuracy(xtr, ytr, xte, yte) > 0.95
    assert probe_accuracy(rng.normal(size=(600, 5)), ytr, rng.normal(size=(200, 5)), yte) < 0.3


def test_kmeans_seed_is_the_references_zero_whatever_the_training_seed(tmp_path):
    """The reference clusters every model with KMeans(random_state=0): runs of different training seeds
    must get the same K-means draws, so their clustering differs only by their latents."""
    import keras
    from conftest import write_tiny_mnist

    from acai.config import EvaluationConfig
    from acai.data.images import ImageDataset
    from acai.evaluation.evaluator import Evaluator

    data = ImageDataset(path=str(write_tiny_mnist(tmp_path / "mnist.npz", n_train=300, n_test=100)))
    encode = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.AveragePooling2D(4), keras.layers.Flatten()])
    cfg = EvaluationConfig(cluster_train_size=300, kmeans_restarts=1, cluster_pixels=False)
    assert cfg.kmeans_seed == 0

    def accuracy(training_seed: int, kmeans_seed: int = 0) -> float:
        evaluator = Evaluator(data, EvaluationConfig(**{**vars(cfg), "kmeans_seed": kmeans_seed}), None,
                              seed=training_seed)
        return evaluator.clustering(encode, encode.predict(evaluator.x_test, verbose=0))["cluster_accuracy"]

    reference = accuracy(0)
    assert [accuracy(s) for s in (1, 2, 3)] == [reference] * 3
    assert len({accuracy(0, k) for k in range(6)}) > 1  # one restart: the K-means draw does matter
