"""Regularizers: what each autoencoder of the paper adds to the shared training step."""
