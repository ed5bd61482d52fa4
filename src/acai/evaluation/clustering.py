"""K-means clustering accuracy of latents (reference `cluster.py`, Table 3 of the paper).

PCA-whiten with the training statistics (all components), K-means fitted on train with many seeded
restarts (scikit-learn), then test accuracy under the best one-to-one matching of clusters to labels
(scipy's linear_sum_assignment, the Hungarian algorithm the reference ran with `munkres`).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans


def matched_accuracy(labels: np.ndarray, clusters: np.ndarray, n_clusters: int | None = None) -> float:
    """Accuracy after mapping each cluster to one label so that the most examples agree."""
    labels, clusters = np.asarray(labels, np.int64), np.asarray(clusters, np.int64)
    k = max(n_clusters or 0, labels.max() + 1, clusters.max() + 1)
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def whiten(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """The reference's SVD whitening: (z - mean_train) V^T / (s + 1e-5), fitted on train."""
    train = train.reshape(len(train), -1).astype(np.float64)
    mean = train.mean(axis=0)
    _, s, vt = np.linalg.svd(train - mean, full_matrices=False)
    return [((z.reshape(len(z), -1) - mean) @ vt.T) / (s + 1e-5) for z in (train, *others)]


def cluster_accuracy(train: np.ndarray, test: np.ndarray, test_labels: np.ndarray, *, n_clusters: int = 10,
                     restarts: int = 10, max_iter: int = 1000, seed: int = 0) -> float:
    """Test accuracy (0..1) of K-means fitted on whitened train codes."""
    train_w, test_w = whiten(train, test)
    kmeans = KMeans(n_clusters=n_clusters, init="random", n_init=restarts, max_iter=max_iter, random_state=seed)
    kmeans.fit(train_w)
    return matched_accuracy(test_labels, kmeans.predict(test_w), n_clusters)


def probe_accuracy(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                   seed: int = 0) -> float:
    """Test accuracy (0..1) of a logistic-regression probe fitted on frozen, standardised train codes.

    A complement to the paper's jointly trained classifier, which at lr 1e-4 needs many thousand steps
    (so short CPU runs leave it near chance even when the latent is informative)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
    probe.fit(train.reshape(len(train), -1), train_labels)
    return float(probe.score(test.reshape(len(test), -1), test_labels))
