"""The ACAI step against a hand computation of the reference formulas, and the update it applies."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from acai.data.lines import Lines
from acai.networks.conv import ConvArchitecture
from acai.regularizers.acai import Acai, mixing_alpha
from acai.regularizers.none import PlainAutoencoder
from acai.training.autoencoder import Autoencoder


def make_model(regularizer, seed=0, precision="float32"):
    keras.utils.set_random_seed(seed)
    arch = ConvArchitecture(latent_dim=64, latent_width=2, depth=8)
    model = Autoencoder(arch, regularizer, (32, 32, 1), 10, seed=seed, precision=precision)
    model.compile(jit_compile=False)
    return model


@pytest.fixture(scope="module")
def batch():
    x, y = Lines(test_size=16).test_set()
    return tf.constant(x), tf.constant(y)


def numpy_of(t):
    return keras.ops.convert_to_numpy(t)


def test_losses_match_the_reference_formulas(batch):
    x, y = batch
    model = make_model(Acai())
    state = numpy_of(model.seed_generator.state)
    losses = model.compute_losses(x, y)
    model.seed_generator.state.assign(state)
    alpha = numpy_of(mixing_alpha(16, 4, model.random)).reshape(-1)
    assert np.all((0 <= alpha) & (alpha <= 0.5))

    xn = x.numpy()
    z = numpy_of(model.encoder(x))
    x_rec = numpy_of(model.decoder(z))
    z_mix = alpha[:, None, None, None] * z + (1 - alpha[:, None, None, None]) * z[::-1]
    d_mix = numpy_of(model.adversary(model.decoder(z_mix)))
    d_real = numpy_of(model.adversary(x_rec + 0.2 * (xn - x_rec)))
    recon = np.mean((xn - x_rec) ** 2)
    expect_critic = np.mean((d_mix - alpha) ** 2) + np.mean(d_real**2)
    expect_ae = recon + 0.5 * np.mean(d_mix**2)
    assert float(losses["reconstruction"]) == pytest.approx(recon, rel=1e-5)
    assert float(losses["adversary"]) == pytest.approx(expect_critic, rel=1e-4)
    assert float(losses["loss"]) == pytest.approx(expect_ae, rel=1e-5)


def test_one_step_updates_autoencoder_critic_and_classifier_together(batch):
    model = make_model(Acai())
    groups = {"ae": model.autoencoder_variables(), "critic": model.adversary.trainable_variables,
              "classifier": model.classifier.trainable_variables}
    before = {k: [v.numpy().copy() for v in vs] for k, vs in groups.items()}
    model.train_on_batch(*batch)
    for k, vs in groups.items():
        assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before[k], vs)), k
    assert int(model.optimizer.iterations) == 1 and int(model.adversary_optimizer.iterations) == 1
    assert int(model.classifier_optimizer.iterations) == 1
    assert model.adversary_optimizer.epsilon == 1e-8 and model.optimizer.epsilon == 1e-8


def test_classifier_gradient_does_not_reach_the_encoder(batch):
    model = make_model(PlainAutoencoder())
    with tf.GradientTape() as tape:
        losses = model.compute_losses(*batch)
    grads = tape.gradient(losses["classifier"], model.encoder.trainable_variables)
    assert all(g is None for g in grads)
    with tf.GradientTape() as tape:
        losses = model.compute_losses(*batch)
    assert any(g is not None for g in tape.gradient(losses["classifier"], model.classifier.trainable_variables))


def test_plain_autoencoder_has_no_adversary(batch):
    model = make_model(PlainAutoencoder())
    losses = model.compute_losses(*batch)
    assert model.adversary is None and losses["adversary"] is None
    assert float(losses["loss"]) == pytest.approx(float(losses["reconstruction"]))


@pytest.mark.parametrize("regularizer", [Acai(advweight=0.0), PlainAutoencoder()], ids=["acai", "none"])
def test_xla_step_applies_the_same_update_as_the_plain_step(batch, regularizer):
    """The XLA-compiled step (the GPU default) leaves the same weights after two updates as the plain one.

    XLA draws other random numbers from the same seed (its stateless RNG picks another algorithm), so
    for ACAI the term that depends on alpha is switched off (advweight 0): then the autoencoder and the
    classifier must match exactly, and the critic, which still sees alpha, must have moved and stay finite.
    """
    models = []
    for jit in (False, True):
        model = make_model(regularizer)
        model.compile(jit_compile=jit)
        for _ in range(2):
            model.train_on_batch(*batch)
        models.append(model)
    plain, xla = models
    initial = make_model(regularizer)
    groups = {"autoencoder": lambda m: m.autoencoder_variables(), "classifier": lambda m: m.classifier.variables}
    for name, variables in groups.items():
        moved = False
        for a, b, w0 in zip(variables(plain), variables(xla), variables(initial), strict=True):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
            moved |= not np.array_equal(a.numpy(), w0.numpy())
        assert moved, name
    if plain.adversary is not None:
        assert all(np.all(np.isfinite(a.numpy())) for a in xla.adversary.variables)
        assert any(not np.array_equal(a.numpy(), w0.numpy())
                   for a, w0 in zip(xla.adversary.variables, initial.adversary.variables, strict=True))


def test_mixed_bfloat16_computes_networks_in_bfloat16_and_losses_as_float32(batch):
    """Same seed, same initial weights: the bfloat16 step's losses are the float32 ones to bfloat16
    precision (8 mantissa bits), every variable and loss stays float32, and training still learns."""
    x, y = batch
    full, mixed = make_model(Acai()), make_model(Acai(), precision="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    for network in (mixed.encoder, mixed.decoder, mixed.adversary):
        convs = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]
        assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs), network.name
        assert network.outputs[0].dtype == "float32", network.name
    assert all(v.dtype == "float32" for v in mixed.trainable_variables)
    for a, b in zip(full.trainable_variables, mixed.trainable_variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    state = numpy_of(full.seed_generator.state)
    want = full.compute_losses(x, y)
    mixed.seed_generator.state.assign(state)
    got = mixed.compute_losses(x, y)
    for key in ("reconstruction", "classifier", "loss", "adversary"):
        assert got[key].dtype == "float32", key
        assert float(got[key]) == pytest.approx(float(want[key]), rel=3e-2), key
    assert float(got["reconstruction"]) != float(want["reconstruction"])  # bfloat16 really was used
    first = mixed.train_on_batch(x, y, return_dict=True)["reconstruction"]
    for _ in range(30):
        mixed.reset_metrics()
        last = mixed.train_on_batch(x, y, return_dict=True)["reconstruction"]
    assert last < 0.8 * first
