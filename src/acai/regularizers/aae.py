"""Adversarial autoencoder (reference `aae.py`): a 100-100 MLP discriminator on the flattened latent
tells prior samples N(0, I) (label 1) from codes (label 0); the autoencoder adds the cross-entropy of
its codes labelled 1. Discriminator and autoencoder update together on the same batch.

Opt-in deviation, `delay_samples` (0, off, is the reference): the autoencoder's adversarial term is off
(weight 0) for its first that many training images, then `weight`, reached linearly over `ramp_samples`
images when that is > 0; the discriminator trains from the start. Why: at the reference initialiser the
codes are ~5e-3 and nearly equal for every image, and the adversarial gradient on the encoder is ~160x the
reconstruction's (0.40 vs 0.0025). Under Adam a weight of even a few % then sets the encoder's direction:
it fools the slow discriminator by running its codes off to |z| ~ 30-70 along the discriminator's
extrapolation, codes that carry no image, and the AE stays on its initial plateau (a linear ramp from 0
did the same by 19k images, at weight 0.06-0.14). With the delay the AE leaves the plateau as the plain AE
does; on lines at 2^18 images the full weight (1.0) then pulled it back within 16k images (README).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
from keras import ops

from acai.errors import ConfigError
from acai.networks.layers import lrelu
from acai.regularizers.base import AdversaryLosses, Regularizer, Step


def sigmoid_ce(logits, label: float):
    """Mean sigmoid cross-entropy against a constant label (TF's sigmoid_cross_entropy_with_logits)."""
    return ops.mean(ops.binary_crossentropy(ops.full_like(logits, label), logits, from_logits=True))


@dataclass
class Aae(Regularizer):
    name: str = "aae"
    adversary_lr: float = 1e-4
    disc_layer_sizes: list[int] = field(default_factory=lambda: [100, 100])
    weight: float = 1.0
    delay_samples: int = 0
    ramp_samples: int = 0

    def __post_init__(self) -> None:
        for name in ("delay_samples", "ramp_samples"):
            if getattr(self, name) < 0:
                raise ConfigError(f"regularizer.{name}", getattr(self, name), "must be >= 0")

    @property
    def scheduled(self) -> bool:
        return self.delay_samples > 0 or self.ramp_samples > 0

    def build(self, arch, image_shape, latent_shape, optimizer):
        super().build(arch, image_shape, latent_shape, optimizer)
        layers: list[keras.layers.Layer] = [keras.Input(latent_shape), keras.layers.Flatten()]
        for size in self.disc_layer_sizes:
            layers += [keras.layers.Dense(size), lrelu()]
        self.adversary = keras.Sequential([*layers, keras.layers.Dense(1)], name="latent_discriminator")
        self.adversary_optimizer = optimizer(self.adversary_lr)

    def adversarial_weight(self, samples):
        """`weight`; when scheduled, 0 for the first `delay_samples` images, then a linear ramp to `weight`
        over `ramp_samples` images (a step when that is 0)."""
        if not self.scheduled:
            return self.weight
        after = ops.cast(samples, "float32") - float(self.delay_samples)
        if self.ramp_samples <= 0:
            return self.weight * ops.cast(after >= 0, "float32")
        return self.weight * ops.clip(after / float(self.ramp_samples), 0.0, 1.0)

    def adversary_losses(self, step: Step) -> AdversaryLosses:
        z = step.latent
        prior = step.random.normal(ops.shape(z))
        logit_latent = self.adversary(z, training=True)
        logit_prior = self.adversary(prior, training=True)
        disc_latent, disc_prior = sigmoid_ce(logit_latent, 0.0), sigmoid_ce(logit_prior, 1.0)
        fooled = sigmoid_ce(logit_latent, 1.0)
        weight = self.adversarial_weight(step.samples)
        adversarial = weight * fooled if not self.scheduled else ops.cast(weight, fooled.dtype) * fooled
        accuracy = 0.5 * (ops.mean(ops.cast(logit_latent < 0, "float32"))
                          + ops.mean(ops.cast(logit_prior > 0, "float32")))
        diagnostics = {"adversarial": adversarial, "disc_latent": disc_latent, "disc_prior": disc_prior,
                       "disc_accuracy": accuracy}
        if self.scheduled:
            diagnostics["adversarial_weight"] = weight
        return AdversaryLosses(loss=disc_latent + disc_prior, autoencoder_terms={"adversarial": adversarial},
                               diagnostics=diagnostics)
