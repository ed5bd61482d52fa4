"""Denoising autoencoder (reference `denoising.py`): Gaussian noise on the input, clean targets.

Opt-in deviation, `warmup_samples` (0, off, is the reference): the noise's std ramps linearly from 0 to
`noise` over that many training images, so the AE first leaves its initial plateau on clean inputs (the
plain AE does within ~72k images) and is the reference's denoising AE from the end of the ramp on.
"""

from __future__ import annotations

from dataclasses import dataclass

from keras import ops

from acai.errors import ConfigError
from acai.regularizers.base import Regularizer


@dataclass
class Denoising(Regularizer):
    """`noise` is the standard deviation of the noise on [-1, 1] images (reference: 1.0)."""

    name: str = "denoising"
    noise: float = 1.0
    warmup_samples: int = 0

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ConfigError("regularizer.noise", self.noise, "must be >= 0")
        if self.warmup_samples < 0:
            raise ConfigError("regularizer.warmup_samples", self.warmup_samples, "must be >= 0")

    def noise_std(self, samples):
        """`noise`, ramped linearly from 0 over the first `warmup_samples` images when that is set."""
        if self.warmup_samples <= 0:
            return self.noise
        return self.noise * ops.minimum(ops.cast(samples, "float32") / float(self.warmup_samples), 1.0)

    def corrupt(self, x, random, samples=0.0):
        noise = random.normal(ops.shape(x))
        if self.warmup_samples <= 0:
            return x + self.noise * noise
        return x + ops.cast(self.noise_std(samples), x.dtype) * noise
