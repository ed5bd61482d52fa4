"""Training-step throughput, fraction of matmul peak, data-pipeline and evaluation speed.

    python benchmarks/throughput.py                      # ACAI and none, conv and mlp, on lines
    python benchmarks/throughput.py --regularizers all --models conv --datasets lines fashion_mnist
    python benchmarks/throughput.py --models conv --datasets svhn cifar10 --path svhn=~/svhn --path cifar10=~/cifar

For every case, in the same process and one after the other so machine noise hits both alike:
  * `fast`:      the product's default path: Autoencoder.fit() on the tf.data pipeline, XLA as
                 `trainer.jit_compile=auto` decides (on a GPU; not on a CPU, where it is slower);
  * `bf16`:      the same with `trainer.precision=mixed_bfloat16` (networks in bfloat16);
  * `xla`:       (--xla) the same, XLA forced on, to show what auto chose against;
  * `reference`: the same networks and losses in a straightforward step: @tf.function without XLA,
                 one GradientTape, fed NumPy arrays batch by batch (as the seed blog does).
Throughput is images/second after warm-up, the median of several timed windows. FLOPs per image
are TensorFlow's per-op counts over the step graph after Grappler's pruning (what actually runs); the
matmul peak comes from a large float32 matmul timed in the same run. `checkpoint s` is one full
training-state save, and its overhead at the default `trainer.checkpoint_every` (2^14 samples).
Results print as a table and go to benchmarks/results/throughput.{json,csv}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from hydra.utils import get_class  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from acai.config import TrainerConfig, register  # noqa: E402
from acai.training.checkpoint import TrainingState  # noqa: E402
from acai.training.spec import RunSpec, build_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FASHION = "/usr/share/datasets/fashion-mnist"
ALL_REGULARIZERS = ["none", "dropout", "denoising", "vae", "aae", "vqvae", "acai"]


PATHS: dict[str, str] = {"fashion_mnist": FASHION}  # dataset.path per dataset (--path name=folder adds more)


def build(dataset: str, model_name: str, regularizer: str, batch: int, precision: str = "float32"):
    overrides = [f"dataset={dataset}", f"model={model_name}", f"regularizer={regularizer}",
                 f"trainer.batch_size={batch}", f"trainer.precision={precision}"]
    if dataset in PATHS:
        overrides.append(f"dataset.path={PATHS[dataset]}")
    spec = RunSpec.compose(overrides)
    x_test, _ = spec.dataset.test_set()
    size = spec.arch.image_size()
    keras.utils.set_random_seed(0)
    model = build_model(spec, (size or x_test.shape[1], size or x_test.shape[2], x_test.shape[3]), jit_compile=False)
    return spec.dataset, model, size


def xla_by_default(model_name: str) -> bool:
    """What `trainer.jit_compile=auto` picks for this model family on this machine."""
    family = get_class(OmegaConf.load(ROOT / "conf" / "model" / f"{model_name}.yaml")["_target_"])
    return TrainerConfig().use_xla(family.xla_on_cpu)


class WindowTimer(keras.callbacks.Callback):
    def __init__(self, warmup: int, window: int):
        super().__init__()
        self.warmup, self.window, self.times = warmup, window, []

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 >= self.warmup and (batch + 1 - self.warmup) % self.window == 0:
            self.times.append(time.perf_counter())


def fast_throughput(ds, model, size, batch, warmup, window, windows, xla: bool) -> float:
    model.compile(jit_compile=xla)
    timer = WindowTimer(warmup, window)
    data = ds.train_batches(batch, 0, size)
    model.fit(data, epochs=1, steps_per_epoch=warmup + window * windows, callbacks=[timer], verbose=0)
    spans = np.diff(timer.times)
    return batch * window / statistics.median(spans)


def reference_step(model):
    """A straightforward step: same losses, one tape, three optimizers, no XLA."""

    @tf.function(jit_compile=False)
    def step(x, y):
        with tf.GradientTape(persistent=True) as tape:
            losses = model.compute_losses(x, y)
        groups = [(losses["loss"], model.optimizer, model.autoencoder_variables()),
                  (losses["classifier"], model.classifier_optimizer, model.classifier.trainable_variables)]
        if losses["adversary"] is not None:
            groups.append((losses["adversary"], model.adversary_optimizer, model.adversary.trainable_variables))
        for loss, opt, variables in groups:
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return losses["loss"]

    return step


def reference_throughput(ds, model, size, batch, warmup, window, windows) -> float:
    model.compile(jit_compile=False)
    model.build_optimizers()
    step = reference_step(model)
    it = iter(ds.train_batches(batch, 1, size))
    arrays = [tuple(t.numpy() for t in next(it)) for _ in range(16)]  # NumPy batches, fed one by one
    times = []
    for i in range(warmup + window * windows):
        x, y = arrays[i % len(arrays)]
        step(x, y).numpy()
        if i + 1 >= warmup and (i + 1 - warmup) % window == 0:
            times.append(time.perf_counter())
    return batch * window / statistics.median(np.diff(times))


def step_flops(model, ds, size, batch) -> float | None:
    """Floating-point operations one training step executes (forward + backward of every loss), per image.

    The step graph holds gradients nobody reads (a persistent tape differentiates the critic's and the
    discriminator's losses back into the autoencoder too); Grappler prunes them before anything runs,
    so only the nodes that survive its pruning are counted (counting the whole graph overstated ACAI by
    39% and the AAE by 44%). Each node's count is TensorFlow's registered `flops` statistic.
    """
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.grappler import tf_optimizer

    x, y = next(iter(ds.train_batches(batch, 0, size)))
    step = reference_step(model).get_concrete_function(tf.TensorSpec(x.shape, x.dtype),
                                                       tf.TensorSpec(y.shape, y.dtype))
    graph = step.graph
    try:
        meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
        fetch = meta_graph_pb2.CollectionDef()
        fetch.node_list.value.extend([t.name for t in step.outputs] + [op.name for op in graph.control_outputs])
        meta.collection_def["train_op"].CopyFrom(fetch)
        config = config_pb2.ConfigProto()
        config.graph_options.rewrite_options.CopyFrom(
            rewriter_config_pb2.RewriterConfig(optimizers=["pruning"], min_graph_nodes=-1))
        kept = {node.name for node in tf_optimizer.OptimizeGraph(config, meta).node}
        total = 0
        for op in graph.get_operations():
            if op.name in kept:
                try:
                    total += tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0
                except ValueError:  # an op without a registered count (none of the heavy ones)
                    pass
        return total / batch
    except Exception:  # noqa: BLE001 - the count is best effort; the throughput is not
        return None


def matmul_peak(n: int = 2048, repeats: int = 10, dtype: tf.DType = tf.float32) -> float:
    """Dense matmul GFLOP/s on this machine: the yardstick for the step's efficiency."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    f = tf.function(lambda a: tf.matmul(a, a))
    f(a).numpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).numpy()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def checkpoint_seconds(model, repeats: int = 3) -> float:
    """Median time of one full training-state checkpoint (every network and optimizer slot)."""
    with tempfile.TemporaryDirectory() as directory:
        state = TrainingState(model, Path(directory))
        state.save(1)
        times = []
        for i in range(repeats):
            t = time.perf_counter()
            state.save(i + 2)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def pipeline_throughput(ds, size, batch, batches: int = 200) -> float:
    it = iter(ds.train_batches(batch, 0, size))
    next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batch * batches / (time.perf_counter() - t)


def eval_timings() -> dict[str, float]:
    from acai.data.lines import draw_lines
    from acai.evaluation.clustering import cluster_accuracy
    from acai.evaluation.lines_metrics import reference_bank, score_interpolations

    frames = draw_lines(np.random.default_rng(0).uniform(0, 6.28, 4096)).reshape(256, 16, 32, 32, 1)
    t = time.perf_counter()
    reference_bank(10000, 32)
    bank = time.perf_counter() - t
    t = time.perf_counter()
    score_interpolations(frames)
    lines = time.perf_counter() - t
    rng = np.random.default_rng(0)
    z, zt, yt = rng.normal(size=(60000, 32)), rng.normal(size=(10000, 32)), rng.integers(0, 10, 10000)
    t = time.perf_counter()
    cluster_accuracy(z, zt, yt, restarts=10)
    cluster = time.perf_counter() - t
    return {"reference_bank_s": bank, "lines_metrics_4096_frames_s": lines, "kmeans_60k_x32_10_restarts_s": cluster}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["conv", "mlp"])
    p.add_argument("--datasets", nargs="+", default=["lines"])
    p.add_argument("--regularizers", nargs="+", default=["none", "acai"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--no-reference", action="store_true", help="skip the reference step (faster)")
    p.add_argument("--no-bf16", action="store_true", help="skip the mixed_bfloat16 measurement")
    p.add_argument("--xla", action="store_true", help="also time the step with XLA forced on")
    p.add_argument("--path", action="append", default=[], metavar="DATASET=PATH",
                   help="dataset.path for a dataset, e.g. svhn=~/svhn cifar10=~/cifar-10-batches-bin (see "
                        "benchmarks/datasets.py for full-size stand-ins)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    PATHS.update(item.split("=", 1) for item in args.path)
    regs = ALL_REGULARIZERS if args.regularizers == ["all"] else args.regularizers
    register()
    timing = (args.batch, args.warmup, args.window, args.windows)
    peak, peak_bf16 = matmul_peak(), matmul_peak(dtype=tf.bfloat16)
    print(f"device: {tf.config.list_physical_devices()[-1].device_type}, cores: {os.cpu_count()}, "
          f"matmul peak: float32 {peak:.1f}, bfloat16 {peak_bf16:.1f} GFLOP/s")
    rows = []
    for dataset in args.datasets:
        for model_name in args.models:
            for reg in regs:
                ds, model, size = build(dataset, model_name, reg, args.batch)
                auto_xla = xla_by_default(model_name)
                flops = step_flops(model, ds, size, args.batch)
                fast = fast_throughput(ds, model, size, *timing, xla=auto_xla)
                ckpt = checkpoint_seconds(model)
                ref = bf16 = xla = None
                if not args.no_reference:
                    ds, model, size = build(dataset, model_name, reg, args.batch)
                    ref = reference_throughput(ds, model, size, *timing)
                if not args.no_bf16:
                    ds, model, size = build(dataset, model_name, reg, args.batch, "mixed_bfloat16")
                    bf16 = fast_throughput(ds, model, size, *timing, xla=auto_xla)
                if args.xla:
                    ds, model, size = build(dataset, model_name, reg, args.batch)
                    xla = fast_throughput(ds, model, size, *timing, xla=True)
                data = pipeline_throughput(ds, size, args.batch)
                row = {"dataset": dataset, "model": model_name, "regularizer": reg, "fast_img_s": fast,
                       "reference_img_s": ref, "speedup": fast / ref if ref else None,
                       "bf16_img_s": bf16, "bf16_speedup": bf16 / ref if bf16 and ref else None,
                       "xla_img_s": xla, "xla_used_by_default": auto_xla,
                       "mflop_per_img": flops / 1e6 if flops else None,
                       "gflop_s": flops * fast / 1e9 if flops else None,
                       "fraction_of_peak": flops * fast / 1e9 / peak if flops else None,
                       "pipeline_img_s": data, "pipeline_over_step": data / fast,
                       # one save per trainer.checkpoint_every samples (default), against training them
                       "checkpoint_s": ckpt, "checkpoint_overhead": ckpt * fast / TrainerConfig().checkpoint_every}
                rows.append(row)
                print(" | ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      flush=True)
    for (d, m), base in {(r["dataset"], r["model"]): r for r in rows if r["regularizer"] == "none"}.items():
        for r in rows:
            if (r["dataset"], r["model"]) == (d, m):
                r["vs_none"] = r["fast_img_s"] / base["fast_img_s"]
    evals = eval_timings()
    print_table(rows, peak, evals)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peaks = {"matmul_peak_gflop_s": peak, "matmul_peak_bf16_gflop_s": peak_bf16}
    (out / "throughput.json").write_text(json.dumps({**peaks, "rows": rows, "eval": evals}, indent=2))
    with open(out / "throughput.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    return 0


def fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def print_table(rows, peak, evals) -> None:
    print(f"\nfloat32 matmul peak: {peak:.1f} GFLOP/s")
    print("| dataset | model | regularizer | img/s (fast) | img/s (reference) | speed-up | img/s (bf16) "
          "| bf16 speed-up | img/s (XLA) | vs none | MFLOP/img | % of peak | pipeline/step | checkpoint s (overhead) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['regularizer']} | {r['fast_img_s']:.0f} | "
              f"{fmt(r['reference_img_s'], '.0f')} | {fmt(r['speedup'], '.2f')} | {fmt(r['bf16_img_s'], '.0f')} | "
              f"{fmt(r['bf16_speedup'], '.2f')} | {fmt(r['xla_img_s'], '.0f')} | {fmt(r.get('vs_none'), '.2f')} | "
              f"{fmt(r['mflop_per_img'], '.1f')} | {fmt(r['fraction_of_peak'] and 100 * r['fraction_of_peak'], '.1f')}"
              f" | {r['pipeline_over_step']:.1f}x | {r['checkpoint_s']:.3f} ({100 * r['checkpoint_overhead']:.2f}%) |")
    print("\n" + "\n".join(f"{k}: {v:.2f}" for k, v in evals.items()))


if __name__ == "__main__":
    sys.exit(main())
