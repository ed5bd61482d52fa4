"""Train an autoencoder: `python src/train.py [group=option ...] [key=value ...]` (Hydra)."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from acai.config import register  # noqa: E402
from acai.errors import AcaiError  # noqa: E402

register()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from acai.training.run import train

    try:
        run_id = train(cfg)
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"MLflow run {run_id}")


if __name__ == "__main__":
    main()
