"""`regularizer=none`: the plain autoencoder baseline (reference `baseline.py`): MSE only."""

from dataclasses import dataclass

from acai.regularizers.base import Regularizer


@dataclass
class PlainAutoencoder(Regularizer):
    """Every hook keeps the base behaviour: encode, decode, mean squared error."""

    name: str = "none"
