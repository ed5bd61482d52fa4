"""One keras.Model that trains any regularized autoencoder with a single GradientTape step.

Every loss comes from one forward pass; the autoencoder's, the adversary's and the latent classifier's
Adam optimizers are all applied on the same batch, as the reference's `tf.group` of three train ops.
`export()` gives the plain functional autoencoder (`encode` -> `decode`) that is saved and logged.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from acai.networks.base import Architecture
from acai.networks.precision import with_precision
from acai.regularizers.base import Regularizer, Step, mse
from acai.regularizers.draws import BatchRandom


def adam(lr: float, epsilon: float) -> keras.optimizers.Adam:
    """TF1's AdamOptimizer defaults: beta1 0.9, beta2 0.999, epsilon 1e-8 (Keras defaults to 1e-7)."""
    return keras.optimizers.Adam(learning_rate=lr, beta_1=0.9, beta_2=0.999, epsilon=epsilon)


def chain(name: str, input_shape: tuple[int, ...], *parts: keras.layers.Layer | None) -> keras.Model:
    """A functional model applying the given parts in order (None parts are skipped)."""
    inp = keras.Input(input_shape)
    out = inp
    for part in parts:
        if part is not None:
            out = part(out)
    return keras.Model(inp, out, name=name)


class Autoencoder(keras.Model):
    """Encoder, decoder, regularizer hooks and a stop-gradient latent classifier, trained together."""

    def __init__(self, arch: Architecture, regularizer: Regularizer, image_shape: tuple[int, int, int],
                 num_classes: int, *, lr: float = 1e-4, epsilon: float = 1e-8, seed: int = 0,
                 precision: str = "float32"):
        super().__init__(name="acai_trainer")
        arch = with_precision(arch, precision)
        self.image_shape = tuple(image_shape)
        self.latent_shape = tuple(arch.latent_shape(self.image_shape))
        self.regularizer = regularizer
        self.encoder = arch.encoder(self.image_shape)
        self.decoder = arch.decoder(self.image_shape)
        regularizer.build(arch, self.image_shape, self.latent_shape, lambda rate: adam(rate, epsilon))
        self.adversary = regularizer.adversary
        self.adversary_optimizer = regularizer.adversary_optimizer
        self.latent_head = regularizer.latent_head()
        self.decode_head = regularizer.decode_head()
        self.output_head = regularizer.output_head()
        self.extra_layers = regularizer.extra_layers()
        self.encode_model = chain("encode", self.image_shape, self.encoder, self.latent_head)
        self.decode_model = chain("decode", self.latent_shape, self.decode_head, self.decoder, self.output_head)
        self.classifier = None if num_classes == 0 else keras.Sequential(  # none on unlabelled data
            [keras.Input(self.latent_shape), keras.layers.Flatten(), keras.layers.Dense(num_classes)],
            name="latent_classifier",
        )
        self.classifier_optimizer = adam(lr, epsilon)
        self.seed_generator = keras.random.SeedGenerator(seed)
        # built inside a strategy's scope: its replicas each take a slice of the batch (training/distribute.py)
        self.replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.random = BatchRandom(self.seed_generator, self.replicas)
        self.lr, self.epsilon = lr, epsilon
        classifier = ("classifier", "classifier_accuracy") if self.classifier is not None else ()
        self.diagnostic_names = self.traced_diagnostic_names()
        names = ("loss", "reconstruction", *classifier, *self.diagnostic_names)
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    # ---- inference paths (what is saved) ----
    def encode(self, x, training: bool = False):
        return self.encode_model(x, training=training)

    def decode(self, z, training: bool = False):
        return self.decode_model(z, training=training)

    def call(self, x, training: bool = False):
        return self.decode(self.encode(x, training), training)

    def export(self) -> keras.Model:
        """The functional autoencoder x -> decode(encode(x)), with `encode`/`decode` reachable by name,
        made of built-in Keras layers only (it loads where this project is not installed)."""
        decode = chain("decode", self.latent_shape, self.regularizer.portable_decode_head(), self.decoder,
                       self.output_head)
        inp = keras.Input(self.image_shape, name="image")
        return keras.Model(inp, decode(self.encode_model(inp)), name="autoencoder")

    @property
    def metrics(self):
        return list(self.trackers.values())

    def autoencoder_variables(self) -> list[tf.Variable]:
        """Encoder, decoder, heads and the regularizer's extra layers: what the AE optimizer updates."""
        variables = self.encode_model.trainable_variables + self.decode_model.trainable_variables
        for layer in self.regularizer.extra_layers():
            variables += layer.trainable_variables
        unique = {id(v): v for v in variables}
        return list(unique.values())

    def compile(self, jit_compile: bool | str = "auto", **kwargs):
        super().compile(optimizer=adam(self.lr, self.epsilon), jit_compile=jit_compile, **kwargs)

    def build_optimizers(self) -> None:
        """Create every optimizer's slots before the first step (needed to restore checkpoints)."""
        self.optimizer.build(self.autoencoder_variables())
        if self.classifier is not None:
            self.classifier_optimizer.build(self.classifier.trainable_variables)
        if self.adversary is not None:
            self.adversary_optimizer.build(self.adversary.trainable_variables)

    # ---- the step ----
    def compute_losses(self, x, y):
        """One forward pass: every loss and diagnostic of the step, in a dict."""
        return self.forward(x, y, self.random)[0]

    def forward(self, x, y, random: BatchRandom) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        """One forward pass: (every loss and diagnostic of the step, the regularizer's diagnostics alone).
        `y` None leaves out the latent classifier."""
        reg = self.regularizer
        samples = self.samples_seen(x)
        encoder_input = reg.corrupt(x, random, samples)
        features = self.encoder(encoder_input, training=True)
        bottleneck = reg.bottleneck(features, random)
        raw = self.decoder(bottleneck.code, training=True)
        reconstruction = raw if self.output_head is None else self.output_head(raw)
        likelihood = reg.reconstruction_loss(x, raw)
        losses = {"reconstruction": mse(x, reconstruction), "likelihood": likelihood.loss}
        step = Step(x=x, latent=bottleneck.latent, reconstruction=reconstruction,
                    decode=lambda z: self.decode(z, training=True), random=random,
                    samples=samples)
        adversary = reg.adversary_losses(step)
        losses["loss"] = (losses["likelihood"] + sum(bottleneck.loss_terms.values())
                          + sum(adversary.autoencoder_terms.values()))
        losses["adversary"] = adversary.loss
        if self.classifier is not None and y is not None:
            clean = ops.stop_gradient(self.classifier_latent(x, encoder_input, bottleneck.latent))
            logits = self.classifier(clean, training=True)
            labels = ops.cast(y, "int32")
            losses["classifier"] = ops.mean(
                keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
            losses["classifier_accuracy"] = ops.mean(ops.cast(ops.argmax(logits, -1) == labels, "float32"))
        diagnostics = bottleneck.diagnostics | likelihood.diagnostics | adversary.diagnostics
        losses.update(diagnostics)
        return losses, diagnostics

    def traced_diagnostic_names(self) -> tuple[str, ...]:
        """The names of the regularizer's diagnostics (logged as train/<name>), in the order the step
        gives them: the keys of its hooks' results, read off one eager forward pass on a 2-image batch.
        The pass runs in a `keras.StatelessScope`, which keeps every Keras variable it would assign (a
        codebook, a seed generator's state) unchanged; its draws use a one-replica `BatchRandom`."""
        with keras.StatelessScope():
            x = ops.zeros((2, *self.image_shape), "float32")
            return tuple(self.forward(x, None, BatchRandom(self.seed_generator, 1))[1])

    def samples_seen(self, x) -> tf.Tensor:
        """Images trained on before this batch: the AE optimizer's step count (restored with a checkpoint,
        the same on every replica) times the global batch (this replica's slice x the replicas)."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:  # not compiled: no step taken yet
            return ops.zeros((), "float32")
        global_batch = ops.cast(ops.shape(x)[0] * self.replicas, "float32")
        return ops.cast(optimizer.iterations, "float32") * global_batch

    def classifier_latent(self, x, encoder_input, latent):
        """What the latent classifier trains on: the code of the *clean* input, as it is evaluated.

        Equal to the step's latent unless the regularizer corrupts the encoder input (denoising), where
        the reference's classifier reads `encoder(x)`, not `encoder(x + noise)` (its denoising.py).
        """
        return latent if encoder_input is x else self.encode(x, training=True)

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape(persistent=True) as tape:
            losses = self.compute_losses(x, y)
            # Keras sums the replicas' gradients: scaled, they are the gradients of the global-batch mean
            scaled = {k: losses[k] / self.replicas if self.replicas > 1 else losses[k]
                      for k in ("loss", "classifier", "adversary") if losses.get(k) is not None}
        ae_vars = self.autoencoder_variables()
        self.optimizer.apply_gradients(zip(tape.gradient(scaled["loss"], ae_vars), ae_vars))
        if self.classifier is not None:
            clf_vars = self.classifier.trainable_variables
            self.classifier_optimizer.apply_gradients(zip(tape.gradient(scaled["classifier"], clf_vars), clf_vars))
        if losses["adversary"] is not None:
            adv_vars = self.adversary.trainable_variables
            self.adversary_optimizer.apply_gradients(zip(tape.gradient(scaled["adversary"], adv_vars), adv_vars))
        del tape
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}
