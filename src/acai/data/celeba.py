"""CelebA (aligned faces, no labels) as the reference prepares it: all 202,599 images, each 178x218,
centre-cropped by 36 rows and 16 columns on every side to 146x146, then bicubic-resized to 32x32.

`dataset.path` is the `img_align_celeba/` folder of JPEGs (or `img_align_celeba.zip`, 1.4 GB, as
distributed at https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html). Without a path, tensorflow-datasets'
`celeb_a` downloads it (all three of its splits: the same 202,599 images). As in the reference, the test
images are the first `test_size` of the same set, in order, and stay in training (the reference's test
split is its training file read in order; CelebA is used for pictures only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from acai.data.folder import ImageFolder
from acai.data.prepared import Split
from acai.data.tfds import tfds_splits


@dataclass
class CelebA(ImageFolder):
    """The reference's celeba32: a fixed crop of the aligned faces, no classes."""

    unlisted: ClassVar[tuple[str, ...]] = (*ImageFolder.unlisted, "holdout", "order_seed", "max_pixels",
                                           "max_file_bytes")

    name: str = "celeba"
    num_classes: int | None = 0
    crop: list[int] | None = field(default_factory=lambda: [36, 36, 16, 16])
    test_size: int = 10000
    holdout: bool = False

    def load(self) -> dict[str, Split]:
        if self.path:
            return super().load()

        def convert(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            top, bottom, left, right = self.crop or (0, 0, 0, 0)
            images = batch["image"]
            images = images[:, top: images.shape[1] - bottom, left: images.shape[2] - right]
            return self.resize(list(images)), np.zeros(len(images), np.int64)

        # all three tfds splits are the 202,599 images; the test images are the first of them, not decoded twice
        return self.with_test(tfds_splits(self.name, "celeb_a", {"train": "train+validation+test"}, convert,
                                          self.size, self.crop))
