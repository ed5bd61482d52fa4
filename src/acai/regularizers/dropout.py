"""Dropout autoencoder (reference `dropout.py`): dropout on the flattened latent, training path only.

Kept units are rescaled by 1/keep (TF's `tf.nn.dropout(keep_prob)`); encoding for evaluation and
interpolation uses the latent as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from acai.errors import ConfigError
from acai.regularizers.base import Bottleneck, Regularizer


@dataclass
class Dropout(Regularizer):
    """`keep_prob` is the reference's keep probability (0.5; the paper's CIFAR-10 runs used 0.75)."""

    name: str = "dropout"
    keep_prob: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_prob <= 1.0:
            raise ConfigError("regularizer.keep_prob", self.keep_prob, "must be in (0, 1]")

    def bottleneck(self, features, random) -> Bottleneck:
        return Bottleneck(latent=features, code=random.dropout(features, self.keep_prob))
