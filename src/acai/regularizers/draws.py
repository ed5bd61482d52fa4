"""Per-example random numbers that do not depend on how a batch is split over devices.

Under `trainer.strategy=mirrored` (see `acai.training.distribute`) every replica holds a slice of the
global batch in `pair_order`. `BatchRandom` draws the numbers of the whole global batch on each replica
from the same mirrored seed and keeps its own rows: replicas draw different numbers, and together the
very numbers of a single-device step. On one device it is a plain draw.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def pair_order(batch_size: int, replicas: int) -> np.ndarray:
    """Row order of the global batch before it is split: replica r gets rows [r h, (r+1) h) and
    [B - (r+1) h, B - r h) with h = B / (2 replicas), whose reversal is the global reversal's pairs."""
    half = batch_size // (2 * replicas)
    return np.concatenate([np.r_[r * half:(r + 1) * half, batch_size - (r + 1) * half:batch_size - r * half]
                           for r in range(replicas)])


class BatchRandom:
    """Per-example random numbers for one replica's slice, equal to the rows of a single-device draw.

    Shapes are the replica's own (leading axis: its examples); the regularizers draw through this and
    never see how many replicas there are.
    """

    def __init__(self, generator: keras.random.SeedGenerator, replicas: int):
        self.generator, self.replicas = generator, replicas

    def _rows(self, draw, shape):
        if self.replicas == 1:
            return draw(tuple(shape))
        local = int(shape[0])  # static under fit: batches are whole and split evenly
        rows = pair_order(local * self.replicas, self.replicas).reshape(self.replicas, local)
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        full = draw((local * self.replicas, *shape[1:]))
        return tf.gather(full, tf.gather(tf.constant(rows), replica))

    def uniform(self, shape) -> tf.Tensor:
        return self._rows(lambda s: keras.random.uniform(s, seed=self.generator), shape)

    def normal(self, shape) -> tf.Tensor:
        return self._rows(lambda s: keras.random.normal(s, seed=self.generator), shape)

    def dropout(self, x: tf.Tensor, keep_prob: float) -> tf.Tensor:
        """TF's `nn.dropout(keep_prob)`: keep a unit with probability keep_prob, scale kept units by 1/keep."""
        keep = ops.cast(self.uniform(ops.shape(x)) < keep_prob, x.dtype)
        return x * keep / keep_prob
