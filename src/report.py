"""The paper's tables from an MLflow experiment: `python src/report.py [options]`.

    python src/report.py                                   # every finished run of experiment `acai`
    python src/report.py --sweep table1                    # only runs trained with tracking.sweep=table1
    python src/report.py --filter "params.seed != '2'"     # any MLflow search filter, ANDed with the rest
    python src/report.py --tracking-uri sqlite:///mlflow.db --experiment acai --out reports/ --no-log

Reads the finished training runs, groups them by dataset / model / latent size (rows) and regularizer
(columns, in the paper's order: Baseline = `none`, dropout, denoising, vae, aae, vqvae, acai), and
aggregates over seeds as the paper does: per run the median of its last evaluations (recomputed from the
`eval/<metric>` history, by step), then mean ± std (np.std, ddof=0) over the runs, with their count n.
The window is the one of the runs' own `summary/*`, the paper's share of training: the last round(E·20/256)
of a run's E evaluations, at least 1 and at most 20 (the paper's 20 of 256); `--last N` forces N for every run.
A cell whose runs never left the initial plateau (`eval/on_plateau` = 1 at every evaluation: reconstructing
no better than the mean test image) is marked `†` (`†k/n` when k of its n runs never left): its numbers
describe the plateau, not the model.
One table per measurement -- Mean Distance (x10^-3), Smoothness, latent classifier accuracy (%), a
linear probe's accuracy (%, not in the paper), clustering accuracy (%) with a K-means-on-pixels reference
column, reconstruction error -- with the paper's values as our reference notes recall them (not checked
against the paper's PDF) in a `paper (unverified)` row where the paper reports that setting.

Writes `<table>.md` and `<table>.csv` per table, `runs.csv` (each run's medians), `report.md` and
`report.png` (bar charts with error bars) to --out, prints report.md, and, unless --no-log, logs them
all as artifacts of a new run `report-<experiment>[-<sweep>]` tagged `acai.report=true` (report runs are
never read back as training runs). Exit status: 0 done, 1 no finished runs match, 2 bad store/experiment/filter.
"""

from __future__ import annotations

import argparse
import os
import sys

from acai.console import quiet_tensorflow

quiet_tensorflow(filter_stderr=__name__ == "__main__")  # before TensorFlow is imported

from acai.config import DEFAULT_TRACKING_URI  # noqa: E402
from acai.errors import AcaiError  # noqa: E402
from acai.reporting.measurements import LAST  # noqa: E402
from acai.reporting.report import build_report  # noqa: E402
from acai.reporting.runs import NoRuns  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help="the MLflow store (default: mlflow.db in the repository root)")
    parser.add_argument("--experiment", default="acai")
    parser.add_argument("--filter", dest="filter_string", help="an MLflow search filter, e.g. \"params.seed = '0'\"")
    parser.add_argument("--sweep", help="only runs trained with tracking.sweep=NAME (the run tag `sweep`)")
    parser.add_argument("--out", default="reports", help="folder for the tables, report.md and report.png")
    parser.add_argument("--no-log", dest="log", action="store_false", help="do not log the report to MLflow")
    parser.add_argument("--last", type=int, metavar="N",
                        help="per run, the median of its last N evaluations (default: the window of the run's own "
                             f"summary/*, the paper's share of training: the last round(E*20/256) of its E "
                             f"evaluations, 1 to {LAST})")
    args = parser.parse_args(argv)
    args.sweep = args.sweep.rstrip("/") or None if args.sweep else None  # as a shell completes a folder
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # an unreachable server fails in seconds
    try:
        report = build_report(args.tracking_uri, args.experiment, args.filter_string, sweep=args.sweep, out=args.out,
                              log=args.log, last=args.last)
    except NoRuns as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.markdown)
    where = f"; logged to run {report.run_id}" if report.run_id else ""
    print(f"wrote {len(report.files)} files to {args.out}{where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
