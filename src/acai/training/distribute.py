"""Several devices, one run (`trainer.strategy=mirrored`): the same step as on one device.

tf.distribute's MirroredStrategy splits each global batch of `trainer.batch_size` into contiguous
slices, one per replica, and Keras *sums* the replicas' gradients. Three things keep the step equal to
the single-device step at the same global batch:

- each loss is scaled by 1/replicas (`Autoencoder.train_step`), so the summed gradients are the
  gradients of the global-batch mean;
- ACAI and the AAE pair example i with example B-1-i of the batch. Before it is split, the global batch
  is put in `pair_order`, which gives every replica whole pairs: the first half of its slice is a run of
  the batch's start, the second half the mirror run at its end, so reversing the slice pairs exactly the
  examples that reversing the whole batch pairs;
- `BatchRandom` draws the random numbers of the whole global batch on every replica (from the same
  mirrored seed) and keeps the rows of its own examples: replicas draw different numbers, and together
  the very numbers of a single-device step.
"""

from __future__ import annotations

import os

import tensorflow as tf

from acai.errors import ConfigError
from acai.regularizers.draws import pair_order

CPU_DEVICES = "ACAI_CPU_DEVICES"  # split the CPU into N logical devices (tests, trying mirrored on a laptop)


def split_cpu() -> None:
    """`ACAI_CPU_DEVICES=N`: N logical CPU devices, so MirroredStrategy can be tried without GPUs. Must run
    before TensorFlow initialises its devices (the first op); later it is refused by TF, and ignored here."""
    count = os.environ.get(CPU_DEVICES)
    if not count:
        return
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(CPU_DEVICES, count, "must be a whole number of logical CPU devices >= 1")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(count))
    except RuntimeError:  # TensorFlow already initialised (a second run in one process): keep what it has
        pass


def make_strategy(name: str, batch_size: int) -> tf.distribute.Strategy:
    """The strategy for `trainer.strategy` (checked by TrainerConfig); `none` is TensorFlow's default (one
    device, a no-op scope)."""
    if name == "none":
        return tf.distribute.get_strategy()
    split_cpu()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        print(f"Warning: trainer.strategy=mirrored sees one device ({devices[0]}): training on it as with "
              "trainer.strategy=none")
    if batch_size % (2 * replicas):
        raise ConfigError("trainer.batch_size", batch_size,
                          f"must be a multiple of 2 x {replicas} replicas under trainer.strategy=mirrored "
                          "(each replica takes whole interpolation pairs)")
    return strategy


def in_pair_order(batches: tf.data.Dataset, batch_size: int, replicas: int) -> tf.data.Dataset:
    """The training stream with every batch in `pair_order` (unchanged on one replica)."""
    if replicas == 1:
        return batches
    order = tf.constant(pair_order(batch_size, replicas))
    return batches.map(lambda x, y: (tf.gather(x, order), tf.gather(y, order)),
                       num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
