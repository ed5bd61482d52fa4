"""Fast batched inference shared by evaluation, diagnostics and the command-line tools."""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from acai.data.base import unit_range

PREDICT_BATCH = 500
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Inference:
    """`model(x, training=False)` as a callable object: tf.function then counts traces per model rather
    than per line of code, so several models each traced once do not warn about "retracing"."""

    def __init__(self, model: keras.Model):
        self.model = model

    def __call__(self, x):
        return self.model(x, training=False)


def predict(model: keras.Model, x: np.ndarray, batch: int = PREDICT_BATCH) -> np.ndarray:
    """Batched inference through one compiled function per model; the last chunk is padded so the
    function is traced once (Keras' `predict` retraces on every new shape and logs warnings).
    uint8 images are converted to [-1, 1] a chunk at a time (never all at once as floats)."""
    fn = _COMPILED.get(model)
    if fn is None:
        fn = _COMPILED[model] = tf.function(_Inference(model))
    size = min(batch, len(x))
    out = []
    for start in range(0, len(x), size):
        chunk = unit_range(x[start:start + size])
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), 0)]) if len(chunk) < size else chunk
        out.append(np.asarray(fn(padded))[: len(chunk)])
    return np.concatenate(out)
