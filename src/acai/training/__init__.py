"""The shared training step (a keras.Model) and the callbacks that evaluate, log and checkpoint."""
