"""The interpolation figure of `src/interpolate.py`: load the models, walk the latent path between
each pair of ends, decode it and draw one grid per model into a PNG (`interpolate`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient
from PIL import Image

from acai.config import DEFAULT_TRACKING_URI
from acai.errors import AcaiError, ConfigError, TrackingError, one_line
from acai.interpolate.inputs import (
    DEFAULT_PAIRS,
    MAX_ROWS,
    MAX_SCALE,
    MAX_STEPS,
    MODES,
    image_to_array,
    pairs_of,
    pick_pairs,
    read_image,
    run_test_set,
)
from acai.tracking.mlflow_run import open_existing_store

RUNS_URI = re.compile(r"^runs:/([^/]+)(/|$)")


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
        raise TrackingError(f"model {model_uri!r}: cannot find the run that logged it ({one_line(e)})") from None
    if not run_id:
        raise TrackingError(f"model {model_uri!r} was not logged by an MLflow run; {why} needs one")
    return run_id


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


def _checked_options(*, indices: list[int] | None, images: list[str] | None, pairs: int | None, scale: int,
                     steps: int, mode: str, seed: int) -> int | None:
    """Every option in range, one way of choosing the ends; returns `pairs` (the default when none is given)."""
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
    return pairs


def interpolate(target: str | list[str], out: str | Path | None = None, *, indices: list[int] | None = None,
                images: list[str] | None = None, pairs: int | None = None, seed: int = 0, steps: int = 11,
                mode: str = "linear", tracking_uri: str = DEFAULT_TRACKING_URI, log: bool = False,
                scale: int = 2, plain: bool = False) -> Path:
    """Write the interpolation grid (one per model for several) to `out`; AcaiError on any bad input."""
    targets = [target] if isinstance(target, str) else list(target)
    if len(targets) > 1 and log:
        raise ConfigError("--log", "with several models", "log a single model's grid; compare without --log")
    pairs = _checked_options(indices=indices, images=images, pairs=pairs, scale=scale, steps=steps, mode=mode,
                             seed=seed)
    index_pairs = pairs_of(indices, "--indices", "3 17") if indices is not None else None
    file_pairs = pairs_of(images, "--images", "a.png b.jpg") if images is not None else None
    if out is not None:
        out = _writable_png(out)
    opened = [[read_image(f) for f in pair] for pair in file_pairs] if file_pairs else None  # fail fast

    client = open_existing_store(tracking_uri)
    sources = [_source(t, client, tracking_uri) for t in targets]
    model_uri, run_id, model = sources[0]
    shape = tuple(model.input_shape[1:])
    if opened is not None:
        ends = np.array([[image_to_array(img, shape) for img in pair] for pair in opened], np.float32)
    else:
        if run_id is None:
            run_id = _source_run(model_uri, "--indices/--pairs (the run's test set)")
        ends = pick_pairs(*run_test_set(client, run_id, shape), index_pairs, pairs, seed)
    for uri, _, other in sources[1:]:
        if tuple(other.input_shape[1:]) != shape:
            raise TrackingError(f"model {uri!r} takes {tuple(other.input_shape[1:])} images, the first takes "
                                f"{shape}: models compared in one figure must share a dataset and image size")

    if out is None:  # <run name>-interpolation.png in the current folder
        name = re.sub(r"[^\w.-]+", "_", _label(client, model_uri, run_id))
        out = _writable_png(f"{name}-interpolation.png")
    captions = [None] if len(sources) == 1 else [f"{_label(client, uri, rid)}: {mode} interpolation, the same pairs"
                                                 for uri, rid, _ in sources]
    grids = [_grid(_path_frames(m, ends, steps, mode), ends, mode, scale, plain=plain, caption=caption)
             for (_, _, m), caption in zip(sources, captions)]
    try:
        Image.fromarray(grids[0] if len(grids) == 1 else _stacked(grids)).save(out, format="PNG")
    except OSError as e:
        raise ConfigError("--out", str(out), f"cannot be written ({one_line(e)})") from None

    if log:
        if run_id is None:
            run_id = _source_run(model_uri, "--log")
        try:
            client.log_artifact(run_id, str(out), "interpolations")
        except Exception as e:  # noqa: BLE001
            raise TrackingError(f"run {run_id}: cannot log {out} as an artifact ({one_line(e)})") from None
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
                            f"({type(e).__name__}: {one_line(e)})") from None
    model = load_autoencoder(model_uri)
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or None in shape:
        raise TrackingError(f"model {model_uri!r} takes inputs of shape {shape}; expected fixed H x W x C images")
    return model_uri, run_id, model


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


def _grid(frames: np.ndarray, ends: np.ndarray, mode: str, scale: int, *, plain: bool,
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
