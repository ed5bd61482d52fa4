"""The paper's conv networks and the seed's MLPs: shapes, initialiser, activations, safe-mode saving."""

import math

import keras
import numpy as np
import pytest

from acai.errors import ConfigError
from acai.networks.conv import ConvArchitecture
from acai.networks.layers import he_modified_normal
from acai.networks.mlp import MlpArchitecture


def out_shape(model):
    return tuple(model(np.zeros((1, *model.input_shape[1:]), np.float32)).shape[1:])


def conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_lines_conv_matches_the_reference_channels():
    arch = ConvArchitecture(latent_dim=64, latent_width=2, depth=16)
    enc = arch.encoder((32, 32, 1))
    assert [c.filters for c in conv_layers(enc)] == [16, 16, 16, 32, 32, 64, 64, 128, 128, 256, 16]
    assert conv_layers(enc)[0].kernel_size == (1, 1)
    assert out_shape(enc) == (2, 2, 16)
    dec = arch.decoder((32, 32, 1))
    assert out_shape(dec) == (32, 32, 1)
    assert [c.filters for c in conv_layers(dec)] == [128, 128, 64, 64, 32, 32, 16, 16, 16, 1]
    assert not any("Normalization" in type(layer).__name__ for layer in enc.layers + dec.layers)
    critic = arch.critic((32, 32, 1))
    assert critic(np.zeros((3, 32, 32, 1), np.float32)).shape == (3,)


def test_mnist_conv_latent_4x4():
    arch = ConvArchitecture(latent_dim=32, latent_width=4)
    assert out_shape(arch.encoder((32, 32, 1))) == (4, 4, 2)


def test_leaky_relu_slope_is_point_two():
    enc = ConvArchitecture().encoder((32, 32, 1))
    slopes = {layer.negative_slope for layer in enc.layers if isinstance(layer, keras.layers.LeakyReLU)}
    assert slopes == {0.2}


def test_initialiser_std_has_no_factor_two():
    keras.utils.set_random_seed(0)
    w = keras.ops.convert_to_numpy(he_modified_normal()((3, 3, 64, 256)))
    assert w.std() == pytest.approx(1 / math.sqrt(1.04 * 3 * 3 * 64), rel=0.02)


@pytest.mark.parametrize("arch", [ConvArchitecture(latent_dim=16), MlpArchitecture(latent_dim=16)])
def test_latent_dim_16_on_both_models(arch):
    shape = arch.latent_shape((32, 32, 1))
    assert math.prod(shape) == 16
    assert math.prod(out_shape(arch.encoder((32, 32, 1)))) == 16


def test_latent_size_that_does_not_fit_conv_names_the_sizes_that_do():
    with pytest.raises(ConfigError, match=r"model.latent_dim=50.*multiple of 4: 4, 8, 16"):
        ConvArchitecture(latent_dim=50, latent_width=2).encoder((32, 32, 1))


def test_models_round_trip_in_safe_mode(tmp_path):
    arch = ConvArchitecture()
    critic = arch.critic((32, 32, 1))
    path = tmp_path / "critic.keras"
    critic.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), critic(x), atol=1e-6)


def test_models_logged_with_the_former_custom_initialiser_still_load(tmp_path):
    """Runs logged before the initialiser became Keras' VarianceScaling name `acai>HeModifiedNormal`."""
    from acai.networks.layers import LegacyHeModifiedNormal

    old = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer=LegacyHeModifiedNormal())])
    path = tmp_path / "old.keras"
    old.save(path)
    assert "acai>HeModifiedNormal" in __import__("zipfile").ZipFile(path).read("config.json").decode()
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(loaded(x), old(x))
    keras.utils.set_random_seed(0)
    w = keras.ops.convert_to_numpy(LegacyHeModifiedNormal()((3, 3, 64, 256)))
    assert w.std() == pytest.approx(1 / math.sqrt(1.04 * 3 * 3 * 64), rel=0.02)
