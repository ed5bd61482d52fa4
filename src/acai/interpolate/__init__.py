"""Latent interpolation figures from logged models (`src/interpolate.py`; the explorer reads its ends
the same way): `inputs` picks the two ends of each row, `figure` draws the decoded paths."""
