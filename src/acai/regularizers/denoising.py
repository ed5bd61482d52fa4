"""Denoising autoencoder (reference `denoising.py`): Gaussian noise on the input, clean targets."""

from __future__ import annotations

from dataclasses import dataclass

from keras import ops

from acai.errors import ConfigError
from acai.regularizers.base import Regularizer


@dataclass
class Denoising(Regularizer):
    """`noise` is the standard deviation of the noise on [-1, 1] images (reference: 1.0)."""

    _target_: str = "acai.regularizers.denoising.Denoising"
    name: str = "denoising"
    noise: float = 1.0

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ConfigError("regularizer.noise", self.noise, "must be >= 0")

    def corrupt(self, x, random):
        return x + self.noise * random.normal(ops.shape(x))
