"""The outbox under faults, against a real PostgreSQL and `mlflow server` (one pair for the module).

Kept writes that cannot be read back (empty, cut short, not JSON, data file missing or cut short) and writes
the server refuses are set aside, named in one line, and never block the others; a server that answers with
an error is not said to be down; a write that cannot be kept stops the run in seconds with one line.
"""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import test_tracking_server  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from test_tracking_server import SRC, run_cli, served_args, start_training, wait_for  # noqa: E402
from tracking_server import free_port  # noqa: E402

from acai.tracking.outbox import FAST, REFUSED, UNREADABLE, Outbox, Undelivered  # noqa: E402

server = test_tracking_server.server  # the same module-scoped PostgreSQL + mlflow server fixture

pytestmark = pytest.mark.slow  # real servers: kept in CI, skipped by `-m 'not slow'`


@pytest.fixture
def fail_fast_env(monkeypatch):
    """A failed delivery switches MLflow to fail-fast for the rest of its process: undone after each test."""
    for key in FAST:
        monkeypatch.delenv(key, raising=False)
    yield
    for key in FAST:
        monkeypatch.delenv(key, raising=False)
    if mlflow.active_run() is not None:  # ended while the server was down: MLflow keeps it as the active run
        from acai.training.ending import forget_active_run

        forget_active_run()


def history(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_unreadable_kept_writes_are_set_aside_and_the_rest_is_delivered_once(server, tmp_path, capsys,
                                                                              fail_fast_env):
    mlflow.set_tracking_uri(server.uri)
    mlflow.set_experiment("outbox-unreadable")
    folder = tmp_path / "outbox"
    with mlflow.start_run() as run:
        server.stop()
        try:
            outbox = Outbox(folder, remote=True)
            for step in range(1, 7):
                outbox.log_metrics({"eval/x": float(step)}, step=step)
            for step in (1, 2, 3):
                outbox.log_image(np.full((8, 8, 3), 40 * step, np.uint8), key="grid", step=step)
            for name in ("a", "b"):
                fig = plt.figure()
                outbox.log_figure(fig, f"critic/{name}.png")
                plt.close(fig)
            with pytest.raises(Undelivered, match=r"it does not answer \(Connection refused\); 11 kept write"):
                outbox.deliver(patience=0.5)
        finally:
            server.start()
        kept = outbox.pending
        assert len(kept) == 11 and not list(folder.glob("*.tmp"))
        records = [json.loads(p.read_text()) for p in kept]
        # Break one of each kind: the disk-full case (an empty record), a record cut short, one that is not
        # JSON, JSON that is no kept write, an image whose data file is gone, one whose .npy is cut short,
        # and a figure whose PNG is cut short.
        bad = {kept[1]: b"", kept[3]: kept[3].read_bytes()[:20], kept[4]: b"\x00\xffnot json"}
        bad[kept[5]] = b'{"step": 6}'
        for meta, content in bad.items():
            meta.write_bytes(content)
        (folder / records[6]["data"]).unlink()
        npy = folder / records[7]["data"]
        npy.write_bytes(npy.read_bytes()[:60])
        png = folder / records[9]["data"]
        png.write_bytes(png.read_bytes()[:100])
        broken = [*bad, kept[6], kept[7], kept[9]]
        Outbox(folder, remote=True).deliver(patience=5.0)  # as the rerun of the command does first
    out = capsys.readouterr().out
    for meta in broken:
        assert f"kept write {meta} is set aside" in out
        assert (folder / UNREADABLE / meta.name).is_file()
    assert "empty file" in out and "its data file" in out and "missing" in out
    assert sorted(p.name for p in (folder / UNREADABLE).iterdir()) == sorted(
        [m.name for m in broken] + [records[7]["data"], records[9]["data"]])
    assert sorted(p.name for p in folder.iterdir()) == [UNREADABLE]  # everything else was sent
    client = MlflowClient(server.uri)
    assert history(client, run.info.run_id, "eval/x") == [1, 3]  # 2, 4, 5 and 6 were broken
    artifacts = [f.path for f in client.list_artifacts(run.info.run_id, "images")]
    assert len([p for p in artifacts if p.endswith(".png")]) == 1  # grid step 3 (1: data gone, 2: cut short)
    assert [f.path for f in client.list_artifacts(run.info.run_id, "critic")] == ["critic/b.png"]  # a was cut short
    # A write sent again (a kill between sending and removing its record) is the same row: stored once
    (folder / "00000000000000000001.json").write_text(json.dumps(records[0]))
    Outbox(folder, remote=True).deliver(patience=5.0)
    assert history(client, run.info.run_id, "eval/x") == [1, 3]


def test_a_write_the_server_refuses_is_set_aside_and_blocks_nothing(server, tmp_path, capsys, fail_fast_env):
    mlflow.set_tracking_uri(server.uri)
    mlflow.set_experiment("outbox-refused")
    folder = tmp_path / "outbox"
    folder.mkdir()
    # A metric name MLflow does not allow: a well-formed kept write that the server itself refuses
    (folder / "00000000000000000001.json").write_text(json.dumps({"metrics": {"bad key?": 1.0}, "step": 1}))
    (folder / "00000000000000000002.json").write_text(json.dumps({"metrics": {"eval/x": 2.0}, "step": 2}))
    with mlflow.start_run() as run:
        outbox = Outbox(folder, remote=True)
        outbox.deliver(patience=5.0)
        outbox.log_metrics({"other key?": 3.0}, step=3)  # refused when first sent: set aside at once
        outbox.log_metrics({"eval/x": 4.0}, step=4)
    out = capsys.readouterr().out
    assert "the MLflow server refused it (it answers HTTP 400" in out
    assert "Warning: the MLflow server refused a write (it answers HTTP 400" in out and "not sent again" in out
    assert "does not answer" not in out and "does not take writes" not in out
    assert len(list((folder / REFUSED).glob("*.json"))) == 2 and not outbox.pending
    assert history(MlflowClient(server.uri), run.info.run_id, "eval/x") == [2, 4]


class Failing(http.server.BaseHTTPRequestHandler):
    """A server that answers every request with a 503 in MLflow's JSON error format."""

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "database is down"}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


def test_a_server_that_answers_with_errors_is_not_said_to_be_down(server, tmp_path, capsys, fail_fast_env):
    """A 5xx is kept and retried like an outage (the server may take it later), with what the server said."""
    failing = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Failing)
    threading.Thread(target=failing.serve_forever, daemon=True).start()
    mlflow.set_tracking_uri(server.uri)
    mlflow.set_experiment("outbox-5xx")
    try:
        with mlflow.start_run():
            mlflow.set_tracking_uri(f"http://127.0.0.1:{failing.server_address[1]}")  # the same run, a failing host
            outbox = Outbox(tmp_path / "outbox", remote=True)
            outbox.log_metrics({"eval/x": 1.0}, step=1)
            with pytest.raises(Undelivered, match=r"still does not take the kept writes: it answers HTTP 503"):
                outbox.deliver(patience=0.5)
            mlflow.set_tracking_uri(server.uri)
    finally:
        failing.shutdown()
        failing.server_close()
    out = capsys.readouterr().out
    assert "does not take writes: it answers HTTP 503" in out and "does not answer" not in out
    assert len(outbox.pending) == 1


def test_a_run_with_unreadable_kept_writes_resumes_and_finishes(server, tmp_path):
    """The server goes down mid-run, the run is killed with writes kept, two of them get broken (an empty
    record, as a full disk left them before writes were atomic, and one cut short); with the server back,
    the rerun names both, delivers the rest exactly once and finishes."""
    args = served_args(server, tmp_path, "outbox-corrupt", 4096)
    proc = start_training(args, tmp_path)
    try:
        wait_for(lambda: any((tmp_path / "ckpt").glob("*/checkpoint")), proc, "the first checkpoint")
        server.stop()
        wait_for(lambda: len(list((tmp_path / "ckpt").glob("*/outbox/*.json"))) >= 4, proc, "4 kept writes")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        server.start()
    [folder] = (tmp_path / "ckpt").glob("*/outbox")
    kept = sorted(folder.glob("*.json"))
    records = {meta: json.loads(meta.read_text()) for meta in kept}
    broken = [kept[1], kept[2]]
    kept[1].write_bytes(b"")
    kept[2].write_bytes(kept[2].read_bytes()[:25])
    good = [(key, r["step"]) for meta, r in records.items() if meta not in broken for key in r.get("metrics", {})]
    done = run_cli("train.py", *args, cwd=tmp_path)
    assert "Resuming MLflow run" in done.stdout
    for meta in broken:
        assert f"kept write {meta} is set aside" in done.stdout
        assert (folder / UNREADABLE / meta.name).is_file()
    assert not list(folder.glob("*.json"))
    client = MlflowClient(server.uri)
    [run] = client.search_runs([client.get_experiment_by_name("outbox-corrupt").experiment_id])
    assert run.info.status == "FINISHED"
    steps = {key: [m.step for m in client.get_metric_history(run.info.run_id, key)] for key in run.data.metrics}
    for key, logged in steps.items():
        assert len(logged) == len(set(logged)), f"{key} logged a step twice: {sorted(logged)}"
    assert sorted(steps["eval/reconstruction_error"]) == [1024, 2048, 3072, 4096]
    for key, step in good:
        assert step in steps[key], (key, step)


def test_a_write_that_cannot_be_kept_stops_the_run_in_seconds_with_one_line(server, tmp_path):
    """The outbox cannot be created (a file is in its place, as a read-only or full disk would refuse it):
    the first write kept during an outage stops the run, naming the outbox, without MLflow's minutes of retries."""
    args = served_args(server, tmp_path, "outbox-unkept", 4096)
    proc = subprocess.Popen([sys.executable, str(SRC / "train.py"), *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        wait_for(lambda: any((tmp_path / "ckpt").glob("*/checkpoint")), proc, "the first checkpoint")
        [directory] = [p.parent for p in (tmp_path / "ckpt").glob("*/checkpoint")]
        (directory / "outbox").write_text("a file where the outbox goes")
        server.stop()
        down = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - down
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.start()
    lines = [line for line in err.splitlines() if line.strip()]
    print(f"exit {proc.returncode} {took:.1f} s after the server stopped: {err.strip()}")
    assert proc.returncode == 2, err[-3000:]
    assert len(lines) == 1 and "Traceback" not in out + err, err[-3000:]
    assert lines[0].startswith(f"error: cannot keep a write the MLflow server did not take in the outbox "
                               f"{directory / 'outbox'} (a file is in the way of a folder);")
    assert "rerun the same command to resume" in lines[0]
    assert took < 60, f"took {took:.0f} s"  # MLflow's own retries took 4 minutes; 4-17 s measured on 2 busy cores
    assert (directory / "checkpoint").is_file()
    client = MlflowClient(server.uri)
    [run] = client.search_runs([client.get_experiment_by_name("outbox-unkept").experiment_id])
    assert run.info.status == "RUNNING"  # the server was down when the run ended: resumable
