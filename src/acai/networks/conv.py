"""The paper's convolutional encoder/decoder/critic (`lib/layers.py` of the official code).

Encoder: 1x1 conv (linear) -> per scale two 3x3 conv+lrelu and a 2x2 average pool -> 3x3 conv+lrelu at
depth*2^scales -> 3x3 conv (linear) to the latent channels. Decoder mirrors it with nearest-neighbour
upsampling. Critic = encoder architecture + mean over its output. No normalisation anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from acai.errors import ConfigError
from acai.networks.base import Architecture
from acai.networks.layers import MeanOverFeatures, activated, he_modified_normal


def conv(filters: int, kernel: int = 3, activation: bool = True) -> list[keras.layers.Layer]:
    layer = keras.layers.Conv2D(
        filters, kernel, padding="same", kernel_initializer=he_modified_normal(), bias_initializer="zeros"
    )
    return activated(layer, activation)


@dataclass
class ConvArchitecture(Architecture):
    """Paper conv nets; `latent_dim` = latent_width^2 x channels."""

    name: str = "conv"
    latent_dim: int = 64
    latent_width: int = 2
    depth: int = 16
    input_size: int = 32

    def image_size(self) -> int | None:
        return self.input_size

    def scales(self) -> int:
        ratio = self.input_size / self.latent_width
        scales = round(math.log2(ratio)) if ratio >= 1 else -1
        if scales < 1 or 2**scales != ratio:
            raise ConfigError(
                "model.latent_width", self.latent_width,
                f"the input is {self.input_size}x{self.input_size}, so the latent width must be "
                f"{self.input_size} divided by a power of two (e.g. 2, 4, 8)",
            )
        return scales

    def channels(self) -> int:
        cells = self.latent_width**2
        if self.latent_dim <= 0 or self.latent_dim % cells:
            sizes = ", ".join(str(cells * c) for c in (1, 2, 4, 8, 16, 32, 64))
            raise ConfigError(
                "model.latent_dim", self.latent_dim,
                f"the conv latent is a {self.latent_width}x{self.latent_width} grid (model.latent_width="
                f"{self.latent_width}), so latent_dim must be a positive multiple of {cells}: {sizes}, ...",
            )
        return self.latent_dim // cells

    def latent_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, ...]:
        self.scales()
        return (self.latent_width, self.latent_width, self.channels())

    def _encoder_layers(self, depth: int, out_channels: int) -> list[keras.layers.Layer]:
        layers = conv(depth, 1, activation=False)
        for s in range(self.scales()):
            layers += conv(depth << s) + conv(depth << s) + [keras.layers.AveragePooling2D(2)]
        return layers + conv(depth << self.scales()) + conv(out_channels, activation=False)

    def _check_image(self, image_shape: tuple[int, int, int]) -> None:
        if image_shape[0] != self.input_size or image_shape[1] != self.input_size:
            raise ConfigError(
                "model.input_size", self.input_size, f"images are {image_shape[0]}x{image_shape[1]} after padding"
            )

    def encoder(self, image_shape, name="encoder"):
        self._check_image(image_shape)
        return keras.Sequential(
            [keras.Input(image_shape), *self._encoder_layers(self.depth, self.channels())], name=name
        )

    def decoder(self, image_shape, name="decoder"):
        layers: list[keras.layers.Layer] = [keras.Input(self.latent_shape(image_shape))]
        for s in reversed(range(self.scales())):
            layers += conv(self.depth << s) + conv(self.depth << s) + [keras.layers.UpSampling2D(2)]
        layers += conv(self.depth) + conv(image_shape[-1], activation=False)
        return keras.Sequential(layers, name=name)

    def critic(self, image_shape, depth=None, name="critic"):
        self._check_image(image_shape)
        layers = self._encoder_layers(depth or self.depth, self.channels())
        return keras.Sequential([keras.Input(image_shape), *layers, MeanOverFeatures()], name=name)
