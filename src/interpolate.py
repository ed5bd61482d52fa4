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
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # before TensorFlow is imported: its start-up chatter goes to fd 2 at import
    from acai.console import quiet_native_logs

    quiet_native_logs()

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from PIL import Image  # noqa: E402

from acai.config import DEFAULT_TRACKING_URI  # noqa: E402
from acai.data.decode import ImageReadError, to_pixels  # noqa: E402
from acai.data.decode import read_image as decode_image  # noqa: E402
from acai.errors import AcaiError, ConfigError, DatasetError, TrackingError  # noqa: E402

MODES = ("linear", "spherical")
DEFAULT_PAIRS = 8
# Upper bounds on what is drawn: beyond them a figure takes minutes and gigabytes (a huge --steps or --scale
# hung or ran out of memory). --steps and the rows match the served interpolator's 2..64.
MAX_STEPS = 64
MAX_ROWS = 64
MAX_SCALE = 16
ACCEPTED = "give an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP, ...)"
RUNS_URI = re.compile(r"^runs:/([^/]+)(/|$)")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file by the project's one rule (`acai.data.decode`: upright by EXIF,
    16-bit scaled, alpha kept for the background), so a file gives the pixels a folder dataset gets.

    DatasetError, naming the file and what is accepted, if it cannot be read.
    """
    try:
        return decode_image(path)
    except ImageReadError as e:
        raise DatasetError(f"{e}; {ACCEPTED}") from None


def image_to_array(img: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    """A Pillow image -> float32 [H, W, C] in [-1, 1] for a model whose input is `shape` (C = 1 or 3):
    transparency over the datasets' black background, then resized (Lanczos) to H x W."""
    from acai.data.base import to_unit_range

    h, w, c = shape
    if c not in (1, 3):
        raise DatasetError(f"the model takes {c}-channel images; image files work for 1 (grayscale) or 3 (RGB)")
    pixels = to_pixels(img, c)
    if pixels.shape[:2] != (h, w):
        resized = Image.fromarray(pixels[..., 0] if c == 1 else pixels).resize((w, h), Image.Resampling.LANCZOS)
        pixels = np.asarray(resized, np.uint8).reshape(h, w, c)
    return to_unit_range(pixels)


def load_image(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """An image file as the model's input: float32 [H, W, C] in [-1, 1] (x * 2/255 - 1)."""
    return image_to_array(read_image(path), shape)


def _pairs(values: list, option: str, example: str) -> list[tuple]:
    if not values or len(values) % 2:
        raise ConfigError(option, values, f"give pairs, an even number of values (e.g. {option} {example})")
    if len(values) > 2 * MAX_ROWS:
        raise ConfigError(option, f"{len(values)} values", f"give at most {MAX_ROWS} pairs (rows of the figure)")
    return list(zip(values[::2], values[1::2]))


def _open_store(tracking_uri: str) -> MlflowClient:
    from acai.tracking.mlflow_run import open_existing_store

    return open_existing_store(tracking_uri)


def _model_source(target: str, client: MlflowClient) -> tuple[str, str | None]:
    """(model URI, run id or None when it is not known without asking the model)."""
    if ":" in target or Path(target).expanduser().exists():
        match = RUNS_URI.match(target)
        if match:
            from acai.tracking.loading import get_run

            get_run(client, match.group(1))
            return target, match.group(1)
        return target, None
    from acai.tracking.loading import get_run, require_finished

    require_finished(get_run(client, target))
    return f"runs:/{target}/model", target


def _source_run(model_uri: str, why: str) -> str:
    """The run that logged a model (for `models:/...` URIs), needed by `why`."""
    try:
        run_id = mlflow.models.get_model_info(model_uri).run_id
    except Exception as e:  # noqa: BLE001
        raise TrackingError(f"model {model_uri!r}: cannot find the run that logged it ({_one_line(e)})") from None
    if not run_id:
        raise TrackingError(f"model {model_uri!r} was not logged by an MLflow run; {why} needs one")
    return run_id


def _test_images(client: MlflowClient, run_id: str, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    from acai.config import build
    from acai.data.base import Dataset, pad_to
    from acai.tracking.loading import run_config

    dataset = build(run_config(client, run_id).dataset, "dataset", Dataset)
    x, y = dataset.test_set()
    x = pad_to(x, shape[0])
    if x.shape[1:] != shape:
        raise DatasetError(f"dataset={dataset.name} gives images of shape {x.shape[1:]}, but the model takes {shape}")
    return x, y


def _writable_png(out: str | Path) -> Path:
    out = Path(out).expanduser()
    if out.suffix.lower() != ".png":
        raise ConfigError("--out", str(out), "must be a .png file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("--out", str(out), f"cannot create its folder ({e.strerror})") from None
    if out.is_dir() or not os.access(out.parent, os.W_OK):
        raise ConfigError("--out", str(out), "must be a writable file path")
    return out


def interpolate(target: str | list[str], out: str | Path | None = None, *, indices: list[int] | None = None,
                images: list[str] | None = None, pairs: int | None = None, seed: int = 0, steps: int = 11,
                mode: str = "linear", tracking_uri: str = DEFAULT_TRACKING_URI, log: bool = False,
                scale: int = 2, plain: bool = False) -> Path:
    """Write the interpolation grid (one per model for several) to `out`; AcaiError on any bad input."""
    targets = [target] if isinstance(target, str) else list(target)
    if len(targets) > 1 and log:
        raise ConfigError("--log", "with several models", "log a single model's grid; compare without --log")
    given = [name for name, value in (("--indices", indices), ("--images", images), ("--pairs", pairs))
             if value is not None]
    if len(given) > 1:
        raise ConfigError("--indices/--images/--pairs", " and ".join(given),
                          "give one of --indices A B, --images FILE_A FILE_B or --pairs N")
    if not given:
        pairs = DEFAULT_PAIRS
    if not 1 <= scale <= MAX_SCALE:
        raise ConfigError("--scale", scale, f"must be 1 to {MAX_SCALE} (how many times the figure is enlarged)")
    if not 2 <= steps <= MAX_STEPS:
        raise ConfigError("--steps", steps, f"must be 2 to {MAX_STEPS} (points per row, the two endpoints included)")
    if mode not in MODES:
        raise ConfigError("--mode", mode, f"must be one of {list(MODES)}")
    if pairs is not None and not 1 <= pairs <= MAX_ROWS:
        raise ConfigError("--pairs", pairs, f"must be 1 to {MAX_ROWS} (rows of the figure)")
    if seed < 0:
        raise ConfigError("--seed", seed, "must be >= 0 (numpy's random generator takes no negative seed)")
    index_pairs = _pairs(indices, "--indices", "3 17") if indices is not None else None
    file_pairs = _pairs(images, "--images", "a.png b.jpg") if images is not None else None
    if out is not None:
        out = _writable_png(out)
    opened = [[read_image(f) for f in pair] for pair in file_pairs] if file_pairs else None  # fail fast

    client = _open_store(tracking_uri)
    sources = [_source(t, client, tracking_uri) for t in targets]
    model_uri, run_id, model = sources[0]
    shape = tuple(model.input_shape[1:])
    if opened is not None:
        ends = np.array([[image_to_array(img, shape) for img in pair] for pair in opened], np.float32)
    else:
        if run_id is None:
            run_id = _source_run(model_uri, "--indices/--pairs (the run's test set)")
        ends = _test_pairs(*_test_images(client, run_id, shape), index_pairs, pairs, seed)
    for uri, _, other in sources[1:]:
        if tuple(other.input_shape[1:]) != shape:
            raise TrackingError(f"model {uri!r} takes {tuple(other.input_shape[1:])} images, the first takes "
                                f"{shape}: models compared in one figure must share a dataset and image size")

    if out is None:  # <run name>-interpolation.png in the current folder
        name = re.sub(r"[^\w.-]+", "_", _label(client, model_uri, run_id))
        out = _writable_png(f"{name}-interpolation.png")
    captions = [None] if len(sources) == 1 else [f"{_label(client, uri, rid)}: {mode} interpolation, the same pairs"
                                                 for uri, rid, _ in sources]
    grids = [_grid(_path_frames(m, ends, steps, mode), ends, mode, scale, plain, caption)
             for (_, _, m), caption in zip(sources, captions)]
    try:
        Image.fromarray(grids[0] if len(grids) == 1 else _stacked(grids)).save(out, format="PNG")
    except OSError as e:
        raise ConfigError("--out", str(out), f"cannot be written ({_one_line(e)})") from None

    if log:
        if run_id is None:
            run_id = _source_run(model_uri, "--log")
        try:
            client.log_artifact(run_id, str(out), "interpolations")
        except Exception as e:  # noqa: BLE001
            raise TrackingError(f"run {run_id}: cannot log {out} as an artifact ({_one_line(e)})") from None
    return out


def _source(target: str, client: MlflowClient, tracking_uri: str):
    """(model URI, run id or None, loaded autoencoder) for a run id or model URI."""
    from acai.tracking.loading import load_autoencoder

    try:
        model_uri, run_id = _model_source(target, client)
    except AcaiError:
        raise
    except Exception as e:  # noqa: BLE001 - a store that is not an MLflow database, an odd scheme, ...
        raise TrackingError(f"--tracking-uri={tracking_uri!r}: cannot read the MLflow store "
                            f"({type(e).__name__}: {_one_line(e)})") from None
    model = load_autoencoder(model_uri)
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or None in shape:
        raise TrackingError(f"model {model_uri!r} takes inputs of shape {shape}; expected fixed H x W x C images")
    return model_uri, run_id, model


def _test_pairs(x: np.ndarray, y: np.ndarray, index_pairs: list[tuple] | None, pairs: int | None,
                seed: int) -> np.ndarray:
    """Endpoint images [rows, 2, H, W, C] from the test set: by index, or N seeded pairs whose two images
    differ in label (class, or angle bin on lines), so that every row shows a real interpolation."""
    n = len(x)
    if pairs is not None:
        if n < 2:
            raise DatasetError(f"the run's test set has {n} image(s); --pairs needs at least 2")
        rng = np.random.default_rng(seed)
        a = rng.choice(n, pairs, replace=pairs > n)
        index_pairs = []
        for i in a:
            others = np.flatnonzero(y != y[i])
            others = others if len(others) else np.delete(np.arange(n), i)  # one label only: any other image
            index_pairs.append((int(i), int(rng.choice(others))))
    bad = sorted({i for pair in index_pairs for i in pair if not 0 <= i < n})
    if bad:
        raise DatasetError(f"--indices {bad}: out of range; the run's test set has {n} images (0..{n - 1})")
    return x[np.array(index_pairs)]


def _path_frames(model, ends: np.ndarray, steps: int, mode: str) -> np.ndarray:
    """Encode the endpoints, walk the latent path, decode: frames [rows, steps, H, W, C] in [-1, 1]."""
    from acai.evaluation.interpolation import lerp, slerp
    from acai.networks.inference import predict

    rows, shape = len(ends), ends.shape[2:]
    z = predict(model.get_layer("encode"), ends.reshape((2 * rows,) + shape))
    z = z.reshape((rows, 2) + z.shape[1:])
    path = (lerp if mode == "linear" else slerp)(z[:, 0], z[:, 1], steps).astype(np.float32)
    frames = predict(model.get_layer("decode"), path.reshape((rows * steps,) + z.shape[2:]))
    return frames.reshape((rows, steps) + frames.shape[1:])


def _grid(frames: np.ndarray, ends: np.ndarray, mode: str, scale: int, plain: bool,
          caption: str | None = None) -> np.ndarray:
    """The figure: inputs A and B around the decoded path under α labels; `plain`: the bare frames."""
    from acai.tracking.plots import INTERPOLATION_CAPTION, image_grid, interpolation_grid

    if plain:
        return image_grid(frames)
    if caption is None:
        caption = INTERPOLATION_CAPTION if mode == "linear" else "decode(slerp(z(A), z(B), α)), A and B the inputs"
    return interpolation_grid(ends[:, 0], frames, ends[:, 1], scale, caption)


def _label(client: MlflowClient, model_uri: str, run_id: str | None) -> str:
    """The run's name (it says regularizer, dataset, model, latent size, seed), else the model URI."""
    if run_id is None:
        return model_uri
    try:
        return client.get_run(run_id).info.run_name or run_id
    except Exception:  # noqa: BLE001 - a label is cosmetic
        return run_id


def _stacked(grids: list[np.ndarray], gap: int = 12) -> np.ndarray:
    """Panels one above the other, left-aligned on a white background, `gap` pixels apart."""
    width = max(g.shape[1] for g in grids)
    rows = []
    for grid in grids:
        pad = [(0, gap), (0, width - grid.shape[1])] + [(0, 0)] * (grid.ndim - 2)
        rows.append(np.pad(grid, pad, constant_values=255))
    return np.concatenate(rows)[:-gap]


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
