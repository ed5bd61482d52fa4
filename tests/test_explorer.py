"""`src/explore.py`: the explorer's API over real HTTP (a real uvicorn server on a free port) on two real logged
runs (the session's plain AE and an ACAI run with its logged critic, in one store), and its page in a real
headless Chromium driven by Selenium.

`python tests/test_explorer.py --screenshot docs/explorer.png RUN_ID [...] --tracking-uri URI` takes the
README's screenshot with the same browser setup.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import ROOT, compose_in
from mlflow.tracking import MlflowClient
from PIL import Image
from tracking_server import MlflowServer

from acai.evaluation.interpolation import lerp, slerp
from acai.explorer.server import listen, start
from acai.interpolate.inputs import load_image, run_test_set
from acai.networks.inference import predict
from acai.tracking.loading import load_autoencoder
from acai.tracking.mlflow_run import CRITIC_ARTIFACT, resolve_uri
from acai.tracking.plots import to_uint8

sys.path.insert(0, str(ROOT / "src"))
import explore  # noqa: E402  (the script: its main)

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def runs(smoke_run) -> tuple[str, str, str]:
    """(tracking uri, ACAI run id, plain AE run id): an ACAI smoke run trained into the session's smoke store."""
    from acai.training.run import train

    cfg, plain_id = smoke_run
    store = Path(resolve_uri(cfg.tracking.uri).removeprefix("sqlite:///")).parent
    acai_id = train(compose_in(store, "model=mlp", "regularizer=acai", "experiment=smoke"))
    return resolve_uri(cfg.tracking.uri), acai_id, plain_id


class Served:
    """The explorer on a free port in this process, as `src/explore.py` builds it."""

    def __init__(self, uri: str, run_ids: list[str]):
        self.server, self.sock, self.url = start(run_ids, uri, port=0)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the explorer did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture(scope="module")
def app(runs) -> Iterator[str]:
    """The explorer's base URL, over the ACAI run and the plain AE side by side."""
    uri, acai_id, plain_id = runs
    served = Served(uri, [acai_id, plain_id])
    try:
        yield served.url
    finally:
        served.stop()


def call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def ok(url: str, method: str = "GET", body: bytes | None = None) -> dict:
    status, answer = call(url, method, body)
    assert status == 200, answer
    return answer


def pixels(url: str) -> np.ndarray:
    """A PNG data URL's pixels, [H, W, 1] for grayscale."""
    assert url.startswith("data:image/png;base64,")
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    return image[..., None] if image.ndim == 2 else image


@pytest.fixture(scope="module")
def reference(runs):
    """What the frames should be, computed apart from the app: the logged models and the run's test set."""
    uri, acai_id, plain_id = runs
    mlflow.set_tracking_uri(uri)
    model = load_autoencoder(f"runs:/{acai_id}/model")
    x, y = run_test_set(MlflowClient(uri), acai_id, tuple(model.input_shape[1:]))
    return model, x, y


def expected_path(model, a: np.ndarray, b: np.ndarray, mode: str, steps: int) -> np.ndarray:
    z = predict(model.get_layer("encode"), np.stack([a, b]))
    path = (lerp if mode == "linear" else slerp)(z[:1], z[1:], steps)[0].astype(np.float32)
    return to_uint8(predict(model.get_layer("decode"), path))


def png(path: Path, pixels_: np.ndarray, fmt: str = "PNG") -> Path:
    Image.fromarray(pixels_).save(path, format=fmt)
    return path


def test_acai_runs_log_a_critic_that_loads_in_safe_mode(runs):
    from acai.explorer.app import load_critic

    uri, acai_id, plain_id = runs
    client = MlflowClient(uri)
    assert CRITIC_ARTIFACT in [f.path for f in client.list_artifacts(acai_id, "critic")]
    assert load_critic(client, plain_id) is None  # no adversary: nothing logged, nothing shown
    critic = load_critic(client, acai_id)
    scores = predict(critic, np.zeros((3, 32, 32, 1), np.float32))
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_runs_are_listed_with_their_critic(app, runs):
    _, acai_id, plain_id = runs
    answer = ok(app + "api/runs")
    assert [(r["run_id"], r["regularizer"], r["critic"]) for r in answer["runs"]] == [
        (acai_id, "acai", True), (plain_id, "none", False)]
    assert answer["shape"] == [32, 32, 1] and answer["modes"] == ["linear", "spherical"]


def test_frames_and_path_decode_the_latent_path_of_the_pair(app, reference):
    model, x, y = reference
    pair = ok(app + "api/pair?a=3&b=17", "POST")
    assert pair["a"]["source"] == f"test image 3 (label {y[3]})" and pair["b"]["source"].startswith("test image 17")
    np.testing.assert_array_equal(pixels(pair["a"]["image"]), to_uint8(x[3]))
    assert (pair["a"]["index"], pair["b"]["index"]) == (3, 17)

    for mode in ("linear", "spherical"):
        path = ok(app + f"api/path?steps=5&mode={mode}")
        assert path["alphas"] == [0.0, 0.25, 0.5, 0.75, 1.0] and path["mode"] == mode
        acai, plain = path["runs"]
        expected = expected_path(model, x[3], x[17], mode, 5)
        got = np.stack([pixels(f) for f in acai["frames"]])
        assert np.abs(got.astype(int) - expected).max() <= 1
        assert len(acai["critic"]) == 5 and all(np.isfinite(acai["critic"])) and plain["critic"] is None
        assert len(plain["frames"]) == 5

        frame = ok(app + f"api/frame?alpha=0.75&mode={mode}")
        assert frame["alpha"] == 0.75 and [f["critic"] is None for f in frame["frames"]] == [False, True]
        at = pixels(frame["frames"][0]["image"]).astype(int)
        assert np.abs(at - got[3]).max() <= 1  # the strip's α = 0.75 (one frame or a batch: may round apart)
        assert frame["frames"][0]["critic"] == pytest.approx(acai["critic"][3], abs=1e-4)

    linear = pixels(ok(app + "api/frame?alpha=0.5&mode=linear")["frames"][0]["image"])
    spherical = pixels(ok(app + "api/frame?alpha=0.5&mode=spherical")["frames"][0]["image"])
    assert not np.array_equal(linear, spherical)


def test_a_random_pair_has_different_labels_and_follows_its_seed(app, reference):
    _, _, y = reference
    first = ok(app + "api/pair?seed=7", "POST")
    labels = [int(first[s]["source"].split("label ")[1].rstrip(")")) for s in "ab"]
    assert labels[0] != labels[1]
    assert ok(app + "api/pair?seed=7", "POST") == first


def test_uploaded_images_give_the_path_between_them(app, reference, tmp_path):
    model = reference[0]
    a = np.zeros((32, 32), np.uint8)
    a[4:28, 14:18] = 255  # a vertical bar, grayscale PNG
    b = np.zeros((64, 64, 3), np.uint8)
    b[30:34, 8:56] = (200, 255, 220)  # a horizontal bar, RGB JPEG twice the size: converted and resized
    files = [png(tmp_path / "bar.png", a), png(tmp_path / "wide bar.jpg", b, "JPEG")]
    for slot, f in zip("ab", files):
        answer = ok(app + f"api/upload?slot={slot}&name={urllib.request.quote(f.name)}", "POST", f.read_bytes())
        assert answer[slot]["source"] == f"upload {f.name}" and answer[slot]["index"] is None
    ends = [load_image(f, (32, 32, 1)) for f in files]
    path = ok(app + "api/path?steps=3&mode=linear")
    got = np.stack([pixels(f) for f in path["runs"][0]["frames"]])
    assert np.abs(got.astype(int) - expected_path(model, *ends, "linear", 3)).max() <= 1


@pytest.mark.parametrize("method, query, body, status, message", [
    ("GET", "frame?alpha=1.5", None, 400, "alpha=1.5 is out of range: give a number from 0 to 1"),
    ("GET", "frame?alpha=-0.1", None, 400, "alpha=-0.1 is out of range"),
    ("GET", "frame?alpha=half", None, 400, "alpha='half' is not a number"),
    ("GET", "frame", None, 400, "alpha is missing"),
    ("GET", "frame?alpha=0.5&mode=cubic", None, 400, "mode='cubic' is not valid: give one of linear, spherical"),
    ("GET", "path?steps=1", None, 400, "steps=1 is out of range: give an integer from 2 to 33"),
    ("POST", "pair?a=0&b=100000", None, 400, "index b=100000 is out of range: give an integer from 0 to 299"),
    ("POST", "pair?a=-1&b=2", None, 400, "index a=-1 is out of range"),
    ("POST", "upload?slot=a&name=notes.txt", b"not an image", 400,
     "image file 'notes.txt' cannot be read (not an image format Pillow recognises)"),
    ("POST", "upload?slot=a&name=cut.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0", 400,
     "image file 'cut.png' cannot be read"),
    ("POST", "upload?slot=b&name=empty.png", b"", 400, "the upload 'empty.png' is empty"),
    ("POST", "upload?slot=c&name=a.png", b"x", 400, "slot='c' is not valid: upload into slot a or b"),
    ("POST", "runs?run_id=0123456789abcdef", None, 404, "run id '0123456789abcdef': no such MLflow run"),
], ids=["alpha-high", "alpha-low", "alpha-text", "alpha-missing", "mode", "steps", "index-high", "index-low",
        "not-an-image", "truncated-png", "empty-upload", "slot", "unknown-run"])
def test_bad_input_gets_one_clear_message(app, method, query, body, status, message):
    code, answer = call(app + "api/" + query, method, body)
    assert code == status and message in answer["error"], answer
    assert set(answer) == {"error"}


def test_runs_that_cannot_be_compared_are_refused(app, runs):
    uri, acai_id, _ = runs
    client = MlflowClient(uri)
    unfinished = client.create_run(client.get_run(acai_id).info.experiment_id).info.run_id  # RUNNING, no model
    code, answer = call(app + f"api/runs?run_id={unfinished}", "POST")
    assert code == 400 and f"run {unfinished} has not finished" in answer["error"]
    code, answer = call(app + f"api/runs?run_id={acai_id}", "POST")
    assert code == 400 and "is already shown" in answer["error"]
    assert len(ok(app + "api/runs")["runs"]) == 2


def test_the_command_refuses_bad_runs_and_ports_in_one_line(runs, capsys):
    uri, acai_id, _ = runs
    assert explore.main(["feedbeef", "--tracking-uri", uri, "--port", "0"]) == 2
    assert "error: run id 'feedbeef': no such MLflow run" in capsys.readouterr().err
    client = MlflowClient(uri)
    unfinished = client.create_run(client.get_run(acai_id).info.experiment_id).info.run_id
    assert explore.main([unfinished, "--tracking-uri", uri, "--port", "0"]) == 2
    assert "has not finished" in capsys.readouterr().err
    with listen(0) as busy:
        busy.listen()
        assert explore.main([acai_id, "--tracking-uri", uri, "--port", str(busy.getsockname()[1])]) == 2
        assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


@pytest.mark.slow
def test_the_explorer_reads_runs_through_a_tracking_server(runs, tmp_path):
    """`--tracking-uri http://...`: the same runs through `mlflow server` on their store (the artifacts, file://
    folders, are read from the disk they are on)."""
    uri, acai_id, plain_id = runs
    with MlflowServer(uri, tmp_path / "served", log=tmp_path / "server.log", timeout=180) as server:
        served = Served(server.uri, [acai_id])
        try:
            assert [r["critic"] for r in ok(served.url + "api/runs")["runs"]] == [True]
            ok(served.url + "api/pair?a=3&b=17", "POST")
            (path,) = ok(served.url + "api/path?steps=3")["runs"]
            assert len(path["frames"]) == 3 and len(path["critic"]) == 3
            code, answer = call(served.url + "api/runs?run_id=feedbeef", "POST")
            assert code == 404 and "no such MLflow run" in answer["error"]
        finally:
            served.stop()


# ---- the page, in a real browser ----

def chrome(profile: Path, window: str = "1200,900"):
    """Headless Chromium from Debian, driven through Debian's chromedriver; its profile in `profile`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={profile}", f"--window-size={window}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait(driver, condition, timeout: float = 60):
    """Until `condition()` holds; an element the page replaced meanwhile (a new strip) is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: condition())


def sources(driver, selector: str) -> list[str]:
    """The `src` of every image the selector matches, read at one instant (the page rebuilds its strips)."""
    return driver.execute_script("return [...document.querySelectorAll(arguments[0])].map(i => i.src)", selector)


def by_id(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def open_page(driver, url: str) -> None:
    """Load the page and wait for its first frame and strips."""
    driver.get(url)
    wait(driver, lambda: driver.find_element("tag name", "body").get_attribute("data-ready") == "true")
    wait(driver, lambda: (by_id(driver, "frame-0").get_attribute("src") or "").startswith("data:image/png"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    driver = chrome(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_page_shows_both_runs_and_the_slider_changes_the_frame(browser, app):
    from selenium.webdriver.common.keys import Keys

    ok(app + "api/pair?a=3&b=17", "POST")
    open_page(browser, app)
    assert [by_id(browser, f"index-{s}").get_attribute("value") for s in "ab"] == ["3", "17"]
    runs_text = by_id(browser, "runs").text
    assert "acai-lines-mlp" in runs_text and "none-lines-mlp" in runs_text
    assert len(sources(browser, "#strip-0 img")) == len(sources(browser, "#strip-1 img")) == 11
    assert by_id(browser, "critic-0").text.startswith("critic α̂ = ") and by_id(browser, "critic-1").text == ""
    before = by_id(browser, "frame-0").get_attribute("src")
    by_id(browser, "alpha").send_keys(Keys.END)  # α = 1: B's reconstruction
    wait(browser, lambda: by_id(browser, "frame-0").get_attribute("src") != before)
    assert by_id(browser, "alpha-value").text == "1.00"
    strip_end = pixels(sources(browser, "#strip-0 img")[-1])
    frame = pixels(by_id(browser, "frame-0").get_attribute("src"))
    assert np.abs(frame.astype(int) - strip_end).max() <= 1  # the strip's last frame, α = 1
    assert by_id(browser, "error").get_attribute("hidden")


@pytest.mark.slow
def test_page_uploads_two_images_and_shows_their_path(browser, app, tmp_path):
    open_page(browser, app)
    strip_before = sources(browser, "#strip-0 img")
    a = np.zeros((32, 32), np.uint8)
    a[6:26, 6:26] = 255
    b = np.zeros((32, 32), np.uint8)
    b[14:18, 2:30] = 255
    by_id(browser, "upload-a").send_keys(str(png(tmp_path / "square.png", a)))
    wait(browser, lambda: by_id(browser, "source-a").text == "upload square.png")
    by_id(browser, "upload-b").send_keys(str(png(tmp_path / "line.png", b)))
    wait(browser, lambda: by_id(browser, "source-b").text == "upload line.png")
    expected = [pixels(f) for f in ok(app + "api/path?steps=11&mode=linear")["runs"][0]["frames"]]  # square -> line

    def strip_shows_the_uploads() -> bool:
        shown = sources(browser, "#strip-0 img")
        return shown != strip_before and len(shown) == 11 and all(
            np.abs(pixels(src).astype(int) - frame).max() <= 1 for src, frame in zip(shown, expected))

    wait(browser, strip_shows_the_uploads)
    assert by_id(browser, "error").get_attribute("hidden")


@pytest.mark.slow
def test_page_shows_the_message_of_a_bad_upload_and_a_bad_index(browser, app, tmp_path):
    open_page(browser, app)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    by_id(browser, "upload-a").send_keys(str(notes))
    wait(browser, lambda: by_id(browser, "error").is_displayed())
    assert "image file 'notes.txt' cannot be read" in by_id(browser, "error").text
    index_b = by_id(browser, "index-b")
    index_b.clear()
    index_b.send_keys("99999")
    by_id(browser, "use-indices").click()
    wait(browser, lambda: "index b=99999 is out of range" in by_id(browser, "error").text)


def screenshot(out: Path, run_ids: list[str], uri: str, pair: tuple[int, int] = (3, 17), alpha: float = 0.5) -> Path:
    """The page over these runs, with test pair `pair` and the slider at `alpha`, as a PNG at `out`."""
    served = Served(uri, run_ids)
    profile = tempfile.TemporaryDirectory(prefix="acai-chromium-")
    driver = chrome(Path(profile.name), "1200,1120")
    try:
        ok(served.url + f"api/pair?a={pair[0]}&b={pair[1]}", "POST")
        open_page(driver, served.url)
        driver.execute_script("const s = document.getElementById('alpha'); s.value = arguments[0];"
                              "s.dispatchEvent(new Event('input'));", alpha)
        wait(driver, lambda: by_id(driver, "alpha-value").text == f"{alpha:.2f}")
        time.sleep(1)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
        profile.cleanup()
        served.stop()
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot the explorer page (docs/explorer.png).")
    parser.add_argument("--screenshot", required=True, type=Path)
    parser.add_argument("run_id", nargs="+")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--pair", nargs=2, type=int, default=(3, 17))
    parser.add_argument("--alpha", type=float, default=0.5)
    args = parser.parse_args()
    print(screenshot(args.screenshot, args.run_id, resolve_uri(args.tracking_uri), tuple(args.pair), args.alpha))
