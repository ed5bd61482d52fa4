"""The explorer's server: its socket on 127.0.0.1 (`listen`) and the app over the loaded runs (`start`),
as `src/explore.py` serves it."""

from __future__ import annotations

import socket
import sys

import uvicorn

from acai.config import DEFAULT_TRACKING_URI
from acai.errors import AcaiError, ConfigError

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
