"""Several devices, one run: a mirrored step over 2 logical CPU devices is the single-device step.

The CPU can only be split before TensorFlow starts, so these run in fresh processes
(`tests/mirrored_steps.py`, `src/train.py`); resume under the strategy is in test_resume.py.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from acai.errors import ConfigError
from acai.regularizers.draws import pair_order
from acai.training.distribute import make_strategy

pytestmark = pytest.mark.slow  # real processes: kept in CI, skipped by `-m 'not slow'`


@pytest.fixture(scope="module")
def mirrored() -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "mirrored_steps.py")], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_mirrored_step_equals_the_single_device_step_at_the_same_global_batch(mirrored):
    assert mirrored["replicas"] == 2
    for name, difference in mirrored["step_difference"].items():
        # SGD: a step moves weights by up to ~0.2 (VAE: ~48); unscaled gradients would double every move
        assert difference <= 1e-4 * mirrored["weights_changed"][name], name


def test_replicas_hold_identical_weights_after_several_steps(mirrored):
    assert mirrored["replica_spread_after_6_steps"] == 0.0


def test_replicas_draw_different_numbers_that_together_are_the_single_device_draw(mirrored):
    assert not mirrored["replica_draws_equal"]
    assert mirrored["draws_match_single_device"]


def test_pair_order_gives_every_replica_whole_pairs():
    for batch, replicas in [(16, 2), (64, 4), (8, 4)]:
        order = pair_order(batch, replicas)
        assert sorted(order) == list(range(batch))
        for rows in order.reshape(replicas, -1):  # reversing a slice pairs i with B-1-i of the whole batch
            assert all(a + b == batch - 1 for a, b in zip(rows, rows[::-1]))


def test_mirrored_on_one_device_warns_and_trains_as_none(capsys):
    strategy = make_strategy("mirrored", 16)  # this process: TensorFlow already started with one CPU device
    assert strategy.num_replicas_in_sync == 1
    assert "trainer.strategy=mirrored sees one device" in capsys.readouterr().out


def test_mirrored_rejects_a_batch_it_cannot_split_into_whole_pairs():
    with pytest.raises(ConfigError, match=r"trainer.batch_size.*multiple of 2 x 1 replicas"):
        make_strategy("mirrored", 15)


def test_the_nan_guard_stops_a_mirrored_run_naming_the_loss_and_step(mirrored):
    assert re.match(r"loss '\w+' became (nan|inf) at step \d+", mirrored["nan_guard"]), mirrored["nan_guard"]
