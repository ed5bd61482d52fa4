"""Datasets: the generated lines benchmark and image datasets, fed through tf.data."""
