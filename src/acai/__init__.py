"""ACAI: Adversarially Constrained Autoencoder Interpolation (Berthelot et al., ICLR 2019) and its baselines."""

import time

__version__ = "0.1.0"
STARTED = time.perf_counter()  # when the process first imported acai: the clock of `time/startup_seconds`
