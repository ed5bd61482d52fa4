"""The `interpolator` pyfunc model every run logs: two images (or a batch of pairs) in, the decoded
latent interpolation out. MLflow logs this file as code ("models from code") next to the autoencoder,
so it imports only numpy, Keras and MLflow: it serves where this project is not installed.

Request (`mlflow models serve -m runs:/<id>/interpolator`, POST /invocations):
    {"inputs": {"a": [N, H, W, C], "b": [N, H, W, C]}, "params": {"steps": 11}}
with pixel values 0..255; a single pair is a batch of one. Response: {"predictions": [N, steps, H, W, C]}
uint8 frames, t = 0 .. 1 evenly (endpoints included; frame 0 decodes a, the last decodes b).
"""

from __future__ import annotations

import os
import sys

import keras
import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import set_model

MAX_STEPS = 64
MAX_PAIRS = 64
MAX_REASON = 400  # characters of a 400's message: the reason, not a dump of the request


def bad_request(message: str) -> MlflowException:
    """Raised from `predict`, MLflow's scoring server answers 400 with this message, not a 500."""
    if os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() == "true":
        # the server puts a dump of the request's arrays ahead of the reason: keep it short there only
        np.set_printoptions(threshold=8, edgeitems=1)
    return MlflowException.invalid_parameter_value(message)


def serving() -> bool:
    """Loaded by `mlflow models serve`: its app module is importing (it loads the model before it sets
    MLflow's serving variable), or the variable is set."""
    return ("mlflow.pyfunc.scoring_server.app" in sys.modules
            or os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() == "true")


def reason(message: str) -> str:
    """The reason in an MLflow scoring error, without the dump of the request MLflow puts ahead of it
    ("Failed to predict data '<every array>'. Error: ...") or after it ("Input: <the body>")."""
    if message.startswith("Failed to predict data"):
        message = message.rsplit("Error: ", 1)[-1]
    message = message.split("\nInput:", 1)[0].strip()
    return message if len(message) <= MAX_REASON else message[:MAX_REASON] + "..."


def short_errors() -> None:
    """In `mlflow models serve` only: every 400 carries the reason alone (one for a wrong shape used to be
    47,604 characters of the request's arrays first), and a body the server's own parsing cannot take (JSON
    nested deeper than Python's recursion limit) is a 400 with the reason instead of a 500."""
    from mlflow.pyfunc import scoring_server

    original = getattr(scoring_server, "invocations", None)
    if original is None or getattr(original, "short_errors", False):
        return  # another MLflow layout: serve with its own messages rather than fail to load

    def invocations(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except MlflowException as e:
            e.message = reason(e.message)
            raise
        except RecursionError:
            raise MlflowException.invalid_parameter_value(
                'the request\'s JSON is nested too deeply; send {"inputs": {"a": [N, H, W, C], "b": [N, H, W, C]}}'
            ) from None

    invocations.short_errors = True
    scoring_server.invocations = invocations


class Interpolator(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        if serving():
            short_errors()
        model = keras.saving.load_model(context.artifacts["autoencoder"], safe_mode=True)
        self.encode, self.decode = model.get_layer("encode"), model.get_layer("decode")
        self.shape = tuple(model.input_shape[1:])

    def images(self, model_input, name: str) -> np.ndarray:
        if not isinstance(model_input, dict) or name not in model_input:
            raise bad_request('send {"inputs": {"a": [N, H, W, C], "b": [N, H, W, C]}} with pixel values 0..255')
        try:
            x = np.asarray(model_input[name], np.float32)
        except (TypeError, ValueError):
            raise bad_request(f"input {name!r} must be numbers (pixel values 0..255)") from None
        if x.ndim != 4 or x.shape[1:] != self.shape:
            raise bad_request(f"input {name!r} has shape {list(x.shape)}; this model takes [N, "
                              f"{', '.join(map(str, self.shape))}] (a batch of N images)")
        if not len(x) or len(x) > MAX_PAIRS:
            raise bad_request(f"input {name!r} holds {len(x)} images; send 1 to {MAX_PAIRS} pairs per request")
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 255:
            raise bad_request(f"input {name!r} has values in [{x.min():g}, {x.max():g}]; pixel values are 0..255")
        return x * (2.0 / 255.0) - 1.0  # as the training data: x * 2/255 - 1

    def predict(self, context, model_input, params=None) -> np.ndarray:
        a, b = self.images(model_input, "a"), self.images(model_input, "b")
        if len(a) != len(b):
            raise bad_request(f"inputs 'a' and 'b' hold {len(a)} and {len(b)} images; they pair up one to one")
        steps = (params or {}).get("steps", 11)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 2 <= steps <= MAX_STEPS:
            raise bad_request(f"params.steps={steps!r}: give an integer from 2 to {MAX_STEPS} (endpoints included)")
        za, zb = np.asarray(self.encode(a)), np.asarray(self.encode(b))
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32).reshape((1, steps) + (1,) * (za.ndim - 1))
        path = (1.0 - t) * za[:, None] + t * zb[:, None]
        flat = path.reshape((-1,) + za.shape[1:])
        frames = np.concatenate([np.asarray(self.decode(flat[i:i + 256])) for i in range(0, len(flat), 256)])
        pixels = np.clip((frames + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
        return pixels.reshape((len(a), steps) + pixels.shape[1:])


set_model(Interpolator())
