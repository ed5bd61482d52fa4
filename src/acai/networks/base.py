"""The contract between a model family (conv, mlp) and the rest of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import keras


@dataclass
class Architecture:
    """A model config that builds its networks; Hydra instantiates it from `conf/model/*.yaml`."""

    _target_: str = ""
    name: str = ""
    latent_dim: int = 32

    #: Whether XLA speeds this family's step up on a CPU (`trainer.jit_compile=auto`); measured by
    #: benchmarks/throughput.py --xla. XLA is always used on a GPU.
    xla_on_cpu = False

    def image_size(self) -> int | None:
        """The side length the model wants its (square) images padded to, or None for native size."""
        return None

    def latent_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, ...]:
        """The encoder's output shape; raises ConfigError when the latent size does not fit."""
        raise NotImplementedError

    def encoder(self, image_shape: tuple[int, int, int], name: str = "encoder") -> keras.Model:
        raise NotImplementedError

    def decoder(self, image_shape: tuple[int, int, int], name: str = "decoder") -> keras.Model:
        raise NotImplementedError

    def critic(self, image_shape: tuple[int, int, int], depth: int | None = None, name: str = "critic") -> keras.Model:
        """A network mapping an image to one scalar per example (ACAI's critic)."""
        raise NotImplementedError
