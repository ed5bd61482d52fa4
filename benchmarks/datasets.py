"""The colour datasets at full size: preparation time, input pipeline against the training step, peak RSS.

    python benchmarks/datasets.py --files /data/standins            # write stand-ins where no real copy is given
    python benchmarks/datasets.py --svhn ~/svhn --cifar10 ~/cifar-10-batches-bin --celeba ~/img_align_celeba

Without the real files (no download here), it writes stand-ins in each distributed format at the real
sizes: SVHN's three .mat files (73,257 + 531,131 train, 26,032 test), CIFAR-10's six binary batches
(50,000 + 10,000), 202,599 CelebA-sized 178x218 JPEGs, and a folder of 10 x 2,000 JPEGs of 64x64 in
class sub-folders. Their pixels are coloured blobs, so the sizes, formats and code paths are the real
ones and the figures hold for the real data (JPEG decode time depends a little on content).

For each dataset, in a fresh cache folder:
  * `prepare s`: the first load (decoding everything into the prepared uint8 files); then the second;
  * `pipeline img/s`: `train_batches` (shuffle, read, convert, batch 64) drained as fast as it goes;
  * `step img/s`: ACAI's training step (`Autoencoder.fit`) at the dataset's paper architecture (depth 64)
    and at the CPU preset's (depth 16), on batches already in memory; `pipeline / step` is their ratio;
  * `peak RSS`: the whole `python src/train.py dataset=<d>` process (default settings: 8 evaluations,
    clustering on 60,000 training images, ...), with the budget cut to 2 evaluations of 2,048 samples
    so that it ends in minutes on a CPU: memory does not grow with the number of steps, and the
    evaluations, where the large arrays live, are the default ones.
Prints a table; JSON in benchmarks/results/datasets.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the format writers the tests use

import numpy as np  # noqa: E402

SIZES = {"svhn": (73_257, 531_131, 26_032), "cifar10": (50_000, 10_000), "celeba": 202_599, "folder": (10, 2_000)}


def write_standins(root: Path) -> dict[str, Path]:
    """Full-size files in each real format (written once; reused on later calls)."""
    from datafiles import blobs, cifar_records, write_images
    from PIL import Image
    from scipy.io import savemat

    paths = {}
    svhn = root / "svhn"
    if not (svhn / "extra_32x32.mat").exists():
        svhn.mkdir(parents=True, exist_ok=True)
        for part, n, seed in (("train", SIZES["svhn"][0], 0), ("test", SIZES["svhn"][2], 1),
                              ("extra", SIZES["svhn"][1], 2)):
            digits = np.arange(n) % 10
            x = np.empty((32, 32, 3, n), np.uint8, order="F")
            for s in range(0, n, 50_000):
                x[..., s:s + 50_000] = blobs(digits[s:s + 50_000], seed=seed * 100 + s).transpose(1, 2, 3, 0)
            savemat(svhn / f"{part}_32x32.mat", {"X": x, "y": np.where(digits == 0, 10, digits)[:, None]
                                                .astype(np.uint8)})
            del x
    paths["svhn"] = svhn
    bins = root / "cifar10" / "cifar-10-batches-bin"
    if not (bins / "test_batch.bin").exists():
        bins.mkdir(parents=True, exist_ok=True)
        for i in range(1, 6):
            (bins / f"data_batch_{i}.bin").write_bytes(cifar_records(np.arange(10_000) % 10, seed=i))
        (bins / "test_batch.bin").write_bytes(cifar_records(np.arange(10_000) % 10, seed=9))
    paths["cifar10"] = bins
    celeba = root / "celeba" / "img_align_celeba"
    if not (celeba / f"{SIZES['celeba']:06d}.jpg").exists():
        celeba.mkdir(parents=True, exist_ok=True)
        for s in range(0, SIZES["celeba"], 2_000):
            labels = np.arange(s, min(SIZES["celeba"], s + 2_000)) % 10
            for i, image in zip(range(s, s + len(labels)), blobs(labels, 218, 178, seed=s), strict=True):
                Image.fromarray(image).save(celeba / f"{i + 1:06d}.jpg", quality=90)
    paths["celeba"] = celeba
    folder = root / "folder"
    classes, per_class = SIZES["folder"]
    if not folder.exists():
        write_images(folder, classes * per_class, [f"class{k}" for k in range(classes)], size=(64, 64))
    paths["folder"] = folder
    return paths


def compose(dataset: str, path: Path, *overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from acai.config import register

    register()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=[f"dataset={dataset}", f"dataset.path={path}", *overrides])


def pipeline_throughput(ds, batches: int = 300) -> float:
    stream = iter(ds.train_batches(64, seed=0, image_size=32))
    for _ in range(20):
        next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * 64 / (time.perf_counter() - start)


def step_throughput(cfg, images: np.ndarray, labels: np.ndarray, steps: int = 12) -> float:
    import keras
    import tensorflow as tf

    from acai.training.spec import RunSpec, build_model

    spec = RunSpec.from_config(cfg)
    spec.dataset.test_set()  # a folder learns its number of classes from the files
    keras.utils.set_random_seed(0)
    model = build_model(spec, images.shape[1:], jit_compile=False)
    data = tf.data.Dataset.from_tensors((images[:64], labels[:64])).repeat()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * 64 / (time.perf_counter() - start)


# Started from a small launcher process: Linux carries a process's peak RSS across fork and exec, so a
# train.py spawned from this (large) benchmark process would report this process's size as its own peak.
LAUNCHER = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)
sys.stderr.write(done.stderr[-3000:] if done.returncode else "")
"""


def peak_rss(dataset: str, path: Path, cache: Path, tmp: Path) -> tuple[float, float]:
    """(peak RSS in GB, wall seconds) of a default-settings run cut to 2 evaluations of 2,048 samples."""
    cmd = [sys.executable, str(ROOT / "src" / "train.py"), f"dataset={dataset}", f"dataset.path={path}",
           "trainer.total_samples=4096", "trainer.eval_every=2048", "trainer.verbose=0",
           f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"tracking.artifact_location={tmp}/mlruns",
           f"trainer.checkpoint_dir={tmp}/checkpoints", "tracking.experiment=benchmark"]
    env = os.environ | {"ACAI_CACHE_DIR": str(cache), "ACAI_HYDRA_DIR": str(tmp / "hydra")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    kilobytes, status = done.stdout.split()
    if status != "0":
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return int(kilobytes) / 2**20, wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", default=str(Path(tempfile.gettempdir()) / "acai-standins"),
                   help="where stand-in files are written (and reused)")
    for name in SIZES:
        p.add_argument(f"--{name}", help=f"a real copy of {name} (dataset.path) instead of the stand-in")
    p.add_argument("--datasets", nargs="+", default=list(SIZES))
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS runs (minutes each)")
    p.add_argument("--rss-only", action="store_true", help="only the peak-RSS runs")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)

    standins = None
    rows = []
    for name in args.datasets:
        path = getattr(args, name)
        if path is None:
            standins = standins or write_standins(Path(args.files))
            path = standins[name]
        work = Path(tempfile.mkdtemp(prefix=f"acai-bench-{name}-"))
        os.environ["ACAI_CACHE_DIR"] = str(work / "cache")
        if args.rss_only:  # the run prepares the data itself: its first-run peak
            rss, wall = peak_rss(name, path, work / "cache", work)
            rows.append({"dataset": name, "peak RSS GB": rss, "rss run s": wall})
            print(json.dumps(rows[-1]), flush=True)
            continue
        from acai.training.spec import RunSpec

        start = time.perf_counter()
        ds = RunSpec.from_config(compose(name, path)).dataset
        x, y = ds.test_set()
        first = time.perf_counter() - start
        start = time.perf_counter()
        again = RunSpec.from_config(compose(name, path)).dataset
        again.test_set()
        second = time.perf_counter() - start
        pipe = pipeline_throughput(ds)
        steps = {depth: step_throughput(compose(name, path, f"dataset.depth={depth}"), x, y) for depth in (64, 16)}
        row = {"dataset": name, "train images": len(ds.splits["train"].y), "test images": len(y),
               "prepare s": first, "reload s": second, "pipeline img/s": pipe,
               **{f"step d{d} img/s": v for d, v in steps.items()},
               **{f"pipeline/step d{d}": pipe / v for d, v in steps.items()}}
        if not args.no_rss:
            rss, wall = peak_rss(name, path, work / "cache", work)
            row |= {"peak RSS GB": rss, "rss run s": wall}
        rows.append(row)
        print(json.dumps(row), flush=True)

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"\nCPU: {model}, {os.cpu_count()} cores")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(f"{r[k]:,.1f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "datasets.json").write_text(json.dumps({"cpu": model, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
