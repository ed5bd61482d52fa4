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
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from acai.training.run import train

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN and cfg.tracking.sweep is None:
        cfg.tracking.sweep = hydra_cfg.sweep.dir  # every job of a -m sweep is tagged with the sweep it belongs to
    try:
        run_id = train(cfg)
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"MLflow run {run_id}")


if __name__ == "__main__":
    main()
