"""Where a training run's wall time goes: start-up, training steps, each part of an evaluation,
checkpoints, the final logging.

    python benchmarks/run_phases.py                          # the default config cut to 2^15 samples
    python benchmarks/run_phases.py --samples 131072         # the default run (2^17 samples, 8 evaluations)
    python benchmarks/run_phases.py --src ../before/src      # another checkout's code, for a before/after
    python benchmarks/run_phases.py -- model.latent_dim=16   # any train.py overrides after --

Runs `src/train.py` in a fresh process with its store and checkpoints in a temporary folder, then reads
the `time/*` metrics the run logged. Shares are of the in-run wall time (`time/wall_seconds`, from the
first step's start to the end of training); start-up and the final logging (plot, model, interpolator,
classifier) come before and after it, and are shown apart with the process's wall time from outside.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (metric, what it is), in the order of a run
PHASES = (("train_seconds", "training steps (first step's tracing included)"),
          ("eval/encode_test", "evaluation: encode + reconstruct the test set"),
          ("eval/classifier", "evaluation: latent classifier"),
          ("eval/decode_interpolations", "evaluation: decode the interpolations"),
          ("eval/lines_metrics", "evaluation: Mean Distance + Smoothness"),
          ("eval/images", "evaluation: grids and plots (logged)"),
          ("eval/log_metrics", "evaluation: MLflow metric logging"),
          ("eval/train_set", "final evaluation: load the training set"),
          ("eval/encode_train", "final evaluation: encode the training set"),
          ("eval/kmeans", "final evaluation: K-means on latents"),
          ("eval/probe", "final evaluation: linear probe"),
          ("eval/kmeans_pixels", "final evaluation: K-means on pixels"),
          ("checkpoint_seconds", "checkpoints"))


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {os.cpu_count()} logical CPUs"


def run(src: Path, samples: int, overrides: list[str], folder: Path) -> tuple[dict[str, float], float]:
    """Train once; (the run's time/* metrics, the process's wall seconds)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder}/mlflow.db"
    args = [sys.executable, str(src / "train.py"), f"trainer.total_samples={samples}", "trainer.verbose=0",
            f"tracking.uri={uri}", f"tracking.artifact_location={folder}/mlruns", "tracking.experiment=phases",
            f"trainer.checkpoint_dir={folder}/checkpoints", *overrides]
    env = dict(os.environ, PYTHONPATH=str(src))
    start = time.perf_counter()
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"training failed:\n{done.stderr[-3000:]}")
    client = MlflowClient(uri)
    (found,) = client.search_runs([client.get_experiment_by_name("phases").experiment_id])
    return {k.removeprefix("time/"): v for k, v in found.data.metrics.items() if k.startswith("time/")}, wall


def table(metrics: dict[str, float], wall: float) -> str:
    in_run = metrics["wall_seconds"]
    rows = [(label, metrics[key]) for key, label in PHASES if key in metrics]  # the phases this run had
    rows.append(("other (callbacks, data, gaps)", in_run - sum(s for _, s in rows)))
    lines = [f"| {'phase':<48} | seconds | % of in-run wall |", f"|{'-' * 50}|---------|------------------|"]
    lines += [f"| {label:<48} | {s:7.2f} | {100 * s / in_run:15.1f}% |" for label, s in rows]
    lines += [f"| {'in-run wall (time/wall_seconds)':<48} | {in_run:7.1f} | {100.0:15.1f}% |",
              f"| {'start-up: process start to the first step':<48} | {metrics.get('startup_seconds', 0):7.1f} |"
              f" {'(before)':>16} |",
              f"| {'final logging: plot, model, interpolator':<48} | {metrics.get('final_seconds', 0):7.1f} |"
              f" {'(after)':>16} |",
              f"| {'process wall, from outside':<48} | {wall:7.1f} | {'':>16} |"]
    share = 100 * metrics["train_seconds"] / in_run
    return "\n".join(lines) + f"\n\ntraining steps: {share:.1f}% of the in-run wall time"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32768, help="trainer.total_samples (default 2^15)")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the src/ folder of the code to time")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (after --)")
    args = parser.parse_args(argv)
    print(f"{cpu_name()}; code: {args.src.resolve()}; {args.samples:,} samples; overrides: {args.overrides}")
    with tempfile.TemporaryDirectory() as tmp:
        metrics, wall = run(args.src.resolve(), args.samples, args.overrides, Path(tmp))
    print(table(metrics, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
