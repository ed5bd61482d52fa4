"""ACAI: Adversarially Constrained Autoencoder Interpolation (Berthelot et al., ICLR 2019) and its baselines."""

__version__ = "0.1.0"
