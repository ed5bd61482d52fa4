"""Runs every measurement of a trained autoencoder on a fixed test set; used during and after training."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import keras
import numpy as np

from acai.cache import fingerprint, remembered
from acai.config import EvaluationConfig
from acai.data.base import Dataset, pad_to, unit_range
from acai.errors import DatasetError
from acai.evaluation.clustering import cluster_accuracy, probe_accuracy
from acai.evaluation.interpolation import lerp
from acai.evaluation.lines_metrics import score_interpolations
from acai.evaluation.summary import on_plateau
from acai.networks.inference import predict


@dataclass
class Evaluator:
    """Holds the deterministic test data; `evaluate` returns metrics, `images` the logged pictures."""

    dataset: Dataset
    cfg: EvaluationConfig
    image_size: int | None
    seed: int = 0
    x_test: np.ndarray = field(init=False)
    y_test: np.ndarray = field(init=False)
    announce: Callable[[str], None] | None = None  # told each phase as it starts (src/evaluate.py's progress)
    timings: dict[str, float] = field(init=False, default_factory=dict)  # seconds per phase, summed
    _pixel_accuracy: float | None = field(init=False, default=None)
    mean_image_error: float = field(init=False)  # the initial plateau's reconstruction error (see `evaluate`)

    def __post_init__(self) -> None:
        x, self.y_test = self.dataset.test_set()
        if len(x) < 2:
            raise DatasetError(f"dataset={self.dataset.name} has {len(x)} test image(s); an evaluation needs at "
                               "least 2 (it interpolates between pairs)")
        self.x_test = pad_to(x, self.image_size)
        mean_image = self.x_test.mean(axis=0, dtype=np.float64).astype(self.x_test.dtype)
        self.mean_image_error = self.squared_error_per_value(lambda start, stop: mean_image)

    def squared_error_per_value(self, predict_chunk: Callable[[int, int], np.ndarray], chunk: int = 4096) -> float:
        """Mean squared error against the test set of what `predict_chunk(start, stop)` gives for those test
        images, a chunk at a time (SVHN's 26,032 predictions and their differences would hold ~1 GB at once)."""
        total = 0.0
        for start in range(0, len(self.x_test), chunk):
            stop = min(start + chunk, len(self.x_test))
            total += float(np.sum(np.square(predict_chunk(start, stop) - self.x_test[start:stop]), dtype=np.float64))
        return total / self.x_test.size

    @contextmanager
    def phase(self, key: str, description: str) -> Iterator[None]:
        """Time one part of an evaluation under `key` (logged as `time/eval/<key>`) and announce it."""
        if self.announce is not None:
            self.announce(description)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start

    @property
    def scores_interpolations(self) -> bool:
        return self.dataset.interpolation_benchmark and len(self.x_test) >= 2 * self.cfg.interpolation_pairs

    @property
    def clusters_pixels(self) -> bool:
        """The pixel K-means reference: as set, or (null) for grayscale data only."""
        if self.cfg.cluster_pixels is None:
            return self.x_test.shape[-1] == 1
        return self.cfg.cluster_pixels

    def interpolation_frames(self, encode: keras.Model, decode: keras.Model, pairs: int, steps: int,
                             latents: np.ndarray | None = None) -> np.ndarray:
        """Decoded lerps between test image i and test image pairs + i: [pairs, steps, H, W, C]."""
        z = latents[: 2 * pairs] if latents is not None else predict(encode, self.x_test[: 2 * pairs])
        path = lerp(z[:pairs], z[pairs: 2 * pairs], steps).astype(np.float32)
        frames = predict(decode, path.reshape((-1,) + z.shape[1:]))
        return frames.reshape((pairs, steps) + frames.shape[1:])

    def evaluate(self, encode: keras.Model, decode: keras.Model, classifier: keras.Model | None = None,
                 cluster: bool = False) -> dict[str, float]:
        """Every measurement; `on_plateau` (1.0 or 0.0) says whether the reconstruction error is still within
        `plateau_margin` of the mean image's, where every other number describes the plateau, not the model."""
        with self.phase("encode_test", f"encode and reconstruct {len(self.x_test):,} test images"):
            latents = predict(encode, self.x_test)
            error = self.reconstruction_error(decode, latents)
            metrics = {"reconstruction_error": error,
                       "on_plateau": float(on_plateau(error, self.mean_image_error, self.cfg.plateau_margin))}
        if classifier is not None and self.dataset.labelled:
            with self.phase("classifier", "latent classifier"):
                logits = predict(classifier, latents)
            metrics["latent_accuracy"] = float(np.mean(np.argmax(logits, -1) == self.y_test) * 100)
        if self.scores_interpolations:
            with self.phase("decode_interpolations", f"decode {self.cfg.interpolation_pairs} interpolations"):
                frames = self.interpolation_frames(encode, decode, self.cfg.interpolation_pairs,
                                                   self.cfg.interpolation_frames, latents)
            with self.phase("lines_metrics",
                            f"Mean Distance and Smoothness against {self.cfg.reference_lines:,} reference lines"):
                scores = score_interpolations(frames, self.cfg.reference_lines)
            metrics["mean_distance"] = scores.mean_distance
            metrics["mean_distance_x1e3"] = scores.mean_distance * 1e3
            metrics["smoothness"] = scores.smoothness
        if cluster and self.dataset.labelled:
            metrics.update(self.clustering(encode, latents))
        return metrics

    def reconstruction_error(self, decode: keras.Model, latents: np.ndarray) -> float:
        """Mean squared error of the decoded test latents."""
        return self.squared_error_per_value(lambda start, stop: predict(decode, latents[start:stop]))

    def clustering(self, encode: keras.Model, test_latents: np.ndarray) -> dict[str, float]:
        """K-means accuracy (%) on latents, and once per evaluator on raw pixels as the reference point;
        plus a logistic-regression probe on the same frozen train latents."""
        with self.phase("train_set", f"load {self.cfg.cluster_train_size:,} training images"):
            x_train, y_train = self.dataset.train_set(self.cfg.cluster_train_size)
            x_train = pad_to(x_train, self.image_size)
        with self.phase("encode_train", f"encode {len(x_train):,} training images"):
            train_latents = predict(encode, x_train)
        k = self.dataset.num_classes
        kwargs = dict(n_clusters=k, restarts=self.cfg.kmeans_restarts, max_iter=self.cfg.kmeans_max_iter,
                      seed=self.cfg.kmeans_seed)
        with self.phase("kmeans", f"K-means on the latents ({self.cfg.kmeans_restarts} restarts)"):
            out = {"cluster_accuracy": 100 * cluster_accuracy(train_latents, test_latents, self.y_test, **kwargs)}
        with self.phase("probe", "linear probe"):
            out["probe_accuracy"] = 100 * probe_accuracy(train_latents, y_train, test_latents, self.y_test, self.seed)
        if self.clusters_pixels:
            if self._pixel_accuracy is None:
                with self.phase("kmeans_pixels", f"K-means on the pixels ({self.cfg.kmeans_restarts} restarts, "
                                                 "cached on disk per data and settings)"):
                    pixels = unit_range(x_train)
                    key = fingerprint(pixels, self.x_test, self.y_test, sorted(kwargs.items()))
                    self._pixel_accuracy = remembered("pixel_kmeans", key, lambda: 100 * cluster_accuracy(
                        pixels, self.x_test, self.y_test, **kwargs))
            out["cluster_accuracy_pixels"] = self._pixel_accuracy
        return out
