"""The contract between the shared training step and a regularizer; the base is the plain autoencoder.

The step owns the forward pass (encoder, decoder), the reconstruction error and the latent classifier.
A regularizer adds, through the hooks below, only what defines it: input corruption (denoising), a
training-time bottleneck with its losses (dropout, VAE, VQ-VAE), the training likelihood (VAE), extra
layers that belong to the saved autoencoder (VAE heads, VQ-VAE codebook), and an adversary with its
own optimizer (ACAI's critic, AAE's discriminator). Nothing outside a regularizer's module names it.

The loss hooks return small named results (`Bottleneck`, `Likelihood`, `AdversaryLosses`); their
`diagnostics` dicts are what the step logs as `train/<name>`, and the only list of those names
(`Autoencoder.diagnostic_names` reads them off the results). What `build` creates is declared as
`built()` fields of the regularizer's dataclass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from acai.networks.base import Architecture
from acai.regularizers.draws import BatchRandom


@dataclass
class Step:
    """What the step hands to `adversary_losses`: tensors of one training batch."""

    x: tf.Tensor
    latent: tf.Tensor
    reconstruction: tf.Tensor
    decode: Callable[[tf.Tensor], tf.Tensor]
    random: BatchRandom
    # images the autoencoder has trained on before this batch (its optimizer's iterations x the global
    # batch), a float32 tensor inside the step: what a schedule over training (AAE's warm-up) reads
    samples: tf.Tensor | float = 0.0


Tensors = dict[str, tf.Tensor]


def built(**kwargs: Any) -> Any:
    """A field that `build` sets, not a setting: not a constructor argument, not shown, not compared, and
    invisible to the config (OmegaConf skips it, so a YAML key of that name is refused as unknown)."""
    return field(default=None, init=False, repr=False, compare=False, metadata={"omegaconf_ignore": True},
                 **kwargs)


@dataclass(frozen=True)
class Bottleneck:
    """What `bottleneck` gives the step. Every dict maps a name to a scalar tensor."""

    latent: tf.Tensor  # the code that is interpolated and evaluated (VAE: the posterior mean)
    code: tf.Tensor  # the decoder's training input (VAE: a sample; VQ-VAE: the quantised code)
    loss_terms: Tensors = field(default_factory=dict)  # weighted terms added to the autoencoder's loss
    diagnostics: Tensors = field(default_factory=dict)  # logged each step as train/<name>


@dataclass(frozen=True)
class Likelihood:
    """What `reconstruction_loss` gives the step: the autoencoder's training likelihood term."""

    loss: tf.Tensor
    diagnostics: Tensors = field(default_factory=dict)  # logged each step as train/<name>


@dataclass(frozen=True)
class AdversaryLosses:
    """What `adversary_losses` gives the step."""

    loss: tf.Tensor | None = None  # the adversary's own loss, minimised by its optimizer; None: no adversary
    autoencoder_terms: Tensors = field(default_factory=dict)  # weighted terms added to the autoencoder's loss
    diagnostics: Tensors = field(default_factory=dict)  # logged each step as train/<name>


def mse(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """The reference's tf.losses.mean_squared_error: a mean over every element."""
    return ops.mean(ops.square(a - b))


def reverse_pairs(z: tf.Tensor) -> tf.Tensor:
    """The partner of example i is example B-1-i (the reference's z[::-1])."""
    return ops.flip(z, axis=0)


@dataclass
class Regularizer:
    """Plain autoencoder (`regularizer=none`): reconstruction only."""

    _target_: str = "acai.regularizers.base.Regularizer"
    name: str = "none"
    # built state (`build` sets it; no setting): an adversary trained with its own optimizer, or None
    adversary: keras.Model | None = built()
    adversary_optimizer: keras.optimizers.Optimizer | None = built()

    # ---- structure: built once, before training ----
    def build(self, arch: Architecture, image_shape: tuple[int, ...], latent_shape: tuple[int, ...],
              optimizer: Callable[[], keras.optimizers.Optimizer]) -> None:
        """Create this regularizer's layers, adversary and optimizer (none for the plain AE): the `built()`
        fields its class declares."""
        self.adversary = None
        self.adversary_optimizer = None

    def latent_head(self) -> keras.layers.Layer | None:
        """Maps the encoder output to the latent that is interpolated and evaluated (VAE: the mean)."""
        return None

    def decode_head(self) -> keras.layers.Layer | None:
        """Maps a latent to the decoder's input at evaluation (VQ-VAE: the quantising bottleneck)."""
        return None

    def portable_decode_head(self) -> keras.layers.Layer | None:
        """`decode_head` as built-in Keras layers only, for the logged model (VQ-VAE rebuilds its own)."""
        return self.decode_head()

    def output_head(self) -> keras.layers.Layer | None:
        """Maps the decoder output to [-1, 1] images (VAE: 2 sigmoid(logits) - 1)."""
        return None

    def extra_layers(self) -> list[keras.layers.Layer]:
        """Layers trained with the autoencoder's optimizer that the heads do not hold (VAE: log-variance)."""
        return []

    def judge_interpolations(self, frames: np.ndarray) -> np.ndarray | None:
        """A diagnostic score per decoded frame (ACAI: the critic's predicted alpha), or None."""
        return None

    # ---- the training step's hooks ----
    def corrupt(self, x: tf.Tensor, random: BatchRandom, samples: tf.Tensor | float = 0.0) -> tf.Tensor:
        """The encoder's training input (denoising adds noise); targets stay clean. `samples`: as `Step`'s."""
        return x

    def bottleneck(self, features: tf.Tensor, random: BatchRandom) -> Bottleneck:
        """From encoder output to the latent and the decoder's input when training, with their losses."""
        return Bottleneck(latent=features, code=features)

    def reconstruction_loss(self, x: tf.Tensor, decoded: tf.Tensor) -> Likelihood:
        """The training likelihood term on raw decoder output (VAE: Bernoulli)."""
        return Likelihood(mse(x, decoded))

    def adversary_losses(self, step: Step) -> AdversaryLosses:
        """The adversary's loss and the autoencoder's adversarial terms; the plain AE has no adversary."""
        return AdversaryLosses()
