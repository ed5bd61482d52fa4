"""Where the training step's time goes: TensorFlow's profiler over a few steps, grouped by op type.

    python benchmarks/profile_step.py                                   # conv ACAI on lines
    python benchmarks/profile_step.py --regularizer none --model mlp --steps 50

Trains the product's path (`Autoencoder.fit` on the tf.data pipeline, as `trainer.jit_compile=auto`
decides) for warm-up steps, then profiles --steps more and prints each op type's share of the busy
thread time (idle time excluded), grouped into convolutions / matmuls / activations / pooling /
optimizer / the rest. If convolution kernels dominate, the step is compute-bound in oneDNN and a
faster float32 step can only come from faster kernels or fewer FLOPs (bfloat16, a GPU), not from the
framework around them. Writes benchmarks/results/profile_<dataset>_<model>_<regularizer>.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tensorflow as tf  # noqa: E402
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_plugin  # noqa: E402
from throughput import ROOT, build, register, xla_by_default  # noqa: E402

GROUPS = {  # first matching substring of the op type wins
    "convolution backprop (filter)": ("Conv2DBackpropFilter",),
    "convolution backprop (input)": ("Conv2DBackpropInput",),
    "convolution forward": ("Conv2D",),
    "matmul (dense layers)": ("MatMul", "Einsum"),
    "activations": ("Relu", "Sigmoid", "Tanh", "Softplus", "Exp"),
    "pooling / upsampling": ("Pool", "Resize", "Tile"),
    "optimizer updates": ("Adam", "AssignSub", "AssignAdd", "AssignVariable", "ResourceApply"),
}


def group_of(op_type: str) -> str:
    return next((g for g, keys in GROUPS.items() if any(k in op_type for k in keys)), "other")


def op_self_times(logdir: str) -> dict[str, float]:
    """Self time (µs) per op type from the profile in logdir, idle time excluded."""
    paths = [str(p) for p in Path(logdir).rglob("*.xplane.pb")]
    raw, ok = profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        raise RuntimeError("the profiler wrote no op statistics")
    table = json.loads(raw)[0]
    ids = [c["id"] for c in table["cols"]]
    times: collections.Counter[str] = collections.Counter()
    for row in table["rows"]:
        values = {k: (c or {}).get("v") for k, c in zip(ids, row["c"])}
        if values["type"] != "IDLE":
            times[values["type"]] += values["total_self_time"]
    return dict(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="lines")
    parser.add_argument("--model", default="conv")
    parser.add_argument("--regularizer", default="acai")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=12, help="op types listed individually")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    register()

    ds, model, size = build(args.dataset, args.model, args.regularizer, args.batch)
    model.compile(jit_compile=xla_by_default(args.model))
    data = ds.train_batches(args.batch, 0, size)
    model.fit(data, epochs=1, steps_per_epoch=args.warmup, verbose=0)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0)
        tf.profiler.experimental.stop()
        times = op_self_times(logdir)

    busy = sum(times.values())
    groups: collections.Counter[str] = collections.Counter()
    for op_type, t in times.items():
        groups[group_of(op_type)] += t
    name = f"{args.dataset}_{args.model}_{args.regularizer}"
    print(f"{name}: {args.steps} steps of batch {args.batch}, busy thread time {busy / 1e6:.2f} s\n")
    print("| group | share of busy time |\n|---|---|")
    for group, t in groups.most_common():
        print(f"| {group} | {100 * t / busy:.1f}% |")
    print("\n| op type | share of busy time |\n|---|---|")
    for op_type, t in collections.Counter(times).most_common(args.top):
        print(f"| {op_type} | {100 * t / busy:.1f}% |")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"case": name, "steps": args.steps, "batch": args.batch, "busy_seconds": busy / 1e6,
              "groups": {g: t / busy for g, t in groups.items()}, "op_types": {k: t / busy for k, t in times.items()}}
    (out / f"profile_{name}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
