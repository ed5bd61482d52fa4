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
import sys

from acai.console import quiet_tensorflow

quiet_tensorflow(filter_stderr=__name__ == "__main__")  # before TensorFlow is imported

from acai.config import DEFAULT_TRACKING_URI  # noqa: E402
from acai.errors import AcaiError  # noqa: E402
from acai.explorer.server import DEFAULT_PORT, HOST, start  # noqa: E402


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
