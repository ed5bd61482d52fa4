"""The on-disk cache of results that depend only on data and settings (the pixel K-means baseline)."""

import numpy as np

from acai.cache import cache_dir, fingerprint, remembered
from acai.evaluation.clustering import cluster_accuracy


def test_a_result_is_computed_once_per_key_and_survives_a_corrupt_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("ACAI_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def compute():
        calls.append(1)
        return 41.5

    key = fingerprint(np.arange(6, dtype=np.float32).reshape(2, 3), 10, "lloyd")
    assert remembered("demo", key, compute) == 41.5 and remembered("demo", key, compute) == 41.5
    assert len(calls) == 1
    # other bytes, another dtype or shape, other settings: another key
    assert fingerprint(np.arange(6, dtype=np.float64).reshape(2, 3), 10, "lloyd") != key
    assert fingerprint(np.arange(6, dtype=np.float32).reshape(3, 2), 10, "lloyd") != key
    assert fingerprint(np.arange(6, dtype=np.float32).reshape(2, 3), 11, "lloyd") != key
    (cache_dir() / "demo" / f"{key}.json").write_text("{not json")
    assert remembered("demo", key, compute) == 41.5 and len(calls) == 2  # recomputed, rewritten
    assert remembered("demo", key, compute) == 41.5 and len(calls) == 2


def test_an_unwritable_cache_only_means_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("ACAI_CACHE_DIR", str(blocker / "cache"))  # a folder inside a file: cannot exist
    assert remembered("demo", "k", lambda: 3.0) == 3.0


def test_the_cached_pixel_baseline_equals_the_computed_one(tmp_path, monkeypatch):
    monkeypatch.setenv("ACAI_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 8)) + 4 * np.eye(8)[y]
    kwargs = dict(n_clusters=3, restarts=2, max_iter=50, seed=0)
    direct = 100 * cluster_accuracy(x, x, y, **kwargs)
    key = fingerprint(x, x, y, sorted(kwargs.items()))
    assert remembered("pixel_kmeans", key, lambda: 100 * cluster_accuracy(x, x, y, **kwargs)) == direct
    assert remembered("pixel_kmeans", key, lambda: -1.0) == direct > 90
