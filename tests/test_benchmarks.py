"""The benchmark's FLOP count: what the step executes, not every node the tape built."""

from __future__ import annotations

import importlib.util

from conftest import ROOT


def load_throughput():
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step_flops_count_only_what_runs():
    bench = load_throughput()
    flops = {}
    for reg in ("none", "aae", "acai"):
        ds, model, size = bench.build("lines", "conv", reg, 8)
        flops[reg] = bench.step_flops(model, ds, size, 8)
    # The AAE adds a 100-100 MLP on a 64-d latent (~40 kFLOP per image); its loss's dead gradient back
    # into the encoder (what a whole-graph count adds: +44%) must not be counted.
    assert 1.0 <= flops["aae"] / flops["none"] < 1.01
    # ACAI: encoder once, decoder twice, critic twice, forward and backward (x3), plus the critic's
    # second backward for its own loss: ~17 network passes against the plain AE's 6 (2.83x); a
    # whole-graph count says 4.0x.
    assert 2.6 < flops["acai"] / flops["none"] < 3.1

