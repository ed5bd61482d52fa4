"""Interpolate in a logged autoencoder's latent space and save the decoded path as one PNG grid.

    python src/interpolate.py RUN_ID_OR_MODEL_URI [MORE ...] [--out grid.png]
        [--indices A B [A B ...] | --images FILE_A FILE_B [...] | --pairs N [--seed S]]
        [--steps 11] [--mode linear|spherical] [--scale 2 | --plain] [--tracking-uri URI] [--log]

The model is `runs:/RUN_ID/model` for a run id, or any model URI (`runs:/...`, `models:/NAME/VERSION`,
`models:/NAME@ALIAS`). Endpoints come from the run's test set by index (`--indices`; each two numbers
make one row), from N seeded test pairs with different labels (`--pairs N`; 8 pairs by default), or
from image files (`--images`; each two files make one row; any format Pillow reads, converted to the
model's channels and resized to its H x W; needs no run config, so a model URI alone will do). Each
row runs over `--steps` points, endpoints included. The figure (a row per pair: input A, the decoded
path under its α labels, input B; `--plain`: the bare decoded frames) is written to `--out` (default
`<run name>-interpolation.png`) and its path printed; `--log` also logs it to the run as
`interpolations/<name>.png`. Several models give one figure, a labelled grid per model, all on the
same endpoints (taken from the first model's run): the paper's side-by-side comparison.
"""

from __future__ import annotations

import argparse
import sys

from acai.console import quiet_tensorflow

quiet_tensorflow(filter_stderr=__name__ == "__main__")  # before TensorFlow is imported

from acai.config import DEFAULT_TRACKING_URI  # noqa: E402
from acai.errors import AcaiError  # noqa: E402
from acai.interpolate.figure import interpolate  # noqa: E402
from acai.interpolate.inputs import DEFAULT_PAIRS, MODES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="+", help="MLflow run id of a run made by src/train.py, or a model URI "
                        "(runs:/RUN_ID/model, models:/NAME/VERSION, models:/NAME@ALIAS); several: one figure")
    parser.add_argument("--indices", nargs="+", type=int, metavar="I",
                        help="test-set indices, two per row: --indices 3 17 [5 9 ...]")
    parser.add_argument("--images", nargs="+", metavar="FILE",
                        help="image files, two per row: --images a.png b.jpg [...]")
    parser.add_argument("--pairs", type=int, metavar="N", help=f"N seeded pairs of test images with different "
                        f"labels (classes, or angle bins on lines); the default, with N={DEFAULT_PAIRS}")
    parser.add_argument("--seed", type=int, default=0, help="seed for --pairs (default 0)")
    parser.add_argument("--steps", type=int, default=11, help="points per row, endpoints included (default 11)")
    parser.add_argument("--mode", choices=MODES, default="linear", help="linear (lerp) or spherical (slerp)")
    parser.add_argument("--out", help="the PNG to write (default: <run name>-interpolation.png here)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help="the MLflow store (default: mlflow.db in the repository root)")
    parser.add_argument("--scale", type=int, default=2, help="enlarge the figure this many times (default 2)")
    parser.add_argument("--plain", action="store_true",
                        help="the decoded frames only: no inputs, labels or enlargement (border 1 px)")
    parser.add_argument("--log", action="store_true", help="also log the PNG to the run under interpolations/")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error argparse already printed (2)
        return e.code if isinstance(e.code, int) else 0
    try:
        out = interpolate(args.model, args.out, indices=args.indices, images=args.images, pairs=args.pairs,
                          seed=args.seed, steps=args.steps, mode=args.mode, tracking_uri=args.tracking_uri,
                          log=args.log, scale=args.scale, plain=args.plain)
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
