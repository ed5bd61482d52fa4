"""The paper's measurements: lines Mean Distance and Smoothness, latent classifier, K-means clustering."""
