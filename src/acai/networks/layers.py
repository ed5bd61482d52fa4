"""Small building blocks. What the logged autoencoder holds is built-in Keras only, so it loads with
Keras' safe mode on in a process that never imported this project; the critic, logged for the explorer,
needs this module imported for its head (`MeanOverFeatures`)."""

from __future__ import annotations

import keras
from keras import ops


def he_modified_scaling(slope: float = 0.2) -> dict:
    """The reference's initialiser, N(0, 1/sqrt((1 + slope^2) * fan_in)) -- note: no factor 2 -- as the
    arguments of Keras' VarianceScaling, which draws exactly this (variance = scale / fan_in)."""
    return {"scale": 1.0 / (1.0 + slope**2), "mode": "fan_in", "distribution": "untruncated_normal"}


def he_modified_normal(slope: float = 0.2) -> keras.initializers.Initializer:
    """The reference's initialiser as a built-in, which keeps the logged models loadable where this project
    is not installed."""
    return keras.initializers.VarianceScaling(**he_modified_scaling(slope))


@keras.saving.register_keras_serializable(package="acai", name="HeModifiedNormal")
class LegacyHeModifiedNormal(keras.initializers.VarianceScaling):
    """The same initialiser under the custom name that models logged by earlier versions carry, so that
    the tools (which import this module) still load them; new models hold the built-in."""

    def __init__(self, slope: float = 0.2, seed: int | None = None):
        super().__init__(**he_modified_scaling(slope), seed=seed)
        self.slope = slope

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
