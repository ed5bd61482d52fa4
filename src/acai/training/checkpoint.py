"""Full training state on disk (tf.train.CheckpointManager), so a killed run resumes where it stopped.

Saved at evaluation boundaries: every network and optimizer slot, the latent classifier, the
regularizer's state (critic, discriminator, VQ codebook), the step-counter and the random-generator
state. Data order needs no state: lines batch i is drawn from (seed, i), image batches are a seeded
shuffle that resume skips forward through.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from acai.errors import TrainingError, first_line

CLOCK = ("wall_seconds", "train_seconds", "first_step_seconds", "timed_steps")


class TrainingState:
    """Checkpoints of one run's training, in its own folder, with the time spent so far."""

    def __init__(self, model, directory: Path, keep: int = 2):
        model.build_optimizers()
        self.evaluations_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_evaluations")
        # time/* accumulate over every process that trained the run: totals as of each checkpoint
        self.timing = {k: tf.Variable(0.0, dtype=tf.float64, trainable=False, name=k) for k in CLOCK}
        # the count of completed evaluation intervals is saved under "epoch", as since the first release
        items = {"model": model, "ae_optimizer": model.optimizer, "classifier_optimizer": model.classifier_optimizer,
                 "seed": model.seed_generator.state.value, "epoch": self.evaluations_done,
                 **{f"time_{k}": v for k, v in self.timing.items()}}
        if model.adversary_optimizer is not None:
            items["adversary_optimizer"] = model.adversary_optimizer
        self.checkpoint = tf.train.Checkpoint(**items)
        self.directory = Path(directory)
        self.remove_leftovers()
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory), max_to_keep=keep)

    def remove_leftovers(self) -> None:
        """Half-written saves (`ckpt-N_temp/`) of a process killed while saving: never read, only in the way.
        Only the lock holder calls this, so no save of another process is in flight."""
        if self.directory.is_dir():
            for leftover in self.directory.glob("*_temp*"):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)

    def prune(self, keep: bool, weights_logged: bool) -> None:
        """Once the run is FINISHED, nothing resumes from its checkpoints (a rerun of the config is a new
        run and starts afresh), so they are removed (`trainer.keep_checkpoints=true` keeps them): all of
        them when the trained autoencoder is a logged model, else all but the latest, then the only copy
        of the trained weights. Half-written saves always go."""
        self.remove_leftovers()
        if keep or not self.directory.is_dir():
            return
        if weights_logged:  # all but the outbox's set-aside writes (unreadable/, refused/): kept for inspection
            for path in self.directory.iterdir():
                if path.name != "outbox":
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            self._drop_empty_outbox()
            if not any(self.directory.iterdir()):
                self.directory.rmdir()
            return
        latest = self.latest
        if latest is None:
            return
        prefix = Path(latest).name + "."  # ckpt-N.index, ckpt-N.data-00000-of-00001
        for path in self.directory.glob("ckpt-*"):
            if not path.name.startswith(prefix):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        tf.compat.v1.train.update_checkpoint_state(str(self.directory), latest, all_model_checkpoint_paths=[latest])
        self._drop_empty_outbox()

    def _drop_empty_outbox(self) -> None:
        """The outbox is emptied when a run finishes; only writes set aside for inspection may remain."""
        outbox = self.directory / "outbox"
        if outbox.is_dir() and not any(outbox.iterdir()):
            outbox.rmdir()

    def clock(self) -> dict[str, float]:
        """The time totals restored with the checkpoint (zeros for a new run)."""
        return {k: float(v.numpy()) for k, v in self.timing.items()}

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self) -> int:
        """Load the latest checkpoint (if any) and return the number of completed evaluation intervals."""
        path = self.latest
        if path is None:
            return 0
        try:
            self.checkpoint.read(path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as e:
            first = first_line(e, 200)
            raise TrainingError(
                f"checkpoint {path} is corrupt or belongs to a different model ({first}); "
                f"delete {self.directory} to start afresh"
            ) from None
        return int(self.evaluations_done.numpy())

    def save(self, evaluations_done: int, clock: dict[str, float] | None = None) -> str:
        """Save after `evaluations_done` evaluations, with the run's time totals (keys of CLOCK) as of now."""
        self.evaluations_done.assign(evaluations_done)
        for key, value in (clock or {}).items():
            self.timing[key].assign(value)
        return self.manager.save(checkpoint_number=evaluations_done)


class Checkpointing(keras.callbacks.Callback):
    """Saves the training state every `every` epochs (evaluations) and at the end, with the time totals."""

    def __init__(self, state: TrainingState, every: int, clock: Callable[[], dict[str, float]] | None = None):
        super().__init__()
        self.state, self.every, self.clock = state, max(1, every), clock
        self.seconds = 0.0  # this process's time in saves

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every == 0 or done == self.params.get("epochs"):
            start = time.perf_counter()
            self.state.save(done, self.clock() if self.clock else None)
            self.seconds += time.perf_counter() - start
