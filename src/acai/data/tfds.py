"""Downloads through tensorflow-datasets (the default source of SVHN and CelebA), prepared once.

tensorflow-datasets downloads and verifies the files into ~/tensorflow_datasets; the images are then
written once into the prepared uint8 format (`acai.data.prepared`), like a local copy would be.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from acai.cache import fingerprint
from acai.data.prepared import FORMAT, PrepareProgress, Split, prepared
from acai.errors import DatasetError, first_line

Convert = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def supervised(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return batch["image"], batch["label"]


def tfds_splits(name: str, tfds_name: str, splits: dict[str, str], convert: Convert = supervised,
                *settings: object) -> dict[str, Split]:
    """Our splits (`{"train": "train+extra", ...}` in tfds' split syntax) of tfds dataset `tfds_name`."""

    def build(open_split) -> dict[str, object]:
        import tensorflow_datasets as tfds

        try:
            builder = tfds.builder(tfds_name)
            builder.download_and_prepare()
        except Exception as e:  # noqa: BLE001 - network, checksum and disk errors all end here
            raise DatasetError(
                f"dataset={name}: tensorflow-datasets could not download {tfds_name!r} ({type(e).__name__}: "
                f"{first_line(e)}). Without a network, set dataset.path to the files "
                "as distributed (see docs/datasets.md)") from None
        progress = PrepareProgress(name, sum(builder.info.splits[spec].num_examples for spec in splits.values()))
        done = 0
        for split, spec in splits.items():
            writer = open_split(split)
            for batch in tfds.as_numpy(builder.as_dataset(split=spec, batch_size=4096, shuffle_files=False)):
                x, y = convert(batch)
                writer.write(x, y)
                done += len(x)
                progress.update(done)
        return {"source": f"tensorflow-datasets {tfds_name}"}

    data, _ = prepared(name, fingerprint(FORMAT, "tfds", tfds_name, splits, settings)[:16], build)
    return data
