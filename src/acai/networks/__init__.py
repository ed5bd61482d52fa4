"""Encoders, decoders and critics: the paper's conv networks and the seed blog's MLPs."""
