"""What `python src/train.py` prints: a header, one line per evaluation, a summary; no TensorFlow chatter."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from acai.training.callbacks import Progress

ENV = {k: v for k, v in os.environ.items() if k not in ("ACAI_STDERR_FILTERED", "ACAI_RAW_STDERR")}
NOISE = re.compile(r"^[IWE]\d{4} |cuInit|remapper|Sharding callback|absl::InitializeLog|UserWarning")


@pytest.mark.slow
def test_default_console_of_a_run(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), "experiment=smoke", "trainer.verbose=1",
         "trainer.total_samples=96", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
         f"tracking.artifact_location={tmp_path}/mlruns", f"trainer.checkpoint_dir={tmp_path}/ck"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    run_id = re.search(r"^Run acai-lines-conv-z64-s0  id ([0-9a-f]{32})  experiment 'smoke'$", lines[0], re.M)[1]
    assert lines[1].split() == ["store", f"sqlite:///{tmp_path}/mlflow.db"]
    assert lines[2].split() == ["artifacts", f"{tmp_path}/mlruns/{run_id}/artifacts"]
    assert lines[4].split() == ["browse", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    from mlflow.tracking import MlflowClient

    experiment_id = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).info.experiment_id
    page = f"http://127.0.0.1:5000/#/experiments/{experiment_id}?workflowType=machine_learning"
    assert lines[5].split() == ["then", page]  # the classic runs table, not the GenAI view
    evals = [line for line in lines if line.startswith("eval ")]
    assert [e.split("  ")[:2] for e in evals] == [["eval 1/3", "32 samples"], ["eval 2/3", "64 samples"],
                                                  ["eval 3/3", "96 samples"]]
    for part in ("MD=", "smooth=", "recon=", "clf=", " s"):
        assert all(part in e for e in evals), (part, evals)
    assert "probe=" in evals[-1]  # the probe runs with the final evaluation
    assert lines[-2].startswith(f"MLflow run {run_id} finished in ") and lines[-1].startswith("final  MD=")
    assert all(len(line) <= 100 for line in lines if str(tmp_path) not in line), max(lines, key=len)
    noise = [line for line in done.stderr.splitlines() if NOISE.search(line)]
    assert not noise, noise
    check_phase_table(tmp_path, run_id)


def check_phase_table(tmp_path, run_id):
    """benchmarks/run_phases.py's table of this run's time/* metrics: every phase, shares adding up."""
    import importlib.util

    from mlflow.tracking import MlflowClient

    spec = importlib.util.spec_from_file_location("run_phases", ROOT / "benchmarks" / "run_phases.py")
    phases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(phases)
    metrics = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).data.metrics
    table = phases.table({k.removeprefix("time/"): v for k, v in metrics.items() if k.startswith("time/")}, 20.0)
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in table.splitlines() if line.startswith("| ")}
    for phase in ("training steps (first step's tracing included)", "evaluation: encode + reconstruct the test set",
                  "evaluation: Mean Distance + Smoothness", "final evaluation: K-means on latents",
                  "final evaluation: K-means on pixels", "checkpoints", "in-run wall (time/wall_seconds)"):
        assert phase in rows, (phase, table)
    shares = [float(share.strip().rstrip("%")) for name, (_, share) in rows.items()
              if share.strip().endswith("%") and not name.startswith("in-run")]
    assert abs(sum(shares) - 100) < 1.0  # the phases and "other" cover the in-run wall time
    assert 0 < float(rows["start-up: process start to the first step"][0]) < 60


@pytest.mark.slow
def test_the_filter_drops_known_chatter_and_keeps_real_errors_even_on_a_crash():
    code = """if True:
        import os
        from acai.console import quiet_native_logs
        quiet_native_logs()
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
        os.write(2, b"I0000 00:00:1795648730.852362   32703 port.cc:153] oneDNN custom operations are on.\\n")
        os.write(2, b"E0000 00:00:1795648074.340038   29781 cuda_platform.cc:52] failed call to cuInit: INTERNAL\\n")
        os.write(2, b"E0000 00:00:1795648076.864291   29781 meta_optimizer.cc:967] remapper failed: INVALID\\n")
        os.write(2, b"E0000 00:00:1795648076.864291   29781 some_kernel.cc:12] a real error\\n")
        os.write(2, b"F0000 00:00:1795648076.864291   29781 check.cc:1] Check failed: fatal\\n")
        os.abort()
    """
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.splitlines() == ["E0000 00:00:1795648076.864291   29781 some_kernel.cc:12] a real error",
                                        "F0000 00:00:1795648076.864291   29781 check.cc:1] Check failed: fatal"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class LastEvaluation:
    last = {"mean_distance_x1e3": 13.4, "smoothness": 0.133, "reconstruction_error": 0.0267,
            "latent_accuracy": 94.9, "probe_accuracy": 99.7, "cluster_accuracy": 40.0}
    seconds = 31.2


def test_progress_line_fits_100_columns_and_each_evaluation_gets_one_line():
    screen = Terminal()
    progress = Progress(1, 64, 2048, 512, LastEvaluation(), stream=screen)
    progress.on_train_begin()
    for epoch in (0, 511):
        progress.on_epoch_begin(epoch)
        for batch in (0, 1):
            progress._shown = 0.0
            progress.on_train_batch_end(batch, {"loss": 0.0469123})
        progress.on_epoch_end(epoch)
    text = screen.getvalue()
    shown = [part for line in text.split("\n") for part in line.split("\r") if part.strip()]
    assert all(len(part) <= 100 for part in shown), max(shown, key=len)
    assert any("/67,108,864 samples" in part and "eval 512/512" in part and "loss 0.04691" in part for part in shown)
    evals = [part for part in shown if part.startswith("eval ")]
    assert evals[-1] == ("eval 512/512  67,108,864 samples  MD=13.4e-3 smooth=0.133 recon=0.0267 clf=94.9% "
                         "probe=99.7%  31.2 s")
    quiet = io.StringIO()  # not a terminal (a log file, CI): evaluation lines only, no carriage returns
    logged = Progress(1, 64, 2048, 512, LastEvaluation(), stream=quiet)
    logged.on_train_begin()
    logged.on_epoch_begin(0)
    logged.on_train_batch_end(0, {"loss": 1.0})
    logged.on_epoch_end(0)
    assert "\r" not in quiet.getvalue() and quiet.getvalue().count("\n") == 1


def test_an_evaluation_on_the_initial_plateau_says_so_after_its_reconstruction_error():
    """The README's default run: recon 0.0775 at 65,536 samples is still the plateau, 0.0585 is not."""
    from acai.console import metrics_line, summary

    screen = io.StringIO()
    evaluation = LastEvaluation()
    progress = Progress(2, 64, 256, 8, evaluation, stream=screen)
    for epoch, recon, flag in ((3, 0.0775, 1.0), (4, 0.0585, 0.0)):
        evaluation.last = {"mean_distance_x1e3": 29.5, "reconstruction_error": recon, "on_plateau": flag,
                           "latent_accuracy": 27.5}
        progress.on_epoch_begin(epoch)
        progress.on_epoch_end(epoch)
    assert screen.getvalue().splitlines() == [
        "eval 4/8  65,536 samples  MD=29.5e-3 recon=0.0775 plateau clf=27.5%  31.2 s",
        "eval 5/8  81,920 samples  MD=29.5e-3 recon=0.0585 clf=27.5%  31.2 s"]
    assert metrics_line({"on_plateau": 0.0}) == "" and metrics_line({"on_plateau": 1.0}) == "plateau"
    assert summary("x", 1, 1, 1, {"reconstruction_error": 0.08, "on_plateau": 1.0}).endswith("recon=0.0800 plateau")


def test_on_a_terminal_the_final_evaluation_and_logging_show_what_they_are_doing():
    """The last evaluation (clustering, probe) and the model logging take minutes: the progress line names
    each part as it starts instead of standing still at 'eta 0:01'; a log file gets none of it."""
    screen = Terminal()
    progress = Progress(1, 64, 256, 8, LastEvaluation(), stream=screen)
    progress.on_train_begin()
    progress.on_epoch_begin(7)
    progress._shown = 0.0
    progress.on_train_batch_end(255, {"loss": 0.05})
    progress.phase("K-means on the latents (10 restarts)")
    progress.on_epoch_end(7)
    progress.final("model")
    progress.phase("")
    parts = [part for line in screen.getvalue().split("\n") for part in line.split("\r") if part.strip()]
    assert "  eval 8/8: K-means on the latents (10 restarts) ..." in [p.rstrip() for p in parts]
    assert "  final logging: model ..." in [p.rstrip() for p in parts]
    assert all(len(part) <= 100 for part in parts)
    assert screen.getvalue().endswith("\r"), "the line is cleared before the summary prints"
    logged = io.StringIO()
    quiet = Progress(2, 64, 256, 8, LastEvaluation(), stream=logged)
    quiet.phase("K-means on the latents")
    quiet.final("model")
    assert logged.getvalue() == ""
