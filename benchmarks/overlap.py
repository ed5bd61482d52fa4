"""Would running an evaluation beside training (a background thread on a snapshot of the weights) hide it?

    python benchmarks/overlap.py                 # default config: conv ACAI on lines, batch 64
    python benchmarks/overlap.py --steps 512 --cluster

Times, in one process: `--steps` training steps alone; one evaluation alone (the final one with
`--cluster`: clustering set, K-means, probe); then both at once, the evaluation in a thread on a copy of
the weights, as an overlapped evaluation would run. If the machine has idle capacity during the steps
(a GPU run, whose evaluation's NumPy/scikit-learn parts use the otherwise idle CPU), "together" is close
to the steps alone; if the steps already use every core, it is close to the sum and overlap hides nothing.
"""

from __future__ import annotations

import argparse
import copy
import os
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from acai.evaluation.evaluator import Evaluator  # noqa: E402
from acai.training.spec import RunSpec, build_model  # noqa: E402


def build(overrides: list[str]):
    spec = RunSpec.compose(overrides)
    evaluator = Evaluator(spec.dataset, spec.evaluation, spec.arch.image_size(), seed=0)

    def model():  # a regularizer holds its model's critic: one copy per model
        return build_model(spec, evaluator.x_test.shape[1:], regularizer=copy.deepcopy(spec.regularizer))

    batches = spec.dataset.train_batches(spec.trainer.batch_size, 0, evaluator.image_size)
    return spec.trainer, evaluator, model, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--cluster", action="store_true", help="time the final evaluation (clustering, probe)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    trainer, evaluator, make_model, batches = build(args.overrides)
    model, snapshot = make_model(), make_model()

    def train(steps: int) -> float:
        start = time.perf_counter()
        model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        return time.perf_counter() - start

    def evaluate() -> float:
        start = time.perf_counter()
        evaluator.evaluate(snapshot.encode_model, snapshot.decode_model, snapshot.classifier, cluster=args.cluster)
        return time.perf_counter() - start

    train(8)  # warm-up: tracing, first allocations, the reference bank
    evaluate()
    alone = train(args.steps)
    snapshot.set_weights(model.get_weights())
    evaluation = evaluate()
    seconds: dict[str, float] = {}
    thread = threading.Thread(target=lambda: seconds.setdefault("evaluation", evaluate()))
    start = time.perf_counter()
    thread.start()
    seconds["steps"] = train(args.steps)
    thread.join()
    together = time.perf_counter() - start
    images = args.steps * trainer.batch_size
    print(f"{os.cpu_count()} logical CPUs, {len(tf.config.list_physical_devices('GPU'))} GPUs; {args.steps} steps "
          f"of batch {trainer.batch_size}; evaluation {'with' if args.cluster else 'without'} clustering")
    print(f"  steps alone           {alone:7.1f} s  ({images / alone:.0f} img/s)")
    print(f"  evaluation alone      {evaluation:7.1f} s")
    print(f"  one after the other   {alone + evaluation:7.1f} s")
    print(f"  together (threads)    {together:7.1f} s  (steps {seconds['steps']:.1f} s at "
          f"{images / seconds['steps']:.0f} img/s, evaluation {seconds['evaluation']:.1f} s)")
    print(f"  hidden by overlapping {(alone + evaluation - together) / evaluation:7.0%} of the evaluation")


if __name__ == "__main__":
    main()
