"""What MLflow's system metrics (`tracking.system_metrics`, on by default) cost the training step.

    python benchmarks/system_metrics.py                       # default config, sampling every 10 s and every 1 s
    python benchmarks/system_metrics.py --windows 8 --steps 64 model=mlp

In one process, windows of `--steps` training steps alternate between no monitor and MLflow's
`SystemMetricsMonitor` sampling (CPU, memory, disk, network; GPU when visible) into a throwaway SQLite
store at the given interval; alternating cancels the machine's slow drifts. Prints the median img/s of
each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import mlflow
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from overlap import build  # the default run's model and data, as the other benchmarks build them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=128, help="training steps per window")
    parser.add_argument("--windows", type=int, default=6, help="windows per setting")
    parser.add_argument("--intervals", type=float, nargs="+", default=[10.0, 1.0], help="sampling intervals (s)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    trainer, _, make_model, batches = build(args.overrides)
    model = make_model()

    def window() -> float:
        start = time.perf_counter()
        model.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0, shuffle=False)
        return args.steps * trainer.batch_size / (time.perf_counter() - start)

    window()  # warm-up: tracing and first allocations
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        run = mlflow.MlflowClient().create_run(mlflow.MlflowClient().create_experiment("bench"))
        rates: dict[str, list[float]] = {"off": []} | {f"every {s:g} s": [] for s in args.intervals}
        for _ in range(args.windows):  # off, on, off, on, ...: the same drift falls on both
            for interval in args.intervals:
                rates["off"].append(window())
                monitor = SystemMetricsMonitor(run.info.run_id, sampling_interval=interval)
                monitor.start()
                rates[f"every {interval:g} s"].append(window())
                monitor.finish()
    base = statistics.median(rates["off"])
    print(f"windows of {args.steps} steps, batch {trainer.batch_size}: {args.windows} per interval")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  system metrics {name:<12} {rate:7.0f} img/s  ({rate / base:.3f} x off)")


if __name__ == "__main__":
    main()
