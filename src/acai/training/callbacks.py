"""Keras callbacks that turn `fit()` into a tracked experiment: metrics, evaluations, numerical guards."""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import keras
import matplotlib.pyplot as plt

from acai.console import duration, metrics_line
from acai.errors import Interrupted, TrainingError
from acai.evaluation.evaluator import Evaluator
from acai.evaluation.interpolation import mix_weights
from acai.evaluation.metrics import console_columns
from acai.evaluation.summary import end_of_training_summary, plateau_state
from acai.networks.inference import predict
from acai.tracking.outbox import Outbox
from acai.tracking.plots import critic_path, interpolation_grid, reconstruction_grid


class SampleClock(keras.callbacks.Callback):
    """Knows how many training samples have been seen: the x-axis of every logged metric."""

    def __init__(self, batch_size: int, steps_per_epoch: int):
        super().__init__()
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def samples(self, batch: int | None = None) -> int:
        """Samples seen after `batch` of the current epoch, or at the end of the current epoch."""
        steps = self.epoch * self.steps_per_epoch + (self.steps_per_epoch - 1 if batch is None else batch) + 1
        return steps * self.batch_size


class TrainMetrics(SampleClock):
    """Logs the running training losses every `log_every` steps, and stops on NaN/Inf with the loss named."""

    def __init__(self, batch_size: int, steps_per_epoch: int, log_every: int, outbox: Outbox, *, skip_until: int = 0,
                 clock: dict[str, float] | None = None):
        super().__init__(batch_size, steps_per_epoch)
        self.log_every, self.outbox = log_every, outbox
        self.skip_until = skip_until  # a resumed run already logged these samples
        clock = clock or {}  # a resumed run's totals so far, from its checkpoint
        self.train_seconds = clock.get("train_seconds", 0.0)  # time inside training batches, evaluations excluded
        self.first_step_seconds = clock.get("first_step_seconds", 0.0)  # includes tracing and XLA compilation
        self.timed_steps = int(clock.get("timed_steps", 0))
        self._first = True
        self._mark = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._mark = time.perf_counter()

    @property
    def images_per_second(self) -> float:
        """Steady-state throughput: every step but the first (compilation)."""
        return self.timed_steps * self.batch_size / max(self.train_seconds - self.first_step_seconds, 1e-9)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        self.train_seconds += now - self._mark
        if self._first:  # this process's first step traces (and compiles): kept apart from the throughput
            self.first_step_seconds += now - self._mark
            self._first = False
        else:
            self.timed_steps += 1
        self._mark = now
        step = self.samples(batch) // self.batch_size
        values = {k: float(v) for k, v in logs.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(
                f"loss {bad[0]!r} became {values[bad[0]]} at step {step} ({self.samples(batch)} samples); "
                "the last checkpoint and everything logged so far are kept. Lower the learning rate or check the data."
            )
        if step % self.log_every == 0 and self.samples(batch) > self.skip_until:
            self.outbox.log_metrics({f"train/{k}": v for k, v in values.items()}, step=self.samples(batch))


BASELINE = "mean_image_error"  # logged once as eval/mean_image_error, so tools can recompute eval/on_plateau


class EvaluationCallback(SampleClock):
    """Every epoch (= `trainer.eval_every` samples): the paper's metrics (`Evaluator.evaluate`), the image
    grids, the medians, logged."""

    def __init__(self, evaluator: Evaluator, batch_size: int, steps_per_epoch: int, outbox: Outbox,
                 history: dict | None = None):
        super().__init__(batch_size, steps_per_epoch)
        self.evaluator, self.outbox = evaluator, outbox
        self.history: dict[str, list[float]] = history if history is not None else {}
        # The plateau's reference, logged once with the first evaluation: not an evaluation history of its own
        self.baseline_logged = self.history.pop(BASELINE, None) is not None
        self.last: dict[str, float] = {k: v[-1] for k, v in self.history.items()}
        self.logged_until = len(next(iter(self.history.values()), [])) * steps_per_epoch * batch_size
        self.seconds = 0.0  # how long the last evaluation took, logging included

    def on_epoch_end(self, epoch, logs=None):
        cfg = self.evaluator.cfg
        last = epoch + 1 == self.params.get("epochs")
        self.log_evaluation(self.model, self.samples(), cluster=cfg.cluster and (last or cfg.cluster_every_eval))

    def log_evaluation(self, model, samples: int, cluster: bool = False) -> dict[str, float]:
        ev = self.evaluator
        if samples <= self.logged_until:  # a resumed run redid an epoch it had already evaluated
            return self.last
        start = time.perf_counter()
        metrics = ev.evaluate(model.encode_model, model.decode_model, model.classifier, cluster=cluster)
        # The images first, the metrics last in one batch: an evaluation counts as done (a resumed run
        # skips it) only once its metrics are logged, so a kill or a failed write in between redoes all of it.
        with ev.phase("images", "reconstruction and interpolation grids"):
            self.log_images(model, samples)
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)
        summary = end_of_training_summary(self.history, ev.cfg.median_of_last, self.params.get("epochs", 1))
        baseline = {} if self.baseline_logged else {f"eval/{BASELINE}": ev.mean_image_error}
        with ev.phase("log_metrics", "log the metrics"):
            self.outbox.log_metrics({f"eval/{k}": v for k, v in metrics.items()} | baseline | summary, step=samples)
        self.baseline_logged = True
        self.last = metrics
        self.seconds = time.perf_counter() - start
        return metrics

    @property
    def plateau(self) -> str | None:
        """The run's plateau history so far ('never left', 'left at 81920', ...; see `plateau_state`); the
        flags of a run resumed from before they existed are its last evaluations."""
        flags = self.history.get("on_plateau", [])
        every = self.steps_per_epoch * self.batch_size
        done = len(self.history.get("reconstruction_error", flags))
        return plateau_state(flags, [(done - len(flags) + i + 1) * every for i in range(len(flags))])

    def log_images(self, model, samples: int) -> None:
        ev, cfg = self.evaluator, self.evaluator.cfg
        originals = ev.x_test[: cfg.reconstructions]
        recon = predict(model, originals)
        pairs = min(cfg.grid_pairs, len(ev.x_test) // 2)  # a tiny test set draws fewer rows
        frames = ev.interpolation_frames(model.encode_model, model.decode_model, pairs, cfg.grid_steps)
        ends = ev.x_test[:pairs], ev.x_test[pairs: 2 * pairs]
        # Synchronous: written before the metrics that mark the evaluation done (MLflow's default for
        # stepped images is a background queue, which also leaves threads behind every run of a process).
        for key, grid in (("reconstructions", reconstruction_grid(originals, recon, cfg.grid_scale)),
                          ("interpolations", interpolation_grid(ends[0], frames, ends[1], cfg.grid_scale))):
            self.outbox.log_image(grid, key=key, step=samples)
        judged = model.regularizer.judge_interpolations(frames.reshape((-1,) + frames.shape[2:]))
        if judged is not None:
            fig = critic_path(mix_weights(cfg.grid_steps), judged.reshape(frames.shape[:2]))
            self.outbox.log_figure(fig, f"critic/critic_path_{samples:010d}.png")
            plt.close(fig)




class StopOnSignal(keras.callbacks.Callback):
    """SIGINT (Ctrl-C) and SIGTERM stop a run at its next safe point: after the training step in progress
    (never half-way through an evaluation or a save), or between two steps of the start-up and of the final
    logging (`check`). A second signal stops at once: the handler raises `Interrupted` wherever the main
    thread is, so the run is still marked KILLED with one line; a third gets the default action (the
    process dies on the spot, as with `kill -9`). While the stop is being recorded (`shielded`), further
    signals are only counted: marking the run KILLED takes milliseconds and must not be cut off."""

    def __init__(self):
        super().__init__()
        self.signum: int | None = None
        self.count = 0
        self.shielded = False

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum
            return
        if self.shielded:
            return
        for s in (signal.SIGINT, signal.SIGTERM):  # a third signal: the default action
            signal.signal(s, signal.SIG_DFL)
        raise Interrupted(f"stopped at once by a second {signal.Signals(signum).name}", signum, self.step())

    def step(self) -> int:
        """The training step reached (-1 before the model exists)."""
        model = getattr(self, "_model", None)
        try:
            return int(model.optimizer.iterations.numpy()) if model is not None else -1
        except Exception:  # noqa: BLE001 - only ever a label in a message
            return -1

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The handlers for SIGINT and SIGTERM while the block runs (signals reach the main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextmanager
    def shield(self) -> Iterator[None]:
        """Signals are counted, not acted on, while the block runs (recording the stop)."""
        self.shielded = True
        try:
            yield
        finally:
            self.shielded = False

    def check(self, where: str) -> None:
        """A safe point outside training: stop here if a signal came."""
        if self.signum is not None:
            raise Interrupted(f"stopped by {signal.Signals(self.signum).name} {where}", self.signum, self.step())

    def on_train_batch_end(self, batch, logs=None):
        if self.signum is not None:
            step = int(self.model.optimizer.iterations.numpy())
            raise Interrupted(f"stopped by signal {self.signum} at step {step}", self.signum, step)


class Progress(SampleClock):
    """One line per evaluation and, on a terminal at verbose=1, a progress line that fits 100 columns.

    verbose 0: neither (the header and summary still print); 1: both; 2: evaluation lines only (logs)."""

    WIDTH = 99

    def __init__(self, verbose: int, batch_size: int, steps_per_epoch: int, evaluations: int,
                 evaluation: EvaluationCallback, *, stream=None, metrics=None):
        super().__init__(batch_size, steps_per_epoch)
        self.columns = console_columns(every_eval=True, metrics=metrics)  # clustering ones: in the summary
        self.stream = stream or sys.stdout
        self.lines = verbose >= 1
        self.live = verbose == 1 and self.stream.isatty()
        self.evaluations = evaluations
        self.evaluation = evaluation  # its last metrics and how long it took
        self._shown, self._start, self._start_step = 0.0, 0.0, 0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._start_step = -1

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        step = self.samples(batch) // self.batch_size
        if self._start_step < 0:  # the first step traces and compiles: the rate starts after it
            self._start, self._start_step = now, step
        if not self.live or now - self._shown < 0.5:
            return
        self._shown = now
        total = self.evaluations * self.steps_per_epoch
        rate = (step - self._start_step) / max(now - self._start, 1e-9)
        eta = duration((total - step) / rate) if rate > 0 and step > self._start_step else "?"
        done = int(10 * step / total)
        loss = (logs or {}).get("loss")
        text = (f"\r[{'#' * done}{'.' * (10 - done)}] {step * self.batch_size:,}/{total * self.batch_size:,} "
                f"samples  eval {self.epoch + 1}/{self.evaluations}  {rate * self.batch_size:,.0f} img/s"
                + (f"  loss {float(loss):.4g}" if loss is not None else "") + f"  eta {eta}")
        self.stream.write(text[: self.WIDTH + 1].ljust(self.WIDTH + 1))
        self.stream.flush()

    def phase(self, what: str) -> None:
        """On a terminal, the part of an evaluation or of the final logging under way replaces the progress
        line, so that a long final evaluation (clustering, probe) or a model upload does not look like a hang;
        an empty `what` clears the line. Nothing elsewhere (log files keep one line per evaluation)."""
        if not self.live:
            return
        text = f"\r  eval {self.epoch + 1}/{self.evaluations}: {what} ..." if what else "\r"
        self.stream.write(text[: self.WIDTH + 1].ljust(self.WIDTH + 1) + ("" if what else "\r"))
        self.stream.flush()

    def final(self, what: str) -> None:
        """A step of the final logging, on the progress line (see `phase`)."""
        if self.live:
            self.stream.write(f"\r  final logging: {what} ..."[: self.WIDTH + 1].ljust(self.WIDTH + 1))
            self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        if not self.lines:
            return
        if self.live:
            self.stream.write("\r" + " " * self.WIDTH + "\r")
        shown = metrics_line(self.evaluation.last, self.columns)
        line = (f"eval {epoch + 1}/{self.evaluations}  {self.samples():,} samples  {shown}  "
                f"{self.evaluation.seconds:.1f} s")
        print(line, file=self.stream, flush=True)
