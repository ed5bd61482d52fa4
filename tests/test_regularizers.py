"""Each baseline's defining property, tested on the real step with small networks."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from acai.data.lines import Lines
from acai.errors import ConfigError
from acai.networks.conv import ConvArchitecture
from acai.networks.mlp import MlpArchitecture
from acai.regularizers.aae import Aae, sigmoid_ce
from acai.regularizers.acai import Acai
from acai.regularizers.base import Step
from acai.regularizers.denoising import Denoising
from acai.regularizers.draws import BatchRandom
from acai.regularizers.dropout import Dropout
from acai.regularizers.none import PlainAutoencoder
from acai.regularizers.vae import Vae, gaussian_kl
from acai.regularizers.vqvae import VectorQuantizer, VqVae, perplexity
from acai.training.autoencoder import Autoencoder


@pytest.fixture(scope="module")
def batch():
    x, y = Lines(test_size=16).test_set()
    return tf.constant(x), tf.constant(y)


def make(regularizer, arch=None):
    keras.utils.set_random_seed(0)
    model = Autoencoder(arch or ConvArchitecture(depth=8), regularizer, (32, 32, 1), 10)
    model.compile(jit_compile=False)
    return model


def test_dropout_is_active_in_training_and_off_in_evaluation(batch):
    model = make(Dropout(keep_prob=0.5), MlpArchitecture(latent_dim=64, hidden=[64]))
    features = model.encoder(batch[0])
    bottleneck = model.regularizer.bottleneck(features, model.random)
    latent, code = bottleneck.latent, bottleneck.code
    f, c = features.numpy(), code.numpy()
    dropped = c == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(c[~dropped], 2 * f[~dropped], rtol=1e-5)
    np.testing.assert_array_equal(latent.numpy(), f)
    np.testing.assert_array_equal(model.encode(batch[0]).numpy(), model.encode(batch[0]).numpy())
    np.testing.assert_allclose(model.encode(batch[0]).numpy(), f, atol=1e-6)


def test_denoising_input_differs_from_the_clean_target(batch):
    model = make(Denoising(noise=1.0))
    x = batch[0]
    noisy = model.regularizer.corrupt(x, model.random).numpy()
    assert np.std(noisy - x.numpy()) == pytest.approx(1.0, rel=0.05)
    state = model.seed_generator.state.numpy()
    losses = model.compute_losses(*batch)
    model.seed_generator.state.assign(state)
    noisy = model.regularizer.corrupt(x, model.random)
    expected = np.mean((model.decoder(model.encoder(noisy)).numpy() - x.numpy()) ** 2)
    assert float(losses["reconstruction"]) == pytest.approx(expected, rel=1e-5)


def test_vae_kl_matches_the_closed_form():
    mu = np.array([[0.0, 1.0, -2.0]], np.float32)
    log_var = np.array([[0.0, 0.0, np.log(4.0)]], np.float32)
    expected = 0.5 * ((0 + 0 - 1 + 1) + (0 - 1 + 1 + 1) + (-np.log(4.0) - 1 + 4 + 4))
    assert float(gaussian_kl(mu, log_var)) == pytest.approx(expected, rel=1e-6)
    assert float(gaussian_kl(np.zeros((2, 5)), np.zeros((2, 5)))) == 0.0


def test_vae_outputs_images_in_range_and_interpolates_the_mean(batch):
    model = make(Vae())
    out = model(batch[0]).numpy()
    assert out.min() >= -1 and out.max() <= 1
    features = model.encoder(batch[0])
    np.testing.assert_allclose(model.encode(batch[0]), model.regularizer.mean_head(features), atol=1e-6)
    losses = model.compute_losses(*batch)
    assert float(losses["kl"]) > 0 and float(losses["likelihood"]) > 0
    assert float(losses["loss"]) == pytest.approx(float(losses["likelihood"]) + float(losses["kl"]), rel=1e-5)
    assert any(v is model.regularizer.log_var_head.trainable_variables[0] for v in model.autoencoder_variables())


def test_aae_discriminator_loss_responds_to_prior_versus_latent():
    reg = Aae()
    reg.build(None, (32, 32, 1), (2, 2, 16), lambda lr: keras.optimizers.Adam(1e-3))
    random = BatchRandom(keras.random.SeedGenerator(0), replicas=1)
    far = np.full((64, 2, 2, 16), 4.0, np.float32)
    for _ in range(50):
        with tf.GradientTape() as tape:
            step = Step(x=None, latent=tf.constant(far), reconstruction=None, decode=None, random=random)
            result = reg.adversary_losses(step)
            disc_loss, diag = result.loss, result.diagnostics
        grads = tape.gradient(disc_loss, reg.adversary.trainable_variables)
        reg.adversary_optimizer.apply_gradients(zip(grads, reg.adversary.trainable_variables))
    assert float(diag["disc_accuracy"]) > 0.95
    logit_far = reg.adversary(far).numpy().mean()
    logit_prior = reg.adversary(np.random.default_rng(0).normal(size=far.shape).astype(np.float32)).numpy().mean()
    assert logit_prior > 0 > logit_far


def losses_after(model, steps: int, batch):
    """compute_losses as the step sees it after `steps` updates (the AE optimizer's iteration count)."""
    model.optimizer.iterations.assign(steps)
    return model.compute_losses(*batch)


def fooled_loss(model, x) -> float:
    """The unweighted AE adversarial term: its codes labelled 'prior' by the discriminator."""
    return float(sigmoid_ce(model.adversary(model.encode(x, training=True)), 1.0))


def test_aae_delay_keeps_the_adversarial_term_off_while_the_discriminator_trains(batch):
    """`delay_samples`: the AE's adversarial weight is 0 until that many images (iterations x batch) have
    been trained on, then `weight`; the discriminator's own loss is there from the first step. Also under
    tf.function with XLA, where the count is read from the optimizer's variable."""
    x, _ = batch
    model = make(Aae(weight=2.0, delay_samples=40 * len(x)), MlpArchitecture(latent_dim=16, hidden=[32]))
    assert "adversarial_weight" in model.diagnostic_names
    first = losses_after(model, 0, batch)
    assert float(first["adversarial_weight"]) == 0.0 and float(first["adversarial"]) == 0.0
    assert float(first["adversary"]) > 0  # the discriminator learns during the delay
    assert float(first["loss"]) == pytest.approx(float(first["likelihood"]), rel=1e-6)
    compiled = tf.function(model.compute_losses, jit_compile=True)
    for steps, weight in [(10, 0.0), (39, 0.0), (40, 2.0), (41, 2.0), (400, 2.0)]:
        model.optimizer.iterations.assign(steps)
        for losses in (model.compute_losses(*batch), compiled(*batch)):
            assert float(losses["adversarial_weight"]) == weight
            assert float(losses["adversarial"]) == pytest.approx(weight * fooled_loss(model, x), rel=1e-4)


def test_aae_ramp_after_the_delay_grows_the_weight_linearly(batch):
    """`ramp_samples`: after the delay the weight grows linearly to `weight` instead of in one step."""
    x, _ = batch
    model = make(Aae(weight=2.0, delay_samples=40 * len(x), ramp_samples=20 * len(x)),
                 MlpArchitecture(latent_dim=16, hidden=[32]))
    compiled = tf.function(model.compute_losses, jit_compile=True)
    for steps, weight in [(0, 0.0), (39, 0.0), (40, 0.0), (45, 0.5), (50, 1.0), (60, 2.0), (600, 2.0)]:
        model.optimizer.iterations.assign(steps)
        losses = compiled(*batch)
        assert float(losses["adversarial_weight"]) == pytest.approx(weight, abs=1e-6)
        assert float(losses["adversarial"]) == pytest.approx(weight * fooled_loss(model, x), rel=1e-4, abs=1e-7)
    with pytest.raises(ConfigError, match="ramp_samples"):
        Aae(ramp_samples=-1)


def test_aae_default_has_no_delay_and_the_full_weight_from_the_first_step(batch):
    """Off by default: the reference's step, the same at every iteration and with no extra metric."""
    x, _ = batch
    assert Aae().delay_samples == 0
    model = make(Aae(weight=2.0), MlpArchitecture(latent_dim=16, hidden=[32]))
    assert model.diagnostic_names == ("adversarial", "disc_latent", "disc_prior", "disc_accuracy")
    for steps in (0, 1000):
        losses = losses_after(model, steps, batch)
        assert "adversarial_weight" not in losses
        assert float(losses["adversarial"]) == pytest.approx(2.0 * fooled_loss(model, x), rel=1e-4)
        assert float(losses["adversarial"]) > 0


def test_the_step_counts_the_images_trained_on(batch):
    """Step.samples, what a schedule reads, is the AE optimizer's iterations times the batch: 0 before the
    first update, one batch more after each `fit` step."""
    model = make(Aae(delay_samples=10**6), MlpArchitecture(latent_dim=16, hidden=[32]))
    x, y = batch
    assert float(model.samples_seen(x)) == 0.0
    model.fit(x, y, batch_size=len(x) // 2, epochs=1, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations) == 2
    assert float(model.samples_seen(x[: len(x) // 2])) == len(x)


def corrupted(reg, x, samples) -> np.ndarray:
    """The encoder input of a denoising step, from a fresh seeded draw (the same noise every call)."""
    return reg.corrupt(tf.constant(x), BatchRandom(keras.random.SeedGenerator(0), replicas=1), samples).numpy()


def test_denoising_warmup_ramps_the_noise_from_zero_and_the_default_is_the_reference(batch):
    x = batch[0].numpy()
    noise = corrupted(Denoising(noise=1.0), x, 0.0) - x  # the reference: full noise from the first step
    assert noise.std() == pytest.approx(1.0, rel=0.05)
    np.testing.assert_array_equal(corrupted(Denoising(noise=1.0), x, 1e6) - x, noise)
    ramped = Denoising(noise=1.0, warmup_samples=1000)
    np.testing.assert_array_equal(corrupted(ramped, x, 0.0), x)  # clean inputs at the first step
    np.testing.assert_allclose(corrupted(ramped, x, 250.0) - x, 0.25 * noise, atol=1e-5)
    np.testing.assert_allclose(corrupted(ramped, x, 1000.0) - x, noise, atol=1e-5)
    np.testing.assert_allclose(corrupted(ramped, x, 5000.0) - x, noise, atol=1e-5)
    with pytest.raises(ConfigError, match="warmup_samples"):
        Denoising(warmup_samples=-1)
    with pytest.raises(ConfigError, match="delay_samples"):
        Aae(delay_samples=-1)


def test_denoising_warmup_follows_the_training_step_count(batch):
    """Through the step: clean encoder input at iteration 0 (the loss is the plain AE's), noisy after."""
    model = make(Denoising(noise=1.0, warmup_samples=4 * len(batch[0])), MlpArchitecture(latent_dim=16, hidden=[32]))
    plain = make(PlainAutoencoder(), MlpArchitecture(latent_dim=16, hidden=[32]))
    first = losses_after(model, 0, batch)
    assert float(first["reconstruction"]) == pytest.approx(float(plain.compute_losses(*batch)["reconstruction"]),
                                                           rel=1e-6)
    assert float(losses_after(model, 4, batch)["reconstruction"]) != pytest.approx(float(first["reconstruction"]),
                                                                                    rel=1e-3)


def test_vq_codes_are_codebook_members_and_ema_moves_used_codes():
    keras.utils.set_random_seed(0)
    vq = VectorQuantizer((2, 2, 4), num_latents=3, codebook_size=32, filter_size=16, decay=0.9)
    vq.build((None, 2, 2, 4))
    features = np.random.default_rng(0).normal(size=(8, 2, 2, 4)).astype(np.float32)
    vectors = vq.vectors(features)
    codes = vq.nearest(vectors).numpy()
    book = vq.codebook.numpy()
    d = ((vectors.numpy()[:, None] - book[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(codes, d.argmin(1))
    used = codes[0]
    assigned = vectors.numpy()[codes == used].mean(0)
    before = np.linalg.norm(book[used] - assigned)
    for _ in range(5):
        vq.update_codebook(vectors, ops.convert_to_tensor(codes))
    after = np.linalg.norm(vq.codebook.numpy()[used] - assigned)
    assert after < before


def test_vq_codebook_starts_as_the_references_uniform_unit_scaling():
    """TF1's uniform_unit_scaling_initializer on [1, 1, 2^14, hidden]: U(-b, b), b = sqrt(3 / 2^14)."""
    keras.utils.set_random_seed(0)
    vq = VectorQuantizer((2, 2, 16), codebook_size=16384)
    vq.build((None, 2, 2, 16))
    book = vq.codebook.numpy()
    bound = np.sqrt(3 / 16384)
    assert book.shape == (16384, 64)
    assert np.abs(book).max() <= bound and np.abs(book).max() > 0.99 * bound
    assert book.std() == pytest.approx(bound / np.sqrt(3), rel=0.01)  # the std of U(-b, b)
    np.testing.assert_array_equal(vq.ema_means.numpy(), book)


def test_vqvae_perplexity_counts_the_codes_in_use(batch):
    """exp(entropy) of code usage: k equally used codes give k, one code 1; and the step's value is
    the perplexity of the codes its nearest-neighbour search really picked."""
    assert float(perplexity(np.zeros(40, np.int64), 64)) == pytest.approx(1.0)
    assert float(perplexity(np.arange(40) % 8, 64)) == pytest.approx(8.0, rel=1e-5)
    assert float(perplexity(np.array([0, 0, 0, 1]), 64)) == pytest.approx(np.exp(-(0.75 * np.log(0.75)
                                                                                 + 0.25 * np.log(0.25))), rel=1e-5)
    model = make(VqVae(codebook_size=64, num_latents=2, filter_size=32))
    quantizer = model.regularizer.quantizer
    codes = quantizer.nearest(quantizer.vectors(model.encoder(batch[0]))).numpy()
    losses = model.compute_losses(*batch)
    assert float(losses["commitment"]) > 0
    assert float(losses["perplexity"]) == pytest.approx(float(perplexity(codes, 64)), rel=1e-5)
    assert 1 - 1e-5 <= float(losses["perplexity"]) <= len(np.unique(codes)) + 1e-4


REGULARIZERS = {"none": PlainAutoencoder, "dropout": Dropout, "denoising": Denoising, "vae": Vae, "aae": Aae,
                "vqvae": lambda: VqVae(codebook_size=64, num_latents=2, filter_size=32), "acai": Acai}


@pytest.mark.parametrize("name", REGULARIZERS)
def test_latent_classifier_trains_on_the_clean_evaluated_code(batch, name):
    """For every model the classifier's training input is the code it is evaluated on: encode(x) of the
    clean image (VAE: the mean; dropout: before dropout; VQ-VAE: before quantisation). For the
    denoising AE that is the reference's `classifier(encoder(x))`, not the code of the noisy input."""
    x, y = batch
    model = make(REGULARIZERS[name]())
    losses = model.compute_losses(x, y)
    logits = model.classifier(model.encode(x))
    expected = np.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    assert float(losses["classifier"]) == pytest.approx(float(expected), rel=1e-5)


EXPECTED_DIAGNOSTICS = {"none": (), "dropout": (), "denoising": (), "vae": ("kl", "likelihood"),
                        "aae": ("adversarial", "disc_latent", "disc_prior", "disc_accuracy"),
                        "vqvae": ("commitment", "perplexity"),
                        "acai": ("adversarial", "critic", "critic_alpha", "critic_real")}


@pytest.mark.parametrize("name", REGULARIZERS)
def test_the_logged_diagnostics_are_the_keys_of_the_hooks_results(batch, name):
    """The step tracks (train/<name>) exactly the diagnostics the hooks' results carry, read off one forward
    pass at build time that changes nothing: the seed stream, weights and VQ-VAE codebook are as before it;
    what `build` creates is declared as fields of the regularizer (no undeclared attribute)."""
    import dataclasses

    keras.utils.set_random_seed(0)
    model = make(REGULARIZERS[name]())
    assert model.diagnostic_names == EXPECTED_DIAGNOSTICS[name]
    classifier = ("classifier", "classifier_accuracy")
    assert tuple(model.trackers) == ("loss", "reconstruction", *classifier, *EXPECTED_DIAGNOSTICS[name])
    state = [v.numpy().copy() for v in model.variables] + [model.seed_generator.state.numpy().copy()]
    assert model.traced_diagnostic_names() == model.diagnostic_names
    after = [v.numpy() for v in model.variables] + [model.seed_generator.state.numpy()]
    assert all(np.array_equal(a, b) for a, b in zip(state, after, strict=True))
    losses, diagnostics = model.forward(*batch, model.random)
    assert tuple(diagnostics) == model.diagnostic_names and set(diagnostics) <= set(losses)
    declared = {f.name for f in dataclasses.fields(model.regularizer)}
    assert set(vars(model.regularizer)) <= declared
