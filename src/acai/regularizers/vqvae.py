"""VQ-VAE (reference `vqvae.py` + `lib/discretization.py`, after tensor2tensor).

Bottleneck: flatten the encoder output (hidden = h*w*C) -> dense to num_latents*hidden -> quantise each
of the num_latents vectors to its nearest codebook entry (squared L2), straight-through -> relu ->
dense(filter_size) -> relu -> dense(hidden) -> reshape and decode. The codebook is an exponential
moving average of the vectors assigned to each code (decay 0.999, Laplace-smoothed counts, eps 1e-5);
the encoder is pulled towards its codes by beta * ||x - sg(q)||^2. Interpolation mixes the
pre-quantisation encoder outputs; decoding applies the bottleneck.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import ops

from acai.regularizers.base import Bottleneck, Regularizer, built


def codebook_initializer(codebook_size: int) -> keras.initializers.Initializer:
    """TF1's `uniform_unit_scaling_initializer()` on the reference's [1, 1, codebook_size, hidden] means:
    U(-b, b) with b = sqrt(3 / fan_in), fan_in = the product of all dims but the last = codebook_size."""
    bound = math.sqrt(3.0 / codebook_size)
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="acai")
class VectorQuantizer(keras.layers.Layer):
    """The quantising bottleneck, with its EMA codebook as non-trainable weights (saved with the model)."""

    def __init__(self, latent_shape, *, num_latents=10, codebook_size=16384, filter_size=512, decay=0.999,
                 epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.latent_shape = tuple(latent_shape)
        self.num_latents, self.codebook_size, self.filter_size = num_latents, codebook_size, filter_size
        self.decay, self.epsilon = decay, epsilon
        self.hidden = math.prod(self.latent_shape)
        self.project = keras.layers.Dense(num_latents * self.hidden, name="project")
        self.expand = keras.layers.Dense(filter_size, name="expand")
        self.restore = keras.layers.Dense(self.hidden, name="restore")

    def build(self, input_shape):
        shape = (self.codebook_size, self.hidden)
        self.codebook = self.add_weight(shape=shape, initializer=codebook_initializer(self.codebook_size),
                                        trainable=False, name="codebook")
        self.ema_means = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="ema_means")
        self.ema_count = self.add_weight(shape=(self.codebook_size,), initializer="zeros", trainable=False,
                                         name="ema_count")
        self.ema_means.assign(self.codebook)
        self.project.build((None, self.hidden))
        self.expand.build((None, self.num_latents * self.hidden))
        self.restore.build((None, self.filter_size))

    def vectors(self, features):
        """The num_latents pre-quantisation vectors of each example: [B * num_latents, hidden]."""
        flat = ops.reshape(features, (-1, self.hidden))
        return ops.reshape(self.project(flat), (-1, self.hidden))

    def nearest(self, vectors):
        """Index of the nearest code (squared L2) for every vector: |v|^2 - 2 v.e + |e|^2, summed in the
        order `portable()` computes it, so the logged model picks the same codes."""
        scores = ops.matmul(vectors, -2.0 * ops.transpose(self.codebook)) + ops.sum(ops.square(self.codebook), 1)
        return ops.argmin(scores + ops.sum(ops.square(vectors), 1, keepdims=True), axis=1)

    def decode_codes(self, vectors, quantised):
        """Straight-through quantisation, then the two dense layers back to the latent's shape."""
        straight = vectors + ops.stop_gradient(quantised - vectors)
        h = ops.reshape(straight, (-1, self.num_latents * self.hidden))
        h = self.restore(ops.relu(self.expand(ops.relu(h))))
        return ops.reshape(h, (-1, *self.latent_shape))

    def call(self, features):
        vectors = self.vectors(features)
        return self.decode_codes(vectors, ops.take(self.codebook, self.nearest(vectors), axis=0))

    def train_call(self, features):
        """(decoder input, commitment error, code ids) with the EMA codebook update applied."""
        vectors = self.vectors(features)
        codes = self.nearest(vectors)
        quantised = ops.take(self.codebook, codes, axis=0)
        commitment = ops.mean(ops.square(vectors - ops.stop_gradient(quantised)))
        self.update_codebook(ops.stop_gradient(vectors), codes)
        return self.decode_codes(vectors, quantised), commitment, codes

    def update_codebook(self, vectors, codes):
        onehot = ops.one_hot(codes, self.codebook_size, dtype=vectors.dtype)
        count = self.decay * self.ema_count + (1 - self.decay) * ops.sum(onehot, 0)
        means = self.decay * self.ema_means + (1 - self.decay) * ops.matmul(ops.transpose(onehot), vectors)
        total = ops.sum(count)
        smoothed = (count + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
        self.ema_count.assign(count)
        self.ema_means.assign(means)
        self.codebook.assign(means / smoothed[:, None])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.latent_shape)

    def portable(self) -> keras.Model:
        """The inference path from built-in Keras layers and ops only, with this layer's weights: what the
        logged model holds, so it loads with safe mode on where this project is not installed."""
        inp = keras.Input(self.latent_shape)
        vectors = keras.layers.Reshape((self.num_latents, self.hidden))(
            copied(self.project, keras.layers.Flatten()(inp)))
        squared = keras.layers.Dense(self.codebook_size, dtype=self.dtype_policy, name="code_scores")  # v.(-2e) + |e|^2
        squared.build((None, self.num_latents, self.hidden))
        codebook = ops.convert_to_numpy(self.codebook)
        squared.set_weights([-2.0 * codebook.T, (codebook**2).sum(1)])
        codes = ops.argmin(squared(vectors) + ops.sum(ops.square(vectors), -1, keepdims=True), axis=-1)
        lookup = keras.layers.Embedding(self.codebook_size, self.hidden, dtype=self.dtype_policy, name="codebook")
        lookup.build((None, self.num_latents))
        lookup.set_weights([codebook])
        h = keras.layers.ReLU()(keras.layers.Flatten()(lookup(codes)))
        h = copied(self.restore, keras.layers.ReLU()(copied(self.expand, h)))
        return keras.Model(inp, keras.layers.Reshape(self.latent_shape)(h), name=self.name)

    def get_config(self):
        return super().get_config() | {
            "latent_shape": list(self.latent_shape), "num_latents": self.num_latents,
            "codebook_size": self.codebook_size, "filter_size": self.filter_size, "decay": self.decay,
            "epsilon": self.epsilon}


def copied(dense: keras.layers.Dense, x):
    """`dense` applied to x as a new built-in Dense layer holding a copy of its weights."""
    twin = keras.layers.Dense.from_config(dense.get_config())
    out = twin(x)
    twin.set_weights(dense.get_weights())
    return out


def perplexity(codes, size: int):
    """exp(entropy) of the batch's code usage: how many codes are effectively in use."""
    p = ops.mean(ops.one_hot(codes, size), 0)
    return ops.exp(-ops.sum(p * ops.log(p + 1e-10)))


@dataclass
class VqVae(Regularizer):
    """Reference settings: 2^14 codes, 10 latent vectors, commitment beta 10, EMA decay 0.999."""

    name: str = "vqvae"
    codebook_size: int = 16384
    num_latents: int = 10
    beta: float = 10.0
    decay: float = 0.999
    epsilon: float = 1e-5
    filter_size: int = 512
    quantizer: VectorQuantizer = built()  # the codebook bottleneck, saved with the autoencoder

    def build(self, arch, image_shape, latent_shape, optimizer):
        super().build(arch, image_shape, latent_shape, optimizer)
        self.quantizer = VectorQuantizer(latent_shape, num_latents=self.num_latents, codebook_size=self.codebook_size,
                                         filter_size=self.filter_size, decay=self.decay, epsilon=self.epsilon,
                                         name="vector_quantizer")
        self.quantizer.build((None, *latent_shape))

    def decode_head(self):
        return self.quantizer

    def portable_decode_head(self):
        return self.quantizer.portable()

    def bottleneck(self, features, random) -> Bottleneck:
        code, commitment, ids = self.quantizer.train_call(features)
        terms = {"commitment": self.beta * commitment}
        return Bottleneck(latent=features, code=code, loss_terms=terms,
                          diagnostics=terms | {"perplexity": perplexity(ids, self.codebook_size)})
