"""Small serialisable building blocks, so every model saves and loads with Keras' safe mode on."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="acai")
class HeModifiedNormal(keras.initializers.Initializer):
    """The reference's initialiser: N(0, 1/sqrt((1 + slope^2) * fan_in)) -- note: no factor 2."""

    def __init__(self, slope: float = 0.2, seed: int | None = None):
        self.slope = slope
        self.seed = seed

    def __call__(self, shape, dtype=None):
        fan_in = math.prod(shape[:-1])
        std = 1.0 / math.sqrt((1.0 + self.slope**2) * fan_in)
        return keras.random.normal(shape, stddev=std, dtype=dtype, seed=self.seed)

    def get_config(self) -> dict:
        return {"slope": self.slope, "seed": self.seed}


@keras.saving.register_keras_serializable(package="acai")
class MeanOverFeatures(keras.layers.Layer):
    """The critic's head: one scalar per example, the mean over every non-batch axis."""

    def call(self, x):
        return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)


LEAKY_SLOPE = 0.2  # tf.nn.leaky_relu's default, used by the reference (Keras' LeakyReLU defaults to 0.3)


def lrelu() -> keras.layers.Layer:
    return keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE)


def activated(layer: keras.layers.Layer, activation: bool) -> list[keras.layers.Layer]:
    """`layer` followed by the reference's LeakyReLU(0.2), or alone for the linear layers."""
    return [layer, lrelu()] if activation else [layer]
