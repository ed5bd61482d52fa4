"""Run in a subprocess by tests/test_distribute.py: the CPU split into 2 logical devices (which must
happen before TensorFlow starts), single-device and mirrored steps side by side; prints JSON figures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["ACAI_CPU_DEVICES"] = "2"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from acai.training.distribute import split_cpu  # noqa: E402

split_cpu()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from acai.data.lines import Lines  # noqa: E402
from acai.errors import TrainingError  # noqa: E402
from acai.networks.conv import ConvArchitecture  # noqa: E402
from acai.regularizers.acai import Acai  # noqa: E402
from acai.regularizers.draws import BatchRandom, pair_order  # noqa: E402
from acai.regularizers.dropout import Dropout  # noqa: E402
from acai.regularizers.vae import Vae  # noqa: E402
from acai.tracking.outbox import Outbox  # noqa: E402
from acai.training.autoencoder import Autoencoder  # noqa: E402
from acai.training.callbacks import TrainMetrics  # noqa: E402
from acai.training.distribute import in_pair_order  # noqa: E402

BATCH = 16
# the ways a step draws random numbers: masks (dropout), Gaussian noise and losses summed per batch (VAE; the
# denoising AE's noise and the AAE's prior are the same draw), alpha and the reversed-batch pairs (ACAI, as AAE)
REGULARIZERS = {"dropout": Dropout, "vae": Vae, "acai": Acai}


def make_model(name: str) -> Autoencoder:
    """A tiny model whose three optimizers are plain SGD: Adam's first steps hardly depend on the size of
    the gradient, so only SGD shows whether the replicas' summed gradients are scaled right."""
    keras.utils.set_random_seed(0)
    arch = ConvArchitecture(latent_dim=16, latent_width=2, depth=4)
    model = Autoencoder(arch, REGULARIZERS[name](), (32, 32, 1), 10, seed=0)
    model.compile(jit_compile=False)
    model.optimizer = keras.optimizers.SGD(0.1)
    model.classifier_optimizer = keras.optimizers.SGD(0.1)
    if model.adversary is not None:
        model.adversary_optimizer = keras.optimizers.SGD(0.1)
    model.build_optimizers()
    return model


def train(model: Autoencoder, batches: tf.data.Dataset, steps: int) -> None:
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)


def trainable(model: Autoencoder) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]


def replica_spread(model: Autoencoder) -> float:
    """The largest difference between two replicas' copies of any variable (0: in sync)."""
    spread = 0.0
    for v in model.weights:
        copies = [c.numpy() for c in v.value.values]
        spread = max(spread, *(float(np.max(np.abs(c - copies[0]))) for c in copies))
    return spread


def main() -> dict:
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x, y = Lines(test_size=4 * BATCH).test_set()
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH, drop_remainder=True).repeat()
    out: dict = {"replicas": mirrored.num_replicas_in_sync, "step_difference": {}, "weights_changed": {}}
    for name in REGULARIZERS:
        single = make_model(name)
        start = trainable(single)
        with mirrored.scope():
            multi = make_model(name)
        multi.set_weights(single.get_weights())
        train(single, stream, 1)
        train(multi, in_pair_order(stream, BATCH, 2), 1)
        diffs = [float(np.max(np.abs(a - b))) for a, b in zip(trainable(single), trainable(multi))]
        changed = [float(np.max(np.abs(a - b))) for a, b in zip(start, trainable(single))]
        out["step_difference"][name] = max(diffs)
        out["weights_changed"][name] = max(changed)
        if name == "acai":
            train(multi, in_pair_order(stream, BATCH, 2), 5)
            out["replica_spread_after_6_steps"] = replica_spread(multi)

    # every replica's draws, against one single-device draw of the whole batch
    with mirrored.scope():
        generator = keras.random.SeedGenerator(7)
    per_replica = mirrored.run(tf.function(lambda: BatchRandom(generator, 2).uniform((BATCH // 2, 3))))
    draws = [t.numpy() for t in mirrored.experimental_local_results(per_replica)]
    whole = BatchRandom(keras.random.SeedGenerator(7), 1).uniform((BATCH, 3)).numpy()
    out["replica_draws_equal"] = bool(np.array_equal(draws[0], draws[1]))
    out["draws_match_single_device"] = bool(np.allclose(np.concatenate(draws), whole[pair_order(BATCH, 2)]))
    out["nan_guard"] = nan_guard(mirrored, stream)
    return out


def nan_guard(strategy: tf.distribute.Strategy, stream: tf.data.Dataset) -> str:
    """The run's NaN guard (a callback on the replicas' reduced losses) under the strategy: its message."""
    with strategy.scope():
        model = make_model("acai")
        model.optimizer.learning_rate.assign(1e12)
    guard = TrainMetrics(BATCH, 100, log_every=10**9, outbox=Outbox(Path("unused"), remote=False))
    try:
        model.fit(in_pair_order(stream, BATCH, 2), epochs=1, steps_per_epoch=100, verbose=0, shuffle=False,
                  callbacks=[guard])
    except TrainingError as e:
        return str(e)
    return "no error"


if __name__ == "__main__":
    json.dump(main(), sys.stdout)
