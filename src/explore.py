"""Explore logged models' latent interpolations in the browser: a small local web app.

    python src/explore.py RUN_ID [RUN_ID ...] [--tracking-uri URI] [--port 8765]

Pick two test images of the first run (by index, or a seeded pair with different labels, as
`src/interpolate.py` picks them) or upload your own; drag α from 0 to 1 and watch the decoded frame;
see the whole path as a strip; switch between linear and spherical interpolation. An ACAI run also
shows its critic's estimate of α for each frame. Several runs are shown side by side on the same pair.
Each run's logged model (`runs:/<id>/model`) is loaded through MLflow, from a local store (sqlite) or
a tracking server (http://...). The app listens on 127.0.0.1 only; `--port 0` takes any free port.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # before TensorFlow is imported: its start-up chatter goes to fd 2 at import
    from acai.console import quiet_native_logs

    quiet_native_logs()

import uvicorn  # noqa: E402

from acai.config import DEFAULT_TRACKING_URI  # noqa: E402
from acai.errors import AcaiError, ConfigError  # noqa: E402

HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def listen(port: int) -> socket.socket:
    """The app's socket on 127.0.0.1, bound before the models load, so a busy port fails at once."""
    if not 0 <= port <= 65535:
        raise ConfigError("--port", port, "must be 0 (any free port) to 65535")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as e:
        sock.close()
        raise ConfigError("--port", port, f"cannot listen on {HOST}:{port} ({e.strerror}); "
                          "pick another port, or --port 0 for any free one") from None
    return sock


def start(run_ids: list[str], tracking_uri: str = DEFAULT_TRACKING_URI,
          port: int = DEFAULT_PORT) -> tuple[uvicorn.Server, socket.socket, str]:
    """Load the runs and build the server (not yet serving): (server, its socket, the page's URL)."""
    from acai.explorer.app import Explorer, create_app, load_run
    from acai.tracking.mlflow_run import open_existing_store

    sock = listen(port)
    try:
        client = open_existing_store(tracking_uri)
        explorer = Explorer(client, [load_run(client, run_id) for run_id in run_ids])
        try:
            explorer.pick()
        except AcaiError as e:  # e.g. the dataset is not on this machine: uploads still work
            print(f"note: no test pair ({e}); upload two images on the page", file=sys.stderr)
    except BaseException:
        sock.close()
        raise
    config = uvicorn.Config(create_app(explorer), log_level="warning", access_log=False)
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    return uvicorn.Server(config), sock, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id", nargs="+", help="MLflow run id(s) of finished runs made by src/train.py; "
                        "several are compared side by side (they must share the image size)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help="the MLflow store: sqlite:///mlflow.db (the default, in the repository root) or a "
                        "tracking server, http://host:port")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on {HOST} (default {DEFAULT_PORT}; 0: any free port)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error argparse already printed (2)
        return e.code if isinstance(e.code, int) else 0
    try:
        server, sock, url = start(args.run_id, args.tracking_uri, args.port)
    except AcaiError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Explorer on {url}  (Ctrl-C stops it)", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
