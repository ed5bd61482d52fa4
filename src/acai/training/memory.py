"""Refuse, before training, a batch whose activations cannot fit in this machine's memory.

Without this a huge `trainer.batch_size` builds, starts a run and is then killed by the kernel's OOM
killer with no message. The estimate is deliberately rough (activations of every network pass of the
step, kept for the backward pass, times 2 for their gradients): it exists to catch sizes off
by orders of magnitude, not to tune a batch.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras

from acai.errors import ConfigError

OVERHEAD = 2  # forward activations kept for the backward pass + their gradients


def activations_per_image(network: keras.Model | None) -> int:
    """Elements that one image's forward pass through `network` produces, over all its layers."""
    if network is None:
        return 0
    total = 0
    for layer in network.layers:
        if isinstance(layer, keras.Model):
            total += activations_per_image(layer)
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        total += math.prod(d for d in shape[1:] if d is not None)
    return total


def step_bytes(model, batch_size: int) -> int:
    """Host bytes the training step needs for its activations at this batch size (float32)."""
    passes = 2 if model.adversary is not None else 1  # ACAI decodes and critiques twice
    per_image = (activations_per_image(model.encoder) + passes * activations_per_image(model.decoder)
                 + 2 * activations_per_image(model.adversary))
    return batch_size * per_image * 4 * OVERHEAD


def available_bytes() -> int | None:
    """What this process can still use: MemAvailable, capped by a cgroup limit if one is set."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            available = min(available, int(limit))
    except OSError:
        pass
    return available


def check_fits(model, batch_size: int) -> None:
    """Host memory only: on a GPU the activations live in device memory, which TensorFlow reports itself."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    available = available_bytes()
    need = step_bytes(model, batch_size)
    if available is None or need <= available:
        return
    fits = max(1, int(batch_size * available / need))
    raise ConfigError("trainer.batch_size", batch_size,
                      f"needs about {need / 2**30:.1f} GiB for the step's activations, more than the "
                      f"{available / 2**30:.1f} GiB available here; about {fits} or fewer fits")
