"""The `interpolator` pyfunc model every run logs: in process, and served by `mlflow models serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pytest
from conftest import free_port

from acai.data.lines import Lines
from acai.evaluation.interpolation import lerp

pytestmark = pytest.mark.slow  # real processes: kept in CI, skipped by `-m 'not slow'`


@pytest.fixture(scope="module")
def served_run(smoke_run):
    """The session's smoke run on lines; (tracking uri, run id, two test lines at different angles in 0..255)."""
    cfg, run_id = smoke_run
    x, y = Lines(test_size=64).test_set()
    i, j = 0, int(np.flatnonzero(y != y[0])[0])
    pixels = np.rint((x[[i, j]] + 1) * 127.5)  # the [-1, 1] test images as 0..255 pixel values
    return cfg.tracking.uri, run_id, pixels


def test_interpolator_decodes_the_latent_path_between_the_two_images(served_run):
    uri, run_id, pixels = served_run
    mlflow.set_tracking_uri(uri)
    interpolator = mlflow.pyfunc.load_model(f"runs:/{run_id}/interpolator")
    frames = interpolator.predict({"a": pixels[:1], "b": pixels[1:]}, params={"steps": 5})
    assert frames.shape == (1, 5, 32, 32, 1) and frames.dtype == np.uint8

    autoencoder = mlflow.keras.load_model(f"runs:/{run_id}/model")
    encode, decode = autoencoder.get_layer("encode"), autoencoder.get_layer("decode")
    x = pixels * (2 / 255) - 1
    z = np.asarray(encode(x.astype(np.float32)))
    path = lerp(z[:1], z[1:], 5).reshape((5,) + z.shape[1:]).astype(np.float32)
    expected = np.clip((np.asarray(decode(path)) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(frames[0].astype(int) - expected).max() <= 1  # frame 0 = a's reconstruction, 4 = b's

    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="params.steps=99"):
        interpolator.predict({"a": pixels[:1], "b": pixels[1:]}, params={"steps": 99})
    assert np.get_printoptions()["threshold"] == 1000  # a bad request leaves the caller's numpy settings alone
    batch = interpolator.predict({"a": pixels, "b": pixels[::-1]}, params={"steps": 3})
    assert batch.shape == (2, 3, 32, 32, 1)
    np.testing.assert_array_equal(batch[0], batch[1][::-1])  # a pair and its reverse walk one path


def post(port: int, body: dict | str) -> tuple[int, dict]:
    data = body if isinstance(body, str) else json.dumps(body)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=data.encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def server(served_run, tmp_path_factory):
    """`mlflow models serve -m runs:/<id>/interpolator --env-manager local` on a free port."""
    uri, run_id, _ = served_run
    port = free_port()
    log = (tmp_path_factory.mktemp("server") / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{run_id}/interpolator",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=os.environ | {"MLFLOW_TRACKING_URI": uri}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, open(log.name).read()[-3000:]
                time.sleep(0.5)
        yield port
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        log.close()


def test_served_interpolator_answers_with_the_frames(server, served_run):
    *_, pixels = served_run
    status, body = post(server, {"inputs": {"a": pixels[:1].tolist(), "b": pixels[1:].tolist()},
                                 "params": {"steps": 4}})
    assert status == 200, body
    frames = np.asarray(body["predictions"])
    assert frames.shape == (1, 4, 32, 32, 1) and frames.min() >= 0 and frames.max() <= 255


GOOD = np.zeros((1, 32, 32, 1)).tolist()


@pytest.mark.parametrize("body, message", [
    ({"inputs": {"a": np.zeros((1, 28, 28, 1)).tolist(), "b": GOOD}}, "Shape of input (1, 28, 28, 1) does not match "
     "expected shape (-1, 32, 32, 1)"),
    ({"inputs": {"a": GOOD, "b": (np.ones((1, 32, 32, 1)) * 300).tolist()}}, "input 'b' has values in [300, 300]; "
     "pixel values are 0..255"),
    ({"inputs": {"a": [[[["x"]] * 32] * 32], "b": GOOD}}, "could not convert string to float"),
    ({"inputs": {"a": GOOD, "b": GOOD}, "params": {"steps": 500}}, "params.steps=500: give an integer from 2 to 64"),
    ({"inputs": {"a": GOOD, "b": GOOD}, "params": {"steps": 1}}, "params.steps=1"),
    ({"inputs": {"a": GOOD, "b": np.zeros((2, 32, 32, 1)).tolist()}}, "hold 1 and 2 images"),
    ({"inputs": {"a": GOOD}}, "missing inputs ['b']"),
], ids=["shape", "range", "dtype", "too-many-steps", "one-step", "unpaired", "missing"])
def test_bad_requests_get_a_400_with_the_reason(server, body, message):
    status, answer = post(server, body)
    assert status == 400, answer
    assert message in answer["message"]
    assert "Traceback" not in json.dumps(answer)
    assert len(answer["message"]) < 400, answer["message"][:1000]  # the reason, not a dump of the request


IMAGE = json.dumps(GOOD)
PATHOLOGICAL = [
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "the request's JSON is nested too deeply"),  # was a 500
    ("JSON null", "null", "must be a JSON dictionary"),
    ("inputs not a dict", '{"inputs": [1, 2, 3]}', "missing inputs ['a', 'b']"),
    ("uneven nested lists", json.dumps({"inputs": {"a": [[[[1]] * 32] * 31 + [[[1]] * 30]], "b": GOOD}}),
     "inhomogeneous shape"),
    ("huge integer", '{"inputs": {"a": ' + IMAGE.replace("0.0", "1" + "0" * 400, 1) + f', "b": {IMAGE}}}}}',
     "int too large to convert to float"),
    ("huge float", '{"inputs": {"a": ' + IMAGE.replace("0.0", "1e400", 1) + f', "b": {IMAGE}}}}}',
     "input 'a' has values in [0, inf]"),
    ("null image", json.dumps({"inputs": {"a": None, "b": GOOD}}), "Shape of input () does not match"),
    ("params not a dict", json.dumps({"inputs": {"a": GOOD, "b": GOOD}, "params": [1]}), "must be a dictionary"),
    ("not JSON", "{", "valid JSON"),
]


@pytest.mark.parametrize("body, message", [r[1:] for r in PATHOLOGICAL], ids=[r[0] for r in PATHOLOGICAL])
def test_pathological_bodies_get_a_short_400_with_the_reason(server, body, message):
    status, answer = post(server, body)
    assert status == 400 and message in answer["message"], answer
    assert len(answer["message"]) < 400 and "Traceback" not in json.dumps(answer)
