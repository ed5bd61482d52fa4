"""Variational autoencoder (reference `vae.py`).

Dense heads on the flattened encoder output give mu and log sigma^2 (same size); z is sampled by
reparameterisation; the decoder outputs logits of a Bernoulli on (x + 1) / 2; images are
2 sigmoid(logits) - 1. Loss = (sum of sigmoid cross-entropy + beta * sum of KL) / batch.

Interpolation, evaluation and the latent classifier use the posterior mean mu (the reference used a
sampled z, which makes every interpolation and clustering stochastic): see docs/deviations.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import ops

from acai.regularizers.base import Bottleneck, Likelihood, Regularizer, built


def dense_head(latent_shape, name: str) -> keras.Sequential:
    return keras.Sequential(
        [keras.layers.Flatten(), keras.layers.Dense(math.prod(latent_shape)), keras.layers.Reshape(latent_shape)],
        name=name,
    )


def gaussian_kl(mu, log_var):
    """KL(N(mu, sigma^2) || N(0, 1)) summed over every dimension: 0.5 (-log s^2 - 1 + s^2 + mu^2)."""
    return 0.5 * ops.sum(-log_var - 1.0 + ops.exp(log_var) + ops.square(mu))


@dataclass
class Vae(Regularizer):
    name: str = "vae"
    beta: float = 1.0
    mean_head: keras.Sequential = built()  # mu, the latent that is interpolated and evaluated
    log_var_head: keras.Sequential = built()  # log sigma^2, trained with the autoencoder
    to_image: keras.Sequential = built()  # logits -> [-1, 1] images

    def build(self, arch, image_shape, latent_shape, optimizer):
        super().build(arch, image_shape, latent_shape, optimizer)
        self.mean_head = dense_head(latent_shape, "vae_mean")
        self.log_var_head = dense_head(latent_shape, "vae_log_var")
        self.mean_head.build((None, *latent_shape))
        self.log_var_head.build((None, *latent_shape))
        self.to_image = keras.Sequential(
            [keras.layers.Activation("sigmoid"), keras.layers.Rescaling(2.0, offset=-1.0)], name="vae_output")

    def latent_head(self):
        return self.mean_head

    def output_head(self):
        return self.to_image

    def extra_layers(self):
        return [self.log_var_head]

    def bottleneck(self, features, random) -> Bottleneck:
        mu, log_var = self.mean_head(features), self.log_var_head(features)
        z = mu + ops.exp(0.5 * log_var) * random.normal(ops.shape(mu))
        batch = ops.cast(ops.shape(mu)[0], mu.dtype)
        kl = self.beta * gaussian_kl(mu, log_var) / batch
        return Bottleneck(latent=mu, code=z, loss_terms={"kl": kl}, diagnostics={"kl": kl})

    def reconstruction_loss(self, x, decoded) -> Likelihood:
        """The Bernoulli negative log-likelihood per example, logged as `likelihood`."""
        targets = (x + 1.0) / 2.0
        nll = ops.sum(ops.binary_crossentropy(targets, decoded, from_logits=True))
        nll = nll / ops.cast(ops.shape(x)[0], x.dtype)
        return Likelihood(nll, diagnostics={"likelihood": nll})
