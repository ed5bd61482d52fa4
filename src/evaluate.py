"""Evaluate a logged model: `python src/evaluate.py RUN_ID [key=value ...] [--child] [--tracking-uri URI]`.

Recomputes the paper's measurements (reconstruction error, latent classifier accuracy, lines Mean
Distance and Smoothness, K-means clustering) for the model a run logged, on the dataset the run was
trained on (override with e.g. `dataset.path=/usr/share/datasets/fashion-mnist` or
`evaluation.kmeans_restarts=1000`), writes them to that run under `evaluate/` (or to a new child run
with --child) and prints them as a table.
"""

from __future__ import annotations

import argparse
import sys

from acai.console import quiet_tensorflow

quiet_tensorflow(filter_stderr=__name__ == "__main__")  # before TensorFlow is imported

from acai.config import DEFAULT_TRACKING_URI  # noqa: E402
from acai.errors import AcaiError  # noqa: E402
from acai.tracking.reevaluation import evaluate_logged_run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id", help="MLflow run id of a run made by src/train.py")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. dataset.path=... evaluation.cluster=false")
    parser.add_argument("--model-uri", help="evaluate this model instead of runs:/RUN_ID/model")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help="the MLflow store (default: mlflow.db in the repository root)")
    parser.add_argument("--child", action="store_true", help="log to a new child run instead of the run itself")
    args = parser.parse_intermixed_args(argv)
    try:
        metrics = evaluate_logged_run(args.run_id, args.overrides, args.tracking_uri, child=args.child,
                                      model_uri=args.model_uri)
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    width = max(map(len, metrics))
    print(f"| {'metric':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for key, value in metrics.items():
        print(f"| {key:<{width}} | {value:.6g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
