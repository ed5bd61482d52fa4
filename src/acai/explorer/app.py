"""The explorer's state and its HTTP API: logged models, the pair of endpoint images, decoded frames.

One user on 127.0.0.1: the state (runs, the current pair, their latents) lives in one `Explorer`, and
model calls take turns under its lock. Every bad input is an `AcaiError` answered as JSON
`{"error": message}` with HTTP 400 (404 for an unknown run), which the page shows as it is.

Images are read as `src/interpolate.py` reads them (`acai.interpolate.inputs`: `read_image` /
`image_to_array`, and its test pairs: by index, or a seeded pair with different labels).
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from mlflow.tracking import MlflowClient
from PIL import Image

from acai.errors import AcaiError, DatasetError, TrackingError
from acai.evaluation.interpolation import lerp, mix_weights, slerp
from acai.interpolate.inputs import MODES, image_to_array, pick_pairs, read_image, run_test_set
from acai.networks.inference import predict
from acai.tracking.loading import (
    download,
    get_run,
    has_artifact,
    load_autoencoder,
    register_custom_layers,
    require_finished,
)
from acai.tracking.mlflow_run import CRITIC_ARTIFACT
from acai.tracking.plots import to_uint8

STATIC = Path(__file__).resolve().parent / "static"
ALPHA_STEPS = 1001  # the slider's frame is taken on the path's grid of 1/1000 (lerp/slerp walk evenly)
MAX_PATH_STEPS = 33
MAX_UPLOAD_BYTES = 20 * 2**20
SLOTS = ("a", "b")


class BadRequest(AcaiError):
    """A query value or an upload the API cannot take: HTTP 400 with the reason."""


class RunNotFound(TrackingError):
    """A run id the store does not hold: HTTP 404."""


@dataclass
class Run:
    """A logged model on show: its autoencoder and, for ACAI, the critic that estimates α of a frame."""

    run_id: str
    name: str
    regularizer: str
    model: keras.Model
    critic: keras.Model | None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.model.input_shape[1:])

    def encode(self, images: np.ndarray) -> np.ndarray:
        return predict(self.model.get_layer("encode"), images)

    def decode(self, z: np.ndarray) -> np.ndarray:
        return predict(self.model.get_layer("decode"), z.astype(np.float32))

    def judge(self, frames: np.ndarray) -> list[float] | None:
        """The critic's α for each frame (ACAI learns min(α, 1 - α), 0 for a real image); None without one."""
        return None if self.critic is None else [float(v) for v in predict(self.critic, frames).reshape(-1)]

    def describe(self) -> dict:
        return {"run_id": self.run_id, "name": self.name, "regularizer": self.regularizer,
                "critic": self.critic is not None, "shape": list(self.shape)}


def load_critic(client: MlflowClient, run_id: str) -> keras.Model | None:
    """The run's `critic/critic.keras`, or None (not ACAI, or logged before critics were). Its head is the
    registered `acai>MeanOverFeatures`, so the project's layers are imported first and safe mode stays on."""
    if not has_artifact(client, run_id, CRITIC_ARTIFACT):
        return None
    register_custom_layers()
    with tempfile.TemporaryDirectory() as tmp:
        path = download(client, run_id, CRITIC_ARTIFACT, tmp)
        try:
            return keras.saving.load_model(path, safe_mode=True)
        except Exception as e:  # noqa: BLE001
            raise TrackingError(f"run {run_id}: its critic could not be loaded ({type(e).__name__}: {e})") from None


def load_run(client: MlflowClient, run_id: str) -> Run:
    """A finished run's logged model `runs:/<id>/model` (as any MLflow user loads it) and its critic."""
    run_id = run_id.strip()
    if not run_id:
        raise RunNotFound("give a run id (the 32 hex digits MLflow shows)")
    try:
        run = get_run(client, run_id)
    except TrackingError as e:
        raise RunNotFound(str(e)) from None
    require_finished(run)
    model = load_autoencoder(f"runs:/{run_id}/model")
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or None in shape:
        raise TrackingError(f"run {run_id}: its model takes inputs of shape {shape}; expected fixed H x W x C images")
    regularizer = run.data.params.get("regularizer.name", "?")
    return Run(run_id, run.info.run_name or run_id, regularizer, model, load_critic(client, run_id))


def data_url(image: np.ndarray) -> str:
    """A [-1, 1] image [H, W, C] as a PNG data URL the page can show directly."""
    pixels = to_uint8(image)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def latent_path(za: np.ndarray, zb: np.ndarray, mode: str, steps: int) -> np.ndarray:
    """`steps` latents from za to zb, endpoints included, by lerp or slerp."""
    return (lerp if mode == "linear" else slerp)(za[None], zb[None], steps)[0]


def parse_mode(mode: str | None) -> str:
    mode = mode or "linear"
    if mode not in MODES:
        raise BadRequest(f"mode={mode!r} is not valid: give one of {', '.join(MODES)}")
    return mode


def parse_number(name: str, text: str | None, low: float, high: float, integer: bool = False) -> float:
    """A query value as a number in [low, high]; one message that names it and the range otherwise."""
    kind = "an integer" if integer else "a number"
    if text is None or not text.strip():
        raise BadRequest(f"{name} is missing: give {kind} from {low:g} to {high:g}")
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise BadRequest(f"{name}={text!r} is not {kind}: give {kind} from {low:g} to {high:g}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"{name}={text} is out of range: give {kind} from {low:g} to {high:g}")
    return value


class Explorer:
    """The runs on show and the current pair of endpoint images (in [-1, 1], the models' input)."""

    def __init__(self, client: MlflowClient, runs: list[Run]):
        self.client = client
        self.runs: list[Run] = []
        self.shape = runs[0].shape
        self.ends: list[np.ndarray | None] = [None, None]
        self.sources = ["", ""]
        self.indices: list[int | None] = [None, None]  # test-set index of each endpoint; None for an upload
        self.lock = threading.RLock()
        self._latents: dict[str, np.ndarray] = {}
        self._test: tuple[np.ndarray, np.ndarray] | None = None
        for run in runs:
            self.add(run)

    def add(self, run: Run) -> None:
        """Show one more run beside the others, on the same pair: it must take the same images."""
        with self.lock:
            if any(r.run_id == run.run_id for r in self.runs):
                raise BadRequest(f"run {run.run_id} ({run.name}) is already shown")
            if run.shape != self.shape:
                raise BadRequest(f"run {run.run_id} ({run.name}) takes {run.shape} images, the runs shown take "
                                 f"{self.shape}: runs compared on one pair must share the image size")
            self.runs.append(run)

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The first run's test set, as its logged config builds it (read once)."""
        with self.lock:
            if self._test is None:
                self._test = run_test_set(self.client, self.runs[0].run_id, self.shape)
            return self._test

    def pick(self, a: str | None = None, b: str | None = None, seed: str | None = None) -> dict:
        """Endpoints from the test set: indices a and b, or a seeded pair whose labels differ (none given: seed 0)."""
        x, y = self.test_set()
        n = len(x)
        if a is None and b is None:
            rng_seed = int(parse_number("seed", seed or "0", 0, 2**31 - 1, integer=True))
            i, j = pick_pairs(np.arange(n), y, None, 1, rng_seed)[0]  # on the indices: which images it picked
        else:
            i, j = (int(parse_number(f"index {s}", v, 0, n - 1, integer=True)) for s, v in zip(SLOTS, (a, b)))
        with self.lock:
            self.ends = [x[i], x[j]]
            self.sources = [f"test image {k} (label {y[k]})" for k in (i, j)]
            self.indices = [int(i), int(j)]
            self._latents.clear()
        return self.pair()

    def upload(self, slot: str | None, name: str | None, data: bytes) -> dict:
        """One endpoint from an uploaded image file, read and fitted to the models as `src/interpolate.py` does."""
        if slot not in SLOTS:
            raise BadRequest(f"slot={slot!r} is not valid: upload into slot a or b")
        name = Path(name or "upload").name or "upload"
        if not data:
            raise BadRequest(f"the upload {name!r} is empty: choose an image file")
        if len(data) > MAX_UPLOAD_BYTES:
            raise BadRequest(f"the upload {name!r} is {len(data) / 2**20:.1f} MB; "
                             f"images up to {MAX_UPLOAD_BYTES // 2**20} MB are taken")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            try:
                image = image_to_array(read_image(path), self.shape)
            except DatasetError as e:  # name the file as the user knows it, not the temporary copy
                raise DatasetError(str(e).replace(str(path), name)) from None
        with self.lock:
            k = SLOTS.index(slot)
            self.ends[k] = image
            self.sources[k] = f"upload {name}"
            self.indices[k] = None
            self._latents.clear()
        return self.pair()

    def pair(self) -> dict:
        with self.lock:
            return {slot: None if end is None else {"image": data_url(end), "source": source, "index": index}
                    for slot, end, source, index in zip(SLOTS, self.ends, self.sources, self.indices)}

    def _ends(self) -> np.ndarray:
        if any(end is None for end in self.ends):
            missing = " and ".join(s.upper() for s, end in zip(SLOTS, self.ends) if end is None)
            raise BadRequest(f"no image {missing} yet: pick a test pair or upload two images")
        return np.stack(self.ends)

    def _z(self, run: Run) -> tuple[np.ndarray, np.ndarray]:
        z = self._latents.get(run.run_id)
        if z is None:
            z = self._latents[run.run_id] = run.encode(self._ends())
        return z[0], z[1]

    def frame(self, alpha: str | None, mode: str | None) -> dict:
        """Each run's decoded frame at α on the pair's path, with its critic's estimate of α."""
        value = parse_number("alpha", alpha, 0.0, 1.0)
        mode = parse_mode(mode)
        k = round(value * (ALPHA_STEPS - 1))
        frames = []
        with self.lock:
            for run in self.runs:
                frame = run.decode(latent_path(*self._z(run), mode, ALPHA_STEPS)[k:k + 1])
                critic = run.judge(frame)
                frames.append({"run_id": run.run_id, "image": data_url(frame[0]),
                               "critic": None if critic is None else critic[0]})
        return {"alpha": k / (ALPHA_STEPS - 1), "mode": mode, "frames": frames}

    def path(self, steps: str | None, mode: str | None) -> dict:
        """Each run's whole decoded path as a strip of `steps` frames, α = 0 .. 1 evenly."""
        count = int(parse_number("steps", steps or "11", 2, MAX_PATH_STEPS, integer=True))
        mode = parse_mode(mode)
        runs = []
        with self.lock:
            for run in self.runs:
                frames = run.decode(latent_path(*self._z(run), mode, count))
                runs.append({"run_id": run.run_id, "frames": [data_url(f) for f in frames],
                             "critic": run.judge(frames)})
        return {"alphas": [float(t) for t in mix_weights(count)], "mode": mode, "runs": runs}

    def describe(self) -> dict:
        with self.lock:
            return {"runs": [run.describe() for run in self.runs], "modes": list(MODES), "shape": list(self.shape)}


def create_app(explorer: Explorer) -> FastAPI:
    """The page (GET /, plain HTML and JavaScript from `static/`, nothing from the network) and its JSON API."""
    app = FastAPI(title="acai explorer", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(AcaiError)
    async def bad_input(request: Request, e: AcaiError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=404 if isinstance(e, RunNotFound) else 400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "bad request: " + "; ".join(str(err.get("msg")) for err in e.errors())}, 400)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/runs")
    def runs() -> dict:
        return explorer.describe()

    @app.post("/api/runs")
    def add_run(run_id: str = "") -> dict:
        explorer.add(load_run(explorer.client, run_id))  # loaded outside the lock: frames keep coming meanwhile
        return explorer.describe()

    @app.get("/api/pair")
    def pair() -> dict:
        return explorer.pair()

    @app.post("/api/pair")
    def pick(a: str | None = None, b: str | None = None, seed: str | None = None) -> dict:
        return explorer.pick(a, b, seed)

    @app.post("/api/upload")
    async def upload(request: Request, slot: str | None = None, name: str | None = None) -> dict:
        size = request.headers.get("content-length", "")
        if size.isdigit() and int(size) > MAX_UPLOAD_BYTES:  # refused before it is read into memory
            raise BadRequest(f"the upload is {int(size) / 2**20:.1f} MB; images up to "
                             f"{MAX_UPLOAD_BYTES // 2**20} MB are taken")
        return explorer.upload(slot, name, await request.body())

    @app.get("/api/frame")
    def frame(alpha: str | None = None, mode: str | None = None) -> dict:
        return explorer.frame(alpha, mode)

    @app.get("/api/path")
    def path(steps: str | None = None, mode: str | None = None) -> dict:
        return explorer.path(steps, mode)

    return app
