"""Step throughput under `trainer.strategy=mirrored` against one device, side by side in one process.

    python benchmarks/mirrored.py                    # the CPU split into 2 logical devices
    python benchmarks/mirrored.py --devices 0        # the machine's real devices (GPUs where there are)

The same global batch (`--batch`, default 64) and model (conv ACAI on lines, depth `--depth`) train
with strategy none and mirrored, alternating timed windows so that machine noise hits both alike;
figures are images/second (median of the windows, after warm-up) and their ratio. On a CPU split into
logical devices the replicas share the same cores: the ratio shows the strategy's overhead, not a
speed-up. On N GPUs each replica has its own device.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--devices", type=int, default=2, help="logical CPU devices (0: leave the machine as it is)")
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--depth", type=int, default=16)
parser.add_argument("--windows", type=int, default=5)
parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
args = parser.parse_args()
if args.devices:
    os.environ["ACAI_CPU_DEVICES"] = str(args.devices)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from acai.training.distribute import in_pair_order, make_strategy, split_cpu  # noqa: E402
from acai.training.spec import RunSpec, build_model  # noqa: E402


def build(strategy_name: str):
    spec = RunSpec.compose(["dataset=lines", "model=conv", f"model.depth={args.depth}",
                            f"trainer.batch_size={args.batch}", f"trainer.strategy={strategy_name}"])
    strategy = make_strategy(spec.trainer.strategy, spec.trainer.batch_size)
    with strategy.scope():
        model = build_model(spec, (32, 32, 1))
        model.build_optimizers()
    batches = in_pair_order(spec.dataset.train_batches(args.batch, 0, 32), args.batch, model.replicas)
    return model, batches


def timed(model, batches) -> float:
    """Images per second over one window of `--steps` steps (fit: the product's path)."""
    start = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0, shuffle=False)
    return args.steps * args.batch / (time.perf_counter() - start)


def main() -> None:
    split_cpu()
    cases = {name: build(name) for name in ("none", "mirrored")}
    for model, batches in cases.values():  # warm-up: tracing, first allocations
        timed(model, batches)
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.windows):
        for name, (model, batches) in cases.items():
            rates[name].append(timed(model, batches))
    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")]
    print(f"devices: {', '.join(devices)}; conv ACAI on lines, depth {args.depth}, global batch {args.batch}")
    median = {name: statistics.median(values) for name, values in rates.items()}
    for name, (model, _) in cases.items():
        print(f"  strategy={name:<9} replicas {model.replicas}  {median[name]:8.1f} img/s  "
              f"(windows: {', '.join(f'{r:.0f}' for r in rates[name])})")
    print(f"  mirrored / none: {median['mirrored'] / median['none']:.2f}x")


if __name__ == "__main__":
    main()
