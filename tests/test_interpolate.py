"""`src/interpolate.py` on one real logged run: index pairs, image files, both modes, --log, and its errors."""

import os
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import ROOT
from datafiles import png_declaring
from mlflow.tracking import MlflowClient
from PIL import Image

from acai.config import build
from acai.data.base import Dataset, pad_to
from acai.errors import DatasetError
from acai.interpolate.inputs import DEFAULT_PAIRS, load_image, pick_pairs
from acai.networks.inference import predict
from acai.tracking.loading import load_autoencoder, run_config
from acai.tracking.mlflow_run import resolve_uri
from acai.tracking.plots import to_uint8

sys.path.insert(0, str(ROOT / "src"))
import interpolate  # noqa: E402  (the script: its main)

SHAPE = (32, 32, 1)  # the lines dataset with the MLP


@pytest.fixture(scope="module")
def run(smoke_run):
    """The session's smoke-sized lines/MLP run; (tracking uri, run id, model)."""
    cfg, run_id = smoke_run
    mlflow.set_tracking_uri(resolve_uri(cfg.tracking.uri))  # other tests point MLflow at their own stores
    return cfg.tracking.uri, run_id, load_autoencoder(f"runs:/{run_id}/model")


@pytest.fixture(scope="module")
def test_images(run):
    uri, run_id, model = run
    dataset = build(run_config(MlflowClient(resolve_uri(uri)), run_id).dataset, "dataset", Dataset)
    return pad_to(dataset.test_set()[0], model.input_shape[1])


def reconstruct(model, x: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] decode(encode(x)), as the grid's endpoint cells should show."""
    return to_uint8(predict(model.get_layer("decode"), predict(model.get_layer("encode"), x)))


def cells(png, rows: int, cols: int, shape=SHAPE) -> np.ndarray:
    """Cut an `image_grid` PNG (border 1) back into [rows, cols, H, W, C] uint8 cells."""
    pixels = np.asarray(Image.open(png))
    h, w, c = shape
    assert pixels.shape[:2] == (rows * (h + 1) + 1, cols * (w + 1) + 1)
    pixels = pixels.reshape(pixels.shape[:2] + (c,))
    return np.stack([np.stack([pixels[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + q * (w + 1): 1 + q * (w + 1) + w]
                               for q in range(cols)]) for r in range(rows)])


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to one grey level (batch-size-dependent float rounding in the dense layers)."""
    return int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def cli(run, *args: str) -> int:
    uri, run_id, _ = run
    return interpolate.main([run_id, "--tracking-uri", uri, *args])


def test_index_pairs_make_a_grid_whose_ends_are_the_reconstructions(run, test_images, tmp_path, capsys):
    out = tmp_path / "sub" / "grid.png"
    assert cli(run, "--indices", "3", "17", "5", "9", "--steps", "7", "--plain", "--out", str(out)) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert Image.open(out).format == "PNG" and Image.open(out).size == (7 * 33 + 1, 2 * 33 + 1)
    grid = cells(out, 2, 7)
    recon = reconstruct(run[2], test_images[[3, 17, 5, 9]])
    for row, (a, b) in enumerate([(0, 1), (2, 3)]):
        assert close(grid[row, 0], recon[a]) and close(grid[row, -1], recon[b])
    assert not close(grid[0, 3], grid[0, 0])  # the middle is a mix, not an endpoint


def test_spherical_mode_keeps_the_ends_and_changes_the_middle(run, test_images, tmp_path):
    linear, spherical = tmp_path / "lerp.png", tmp_path / "slerp.png"
    assert cli(run, "--indices", "0", "1", "--steps", "5", "--plain", "--out", str(linear)) == 0
    assert cli(run, "--indices", "0", "1", "--steps", "5", "--mode", "spherical", "--plain",
               "--out", str(spherical)) == 0
    lerp_grid, slerp_grid = cells(linear, 1, 5), cells(spherical, 1, 5)
    recon = reconstruct(run[2], test_images[[0, 1]])
    assert close(slerp_grid[0, 0], recon[0]) and close(slerp_grid[0, -1], recon[1])
    assert not np.array_equal(lerp_grid[0, 2], slerp_grid[0, 2])


def test_random_pairs_are_seeded(run, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert cli(run, "--pairs", "3", "--steps", "2", "--seed", "4", "--plain", "--out", str(a)) == 0
    assert cli(run, "--pairs", "3", "--steps", "2", "--seed", "4", "--plain", "--out", str(b)) == 0
    assert Image.open(a).size == (2 * 33 + 1, 3 * 33 + 1)
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_without_pairs_it_picks_pairs_of_different_angles_and_names_the_file(run, tmp_path, monkeypatch, capsys):
    """`python src/interpolate.py RUN_ID` alone: 8 pairs, each of two lines in different angle bins,
    drawn as the labelled figure (inputs A and B around the α-labelled path), enlarged twice."""
    from acai.data.lines import Lines

    monkeypatch.chdir(tmp_path)
    uri, run_id, _ = run
    assert interpolate.main([run_id, "--tracking-uri", uri]) == 0
    out = Path(capsys.readouterr().out.strip())
    name = MlflowClient(resolve_uri(uri)).get_run(run_id).info.run_name  # e.g. none-lines-mlp-z64-s0
    assert out == Path(f"{name}-interpolation.png") and out.exists()
    x, y = Lines(test_size=300).test_set()
    ends = pick_pairs(x, y, None, DEFAULT_PAIRS, 0)
    assert len(ends) == 8
    for a, b in ends:
        (i,), (j,) = [np.flatnonzero((x == e).all(axis=(1, 2, 3)))[:1] for e in (a, b)]
        assert y[i] != y[j]
    width, height = Image.open(out).size
    assert width >= 2 * (11 + 2) * 33 and height > 2 * 8 * 33  # 13 columns twice as large, plus the labels


def write_images(folder):
    """A 20x24 grayscale PNG and a 50x40 colour JPEG: neither the model's size nor (JPEG) its channels."""
    rng = np.random.default_rng(0)
    gray, colour = folder / "gray.png", folder / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (24, 20), np.uint8), "L").save(gray)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), np.uint8), "RGB").save(colour, quality=90)
    return gray, colour


def test_image_files_work_for_a_grayscale_model(run, tmp_path):
    gray, colour = write_images(tmp_path)
    out = tmp_path / "files.png"
    assert cli(run, "--images", str(gray), str(colour), "--steps", "4", "--plain", "--out", str(out)) == 0
    grid = cells(out, 1, 4)
    x = np.stack([load_image(gray, SHAPE), load_image(colour, SHAPE)])
    recon = reconstruct(run[2], x)
    assert close(grid[0, 0], recon[0]) and close(grid[0, -1], recon[1])


def test_model_uri_works_with_image_files_and_finds_its_run_for_indices(run, tmp_path):
    uri, run_id, _ = run
    mlflow.set_tracking_uri(resolve_uri(uri))
    mlflow.register_model(f"runs:/{run_id}/model", "tiny-ae")
    gray, colour = write_images(tmp_path)
    out = tmp_path / "registered.png"
    assert interpolate.main(["models:/tiny-ae/1", "--tracking-uri", uri, "--images", str(gray), str(colour),
                             "--steps", "3", "--plain", "--out", str(out)]) == 0
    assert Image.open(out).size == (3 * 33 + 1, 34)
    assert interpolate.main(["models:/tiny-ae/1", "--tracking-uri", uri, "--indices", "1", "2",
                             "--out", str(out)]) == 0
    assert interpolate.main([f"runs:/{run_id}/model", "--tracking-uri", uri, "--indices", "1", "2",
                             "--out", str(out)]) == 0


def test_log_puts_the_png_into_the_run(run, tmp_path):
    uri, run_id, _ = run
    out = tmp_path / "logged.png"
    assert cli(run, "--indices", "3", "4", "--steps", "3", "--out", str(out), "--log") == 0
    client = MlflowClient(resolve_uri(uri))
    assert "interpolations/logged.png" in [a.path for a in client.list_artifacts(run_id, "interpolations")]
    fetched = client.download_artifacts(run_id, "interpolations/logged.png", str(tmp_path / "dl"))
    assert np.array_equal(np.asarray(Image.open(fetched)), np.asarray(Image.open(out)))


def test_a_file_that_is_not_an_image_is_a_clear_error(run, tmp_path, capsys):
    _, colour = write_images(tmp_path)
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"these are my notes, not a picture\n")
    out = tmp_path / "never.png"
    assert cli(run, "--images", str(fake), str(colour), "--out", str(out)) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert str(fake) in err and "PNG, JPEG" in err
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize("args, out, message", [
    (["--indices", "3", "300"], "g.png", "out of range; the run's test set has 300 images"),  # smoke: test_limit 300
    (["--indices", "-1", "2"], "g.png", "out of range"),
    (["--indices", "3"], "g.png", "an even number of values"),
    (["--indices", "3", "4", "--steps", "1"], "g.png", "--steps=1"),
    (["--indices", "3", "4", "--images", "a.png", "b.png"], "g.png", "give one of"),
    (["--indices", "3", "4", "--scale", "0"], "g.png", "--scale=0"),
    (["--indices", "3", "4"], "g.jpg", "must be a .png"),
])
def test_bad_arguments_are_clear_errors(run, tmp_path, capsys, args, out, message):
    assert cli(run, *args, "--out", str(tmp_path / out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / out).exists()


def test_unknown_run_id_is_a_clear_error(run, tmp_path, capsys):
    uri = run[0]
    assert interpolate.main(["0123456789abcdef", "--tracking-uri", uri, "--indices", "1", "2",
                             "--out", str(tmp_path / "g.png")]) == 2
    assert "no such MLflow run" in capsys.readouterr().err


def test_a_missing_or_broken_store_is_a_clear_error_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "elsewhere" / "mlflow.db"
    args = ["0123456789abcdef", "--indices", "1", "2", "--out", str(tmp_path / "g.png")]
    assert interpolate.main([*args, "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not missing.parent.exists()
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    assert interpolate.main([*args, "--tracking-uri", f"sqlite:///{broken}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tracking-uri=") and "Traceback" not in err


def test_usage_errors_return_2_instead_of_exiting(tmp_path, capsys):
    assert interpolate.main(["abc", "--indices", "x", "y", "--out", str(tmp_path / "g.png")]) == 2
    assert "invalid int value" in capsys.readouterr().err
    assert interpolate.main(["--help"]) == 0


# --- the file-loading helper on its own (no model needed) ---

def test_load_image_converts_channels_resizes_and_scales(tmp_path):
    gray = tmp_path / "flat.png"
    Image.new("L", (7, 5), 51).save(gray)
    x = load_image(gray, (32, 32, 1))
    assert x.shape == (32, 32, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x, 51 * 2 / 255 - 1, atol=1e-6)  # x * 2/255 - 1

    red = tmp_path / "red.jpg"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(red)
    as_gray = load_image(red, (28, 28, 1))
    assert as_gray.shape == (28, 28, 1)
    np.testing.assert_allclose(as_gray, 76 * 2 / 255 - 1, atol=0.05)  # ITU-R 601 luma of red
    as_rgb = load_image(red, (16, 16, 3))
    assert as_rgb.shape == (16, 16, 3)
    assert as_rgb[..., 0].min() > 0.9 and as_rgb[..., 1:].max() < -0.9
    assert load_image(gray, (8, 8, 3)).shape == (8, 8, 3)  # grayscale file for a colour model


def test_load_image_handles_alpha_16_bit_and_exif_orientation(tmp_path):
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (255, 255, 255, 0)).save(clear)
    np.testing.assert_allclose(load_image(clear, (8, 8, 1)), -1.0)  # transparent = background

    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(deep)  # mid-grey in 16 bits, not white
    np.testing.assert_allclose(load_image(deep, (8, 8, 1)), 128 * 2 / 255 - 1, atol=0.01)

    turned = tmp_path / "turned.jpg"
    pixels = np.zeros((10, 20), np.uint8)
    pixels[:, :10] = 255  # left half white as stored; EXIF orientation 6 means "rotate 90 cw to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels, "L").save(turned, exif=exif, quality=95)
    x = load_image(turned, (20, 10, 1))[..., 0]  # viewed upright: 10 wide, 20 tall, top half white
    assert x[:8].mean() > 0.8 and x[12:].mean() < -0.8


@pytest.mark.parametrize("mode, name", [("1", "bits.png"), ("P", "palette.gif"), ("LA", "grey_alpha.png"),
                                        ("CMYK", "print.jpg"), ("I", "int32.tif"), ("F", "float.tif"),
                                        ("YCbCr", "ycc.jpg"), ("RGB", "photo.webp"), ("RGB", "bitmap.bmp")])
@pytest.mark.parametrize("channels", [1, 3])
def test_load_image_accepts_any_mode_pillow_reads(tmp_path, mode, name, channels):
    pixels = np.random.default_rng(1).integers(0, 256, (12, 9, 3), np.uint8)
    img = Image.fromarray(pixels, "RGB")
    img = img.convert(mode) if mode not in ("I", "F") else Image.fromarray(pixels[..., 0].astype(
        np.int32 if mode == "I" else np.float32) * (200 if mode == "I" else 1 / 255), mode)
    if mode == "P":
        img.info["transparency"] = 0
    img.save(tmp_path / name)
    x = load_image(tmp_path / name, (16, 16, channels))
    assert x.shape == (16, 16, channels) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05  # a picture, not a flat clipped field


def test_load_image_refuses_what_pillow_cannot_read(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    text = tmp_path / "text.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)  # refused at once, not waited on
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "gone.png")
    bomb = png_declaring(tmp_path / "bomb.png", 9000, 9000)
    for path, reason in [(truncated, "truncated"), (text, "not an image format"), (empty, "not an image format"),
                         (tmp_path / "missing.png", "does not exist"), (tmp_path, "not a regular file but a folder"),
                         (fifo, "not a regular file but a FIFO"), (dangling, "a dangling symbolic link"),
                         (bomb, "9000x9000 = 81,000,000 pixels, over the limit 67,108,864; not decoded")]:
        with pytest.raises(DatasetError) as info:
            load_image(path, SHAPE)
        message = str(info.value)
        assert str(path) in message and reason in message and "PNG, JPEG" in message and "\n" not in message


def test_several_models_make_one_labelled_figure_on_the_same_pairs(run, tmp_path, capsys):
    uri, run_id, _ = run
    single, several = tmp_path / "one.png", tmp_path / "two.png"
    assert cli(run, "--indices", "3", "17", "--steps", "5", "--out", str(single)) == 0
    assert interpolate.main([run_id, run_id, "--tracking-uri", uri, "--indices", "3", "17", "--steps", "5",
                             "--out", str(several)]) == 0
    figure = np.asarray(Image.open(several).convert("L"))
    assert figure.shape[0] > 1.5 * np.asarray(Image.open(single)).shape[0]  # two panels stacked
    assert interpolate.main([run_id, run_id, "--tracking-uri", uri, "--indices", "3", "17", "--log",
                             "--out", str(tmp_path / "x.png")]) == 2
    assert "--log" in capsys.readouterr().err


def test_loading_hides_mlflow_progress_bar_only_while_it_downloads(run, capfd, monkeypatch):
    """The tools' one-line errors come without a progress bar ahead; the process keeps MLflow's default."""
    uri, run_id, _ = run
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(resolve_uri(uri))
    try:
        capfd.readouterr()
        load_autoencoder(f"runs:/{run_id}/model")
        assert "Downloading artifacts" not in capfd.readouterr().err
        assert "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ
        mlflow.keras.load_model(f"runs:/{run_id}/model")  # outside the tools' loading: MLflow's own bar
        assert "Downloading artifacts" in capfd.readouterr().err
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.mark.parametrize("args, message", [
    (["--steps", "1000000000"], "--steps=1000000000 is not valid: must be 2 to 64"),
    (["--steps", "65"], "--steps=65 is not valid: must be 2 to 64"),
    (["--scale", "100000"], "--scale=100000 is not valid: must be 1 to 16"),
    (["--pairs", "100000000"], "--pairs=100000000 is not valid: must be 1 to 64"),
    (["--pairs", "0"], "--pairs=0 is not valid: must be 1 to 64"),
    (["--pairs", "2", "--seed", "-1"], "--seed=-1 is not valid: must be >= 0"),
    (["--indices", *map(str, range(130))], "--indices='130 values' is not valid: give at most 64 pairs"),
])
def test_unbounded_arguments_are_refused_before_anything_is_opened(tmp_path, capsys, args, message):
    """A huge --steps, --scale or row count used to hang or exhaust memory; a negative seed was a traceback.
    Refused before the store is opened: this store does not even exist."""
    out = tmp_path / "g.png"
    code = interpolate.main(["0123456789abcdef", "--tracking-uri", f"sqlite:///{tmp_path}/none.db", *args,
                             "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    assert message in err and not out.exists() and not (tmp_path / "none.db").exists()
