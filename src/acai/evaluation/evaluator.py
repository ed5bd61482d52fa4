"""Runs every measurement of a trained autoencoder on a fixed test set; used during and after training.

What is measured is declared in `acai.evaluation.metrics`; `Evaluation` holds the shared, timed stages the
declared metrics read."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import keras
import numpy as np

from acai.cache import fingerprint, remembered
from acai.config import EvaluationConfig
from acai.data.base import Dataset, pad_to, unit_range
from acai.errors import DatasetError
from acai.evaluation import metrics
from acai.evaluation.clustering import cluster_accuracy, probe_accuracy
from acai.evaluation.interpolation import lerp
from acai.evaluation.lines_metrics import LinesScores, score_interpolations
from acai.networks.inference import predict


@dataclass
class Evaluator:
    """Holds the deterministic test data; `evaluate` measures the declared metrics (`acai.evaluation.metrics`)."""

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
    declared: list[metrics.Metric] = field(init=False)  # the built-in metrics and those evaluation.metrics names

    def __post_init__(self) -> None:
        self.declared = metrics.declared(metrics.from_paths(self.cfg.metrics))
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
    def phase(self, key: str, description: str | None) -> Iterator[None]:
        """Time one part of an evaluation under `key` (logged as `time/eval/<key>`) and announce it (unless
        `description` is None)."""
        if self.announce is not None and description is not None:
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
        """Every declared metric (`acai.evaluation.metrics.METRICS`) that applies, in their order; `cluster`
        adds the clustering ones. `on_plateau` (1.0 or 0.0) says whether the reconstruction error is still
        within `plateau_margin` of the mean image's, where every other number describes the plateau."""
        evaluation = Evaluation(self, encode, decode, classifier, cluster)
        return {m.key: m.compute(evaluation) for m in self.declared
                if (cluster or not m.clustering) and m.applies(evaluation)}

    def reconstruction_error(self, decode: keras.Model, latents: np.ndarray) -> float:
        """Mean squared error of the decoded test latents."""
        return self.squared_error_per_value(lambda start, stop: predict(decode, latents[start:stop]))

    def clustering(self, encode: keras.Model, test_latents: np.ndarray) -> dict[str, float]:
        """The clustering metrics alone (K-means on latents and, once per evaluator, on pixels; the linear
        probe), for these test latents."""
        evaluation = Evaluation(self, encode, None, None, cluster=True)
        evaluation.__dict__["test_latents"] = test_latents  # the stage, already computed
        return {m.key: m.compute(evaluation) for m in self.declared if m.clustering and m.applies(evaluation)}


def stage(key: str, describe: Callable[[Evaluation], str] | None, needs: tuple[str, ...] = ()):
    """A part of an evaluation, computed once when a metric first reads it and timed under `key` (logged as
    `time/eval/<key>`); `needs`, the stages it reads, are computed before its own timing starts, so that
    each time counts once and the phases are announced in the order they run. `describe` None: timed,
    not announced (the rest of a phase already announced)."""
    def wrap(compute: Callable[[Evaluation], object]) -> cached_property:
        @functools.wraps(compute)
        def run(self: Evaluation):
            for name in needs:
                getattr(self, name)
            with self.evaluator.phase(key, describe(self) if describe else None):
                return compute(self)
        return cached_property(run)
    return wrap


@dataclass
class Evaluation:
    """One evaluation of one model: what a `Metric`'s `compute` and `applies` read (see
    `acai.evaluation.metrics`). Its stages run when first read, each once."""

    evaluator: Evaluator
    encode: keras.Model
    decode: keras.Model | None
    classifier: keras.Model | None
    cluster: bool

    @property
    def cfg(self) -> EvaluationConfig:
        return self.evaluator.cfg

    @stage("encode_test", lambda e: f"encode and reconstruct {len(e.evaluator.x_test):,} test images")
    def test_latents(self) -> np.ndarray:
        return predict(self.encode, self.evaluator.x_test)

    @stage("encode_test", None, needs=("test_latents",))
    def reconstruction_error(self) -> float:
        return self.evaluator.reconstruction_error(self.decode, self.test_latents)

    @stage("classifier", lambda e: "latent classifier", needs=("test_latents",))
    def logits(self) -> np.ndarray:
        return predict(self.classifier, self.test_latents)

    @property
    def latent_accuracy(self) -> float:
        return float(np.mean(np.argmax(self.logits, -1) == self.evaluator.y_test) * 100)

    @stage("decode_interpolations", lambda e: f"decode {e.cfg.interpolation_pairs} interpolations",
           needs=("test_latents",))
    def frames(self) -> np.ndarray:
        return self.evaluator.interpolation_frames(self.encode, self.decode, self.cfg.interpolation_pairs,
                                                   self.cfg.interpolation_frames, self.test_latents)

    @stage("lines_metrics",
           lambda e: f"Mean Distance and Smoothness against {e.cfg.reference_lines:,} reference lines",
           needs=("frames",))
    def line_scores(self) -> LinesScores:
        return score_interpolations(self.frames, self.cfg.reference_lines)

    @stage("train_set", lambda e: f"load {e.cfg.cluster_train_size:,} training images")
    def train_set(self) -> tuple[np.ndarray, np.ndarray]:
        x_train, y_train = self.evaluator.dataset.train_set(self.cfg.cluster_train_size)
        return pad_to(x_train, self.evaluator.image_size), y_train

    @stage("encode_train", lambda e: f"encode {len(e.train_set[0]):,} training images", needs=("train_set",))
    def train_latents(self) -> np.ndarray:
        return predict(self.encode, self.train_set[0])

    @property
    def kmeans_settings(self) -> dict:
        return dict(n_clusters=self.evaluator.dataset.num_classes, restarts=self.cfg.kmeans_restarts,
                    max_iter=self.cfg.kmeans_max_iter, seed=self.cfg.kmeans_seed)

    @stage("kmeans", lambda e: f"K-means on the latents ({e.cfg.kmeans_restarts} restarts)",
           needs=("train_latents", "test_latents"))
    def latent_clusters(self) -> float:
        return 100 * cluster_accuracy(self.train_latents, self.test_latents, self.evaluator.y_test,
                                      **self.kmeans_settings)

    @stage("probe", lambda e: "linear probe", needs=("train_latents", "test_latents"))
    def probe(self) -> float:
        ev = self.evaluator
        return 100 * probe_accuracy(self.train_latents, self.train_set[1], self.test_latents, ev.y_test, ev.seed)

    @property
    def pixel_clusters(self) -> float:
        """K-means on the raw training pixels: computed once per evaluator (and cached on disk)."""
        ev = self.evaluator
        if ev._pixel_accuracy is None:
            x_train = self.train_set[0]
            kwargs = self.kmeans_settings
            with ev.phase("kmeans_pixels", f"K-means on the pixels ({self.cfg.kmeans_restarts} restarts, "
                                           "cached on disk per data and settings)"):
                pixels = unit_range(x_train)
                key = fingerprint(pixels, ev.x_test, ev.y_test, sorted(kwargs.items()))
                ev._pixel_accuracy = remembered("pixel_kmeans", key, lambda: 100 * cluster_accuracy(
                    pixels, ev.x_test, ev.y_test, **kwargs))
        return ev._pixel_accuracy
