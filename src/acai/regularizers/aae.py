"""Adversarial autoencoder (reference `aae.py`): a 100-100 MLP discriminator on the flattened latent
tells prior samples N(0, I) (label 1) from codes (label 0); the autoencoder adds the cross-entropy of
its codes labelled 1. Discriminator and autoencoder update together on the same batch.

Opt-in deviation, `warmup_samples` (0, off, is the reference): the autoencoder's adversarial weight ramps
linearly from 0 to `weight` over that many training images, while the discriminator trains from the start.
At the reference initialiser the codes are ~1e-3 and nearly equal for every image, so the adversarial
gradient on the encoder is ~20x the reconstruction's; the encoder fools the discriminator with codes that
still carry no image, and the AE never leaves its initial plateau at small budgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
from keras import ops

from acai.errors import ConfigError
from acai.networks.layers import lrelu
from acai.regularizers.base import Regularizer


def sigmoid_ce(logits, label: float):
    """Mean sigmoid cross-entropy against a constant label (TF's sigmoid_cross_entropy_with_logits)."""
    return ops.mean(ops.binary_crossentropy(ops.full_like(logits, label), logits, from_logits=True))


@dataclass
class Aae(Regularizer):
    _target_: str = "acai.regularizers.aae.Aae"
    name: str = "aae"
    adversary_lr: float = 1e-4
    disc_layer_sizes: list[int] = field(default_factory=lambda: [100, 100])
    weight: float = 1.0
    warmup_samples: int = 0

    def __post_init__(self) -> None:
        if self.warmup_samples < 0:
            raise ConfigError("regularizer.warmup_samples", self.warmup_samples, "must be >= 0")

    def build(self, arch, image_shape, latent_shape, optimizer):
        super().build(arch, image_shape, latent_shape, optimizer)
        layers: list[keras.layers.Layer] = [keras.Input(latent_shape), keras.layers.Flatten()]
        for size in self.disc_layer_sizes:
            layers += [keras.layers.Dense(size), lrelu()]
        self.adversary = keras.Sequential([*layers, keras.layers.Dense(1)], name="latent_discriminator")
        self.adversary_optimizer = optimizer(self.adversary_lr)

    def metric_names(self):
        names = ("adversarial", "disc_latent", "disc_prior", "disc_accuracy")
        return (*names, "adversarial_weight") if self.warmup_samples > 0 else names

    def adversarial_weight(self, samples):
        """`weight`, ramped linearly from 0 over the first `warmup_samples` images when that is set."""
        if self.warmup_samples <= 0:
            return self.weight
        progress = ops.cast(samples, "float32") / float(self.warmup_samples)
        return self.weight * ops.minimum(progress, 1.0)

    def adversary_losses(self, step):
        z = step.latent
        prior = step.random.normal(ops.shape(z))
        logit_latent = self.adversary(z, training=True)
        logit_prior = self.adversary(prior, training=True)
        disc_latent, disc_prior = sigmoid_ce(logit_latent, 0.0), sigmoid_ce(logit_prior, 1.0)
        fooled = sigmoid_ce(logit_latent, 1.0)
        weight = self.adversarial_weight(step.samples)
        adversarial = weight * fooled if self.warmup_samples <= 0 else ops.cast(weight, fooled.dtype) * fooled
        accuracy = 0.5 * (ops.mean(ops.cast(logit_latent < 0, "float32"))
                          + ops.mean(ops.cast(logit_prior > 0, "float32")))
        diagnostics = {"adversarial": adversarial, "disc_latent": disc_latent, "disc_prior": disc_prior,
                       "disc_accuracy": accuracy}
        if self.warmup_samples > 0:
            diagnostics["adversarial_weight"] = weight
        return {"adversarial": adversarial}, disc_latent + disc_prior, diagnostics
