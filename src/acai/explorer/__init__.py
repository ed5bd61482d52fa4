"""A local web app for a logged model's latent space: `python src/explore.py <run id> [...]`."""
