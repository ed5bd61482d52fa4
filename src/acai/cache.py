"""Results that depend only on the data and the settings, kept on disk between runs.

The K-means baseline on raw pixels is the same for every run on a dataset (same images, restarts,
seed), yet costs more than any other part of an evaluation (docs/performance.md, "where a run's time
goes"). It is computed once per machine and read back after; the key is a hash of the exact arrays
and settings, so changed data or settings never hit a stale entry. `ACAI_CACHE_DIR` moves the folder
(default `~/.cache/acai`); deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    return Path(os.environ.get("ACAI_CACHE_DIR") or Path.home() / ".cache" / "acai").expanduser()


def fingerprint(*parts: object) -> str:
    """sha256 over arrays (dtype, shape and bytes) and any other values (their repr)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(np.ascontiguousarray(part).data)
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def remembered(name: str, key: str, compute: Callable[[], float]) -> float:
    """`compute()`, or the value stored under name/key by an earlier call. An unreadable entry is
    recomputed; a folder that cannot be written only means no cache."""
    path = cache_dir() / name / f"{key}.json"
    try:
        return float(json.loads(path.read_text())["value"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"value": value}))
        tmp.replace(path)  # atomic: a parallel job reads the old state or the whole new one
    except OSError:
        pass
    return value
