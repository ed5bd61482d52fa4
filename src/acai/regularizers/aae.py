"""Adversarial autoencoder (reference `aae.py`): a 100-100 MLP discriminator on the flattened latent
tells prior samples N(0, I) (label 1) from codes (label 0); the autoencoder adds the cross-entropy of
its codes labelled 1. Discriminator and autoencoder update together on the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
from keras import ops

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

    def build(self, arch, image_shape, latent_shape, optimizer):
        super().build(arch, image_shape, latent_shape, optimizer)
        layers: list[keras.layers.Layer] = [keras.Input(latent_shape), keras.layers.Flatten()]
        for size in self.disc_layer_sizes:
            layers += [keras.layers.Dense(size), lrelu()]
        self.adversary = keras.Sequential([*layers, keras.layers.Dense(1)], name="latent_discriminator")
        self.adversary_optimizer = optimizer(self.adversary_lr)

    def metric_names(self):
        return ("adversarial", "disc_latent", "disc_prior", "disc_accuracy")

    def adversary_losses(self, step):
        z = step.latent
        prior = step.random.normal(ops.shape(z))
        logit_latent = self.adversary(z, training=True)
        logit_prior = self.adversary(prior, training=True)
        disc_latent, disc_prior = sigmoid_ce(logit_latent, 0.0), sigmoid_ce(logit_prior, 1.0)
        adversarial = self.weight * sigmoid_ce(logit_latent, 1.0)
        accuracy = 0.5 * (ops.mean(ops.cast(logit_latent < 0, "float32"))
                          + ops.mean(ops.cast(logit_prior > 0, "float32")))
        diagnostics = {"adversarial": adversarial, "disc_latent": disc_latent, "disc_prior": disc_prior,
                       "disc_accuracy": accuracy}
        return {"adversarial": adversarial}, disc_latent + disc_prior, diagnostics
