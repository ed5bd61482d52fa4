"""A whole run: a spec (config -> data, networks, regularizer) -> build -> fit -> final logging -> MLflow.

`train` takes the configuration's lock and finds the run to continue (a `Store`); `build` restores the
model from its last checkpoint (`Built`); `Loop` is what `model.fit` calls back; `finish` logs the rest.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import tensorflow as tf
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

import acai
from acai.config import TrackingConfig, section
from acai.console import header, summary
from acai.data.base import Dataset
from acai.errors import AcaiError, ConfigError, Interrupted, TrackingError
from acai.evaluation.evaluator import Evaluator
from acai.evaluation.metrics import console_columns
from acai.locks import RunLock, lock_path, run_lock
from acai.tracking.loading import get_run, run_config
from acai.tracking.mlflow_run import is_remote, log_config, open_experiment, run_name
from acai.tracking.outbox import Outbox
from acai.tracking.sweep import PARENT_ID, find_parent
from acai.training.autoencoder import Autoencoder
from acai.training.callbacks import EvaluationCallback, Progress, StopOnSignal, TrainMetrics
from acai.training.checkpoint import Checkpointing, TrainingState
from acai.training.distribute import in_pair_order, make_strategy
from acai.training.ending import Phase, Stopped, forget_active_run, marked_when_cut_short, typed_line
from acai.training.final import (
    done_steps,
    latent_plot_step,
    log_metrics_step,
    model_steps,
    pause_for_tests,
    run_final_steps,
)
from acai.training.memory import check_fits
from acai.training.spec import RunSpec, build_model, config_key


def resume_config(cfg: DictConfig) -> tuple[DictConfig, str | None]:
    """`resume=<run id>`: continue that run with the config it logged, in the store it was found in.

    Returns the config and the run's fingerprint (`acai.config_key`, which names its checkpoints): the
    store is looked up with `tracking.uri` as given, so the run goes on there (a store copied or moved
    since, or a relative path read from another folder) and the key stays that of the logged config,
    whichever URI reached it. `trainer.verbose` may change too; the artifact folder belongs to the run."""
    tracking = section(cfg.tracking, TrackingConfig, "tracking")
    open_experiment(tracking)
    client = MlflowClient()
    run = get_run(client, cfg.resume)
    if run.info.status == "FINISHED":
        raise ConfigError("resume", cfg.resume, "that run has finished; resume continues an unfinished run")
    logged = run_config(client, cfg.resume)
    key = run.data.tags.get("acai.config_key") or config_key(logged)
    logged.resume = cfg.resume
    logged.trainer.verbose = cfg.trainer.verbose
    logged.tracking.uri = cfg.tracking.uri
    return logged, key


def eval_history(run_id: str | None) -> dict[str, list[float]]:
    """The evaluations a resumed run already logged, in step order (for the median of the last 20)."""
    if run_id is None:
        return {}
    client = MlflowClient()
    metrics = client.get_run(run_id).data.metrics
    return {k[len("eval/"):]: [m.value for m in sorted(client.get_metric_history(run_id, k), key=lambda m: m.step)]
            for k in metrics if k.startswith("eval/")}


def find_run(experiment_id: str, key: str, finished: bool) -> str | None:
    """The latest run of this exact config that finished (or did not: killed, crashed, failed), if any."""
    status = "=" if finished else "!="
    runs = MlflowClient().search_runs(
        [experiment_id], f"tags.`acai.config_key` = '{key}' and attributes.status {status} 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


def logged_until(run_id: str | None, metric: str) -> int:
    """The last step at which `metric` was logged (0 for a new run)."""
    if run_id is None:
        return 0
    history = MlflowClient().get_metric_history(run_id, metric)
    return max((m.step for m in history), default=0)


def phase_times(startup: float, checkpoints: float, evaluation: dict[str, float]) -> dict[str, float]:
    """Where this process's time outside the training steps went (`benchmarks/run_phases.py` reads these)."""
    return ({"time/startup_seconds": startup, "time/checkpoint_seconds": checkpoints,
             "time/eval_seconds": sum(evaluation.values())}
            | {f"time/eval/{key}": seconds for key, seconds in evaluation.items()})


def log_start(cfg: DictConfig, resumed, dataset: Dataset) -> None:
    """The config (params and `config.yaml`) and the data notes, unless a resumed run holds them: one
    stopped or failed during its start-up may lack them (its params are never logged twice: a label left
    out of the fingerprint, such as the sweep, may differ in the rerun)."""
    if resumed is None or not resumed.data.params:
        log_config(cfg)
    elif "config.yaml" not in {a.path for a in MlflowClient().list_artifacts(resumed.info.run_id)}:
        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    if notes := dataset.notes():
        mlflow.set_tag("acai.data_notes", "\n".join(notes))


@dataclass
class Store:
    """Where a run is tracked and checkpointed, with its configuration's lock held."""

    experiment_id: str
    key: str  # the config's fingerprint: names the checkpoint folder and the lock
    lock: RunLock
    resume_id: str | None  # the unfinished run this process continues; None: a new run

    @property
    def directory(self) -> Path:
        return self.lock.path.parent / self.key


@dataclass
class Built:
    """The objects a run trains, restored from its last checkpoint."""

    model: Autoencoder
    evaluator: Evaluator
    state: TrainingState
    batches: tf.data.Dataset
    evaluations_done: int  # completed evaluation intervals (Keras's epochs) at the last checkpoint


def build(spec: RunSpec, store: Store, stop: StopOnSignal) -> Built:
    """Data, model and training state; every variable, optimizer slots included, in the strategy's scope."""
    trainer = spec.trainer
    strategy = make_strategy(trainer.strategy, trainer.batch_size)
    evaluator = Evaluator(spec.dataset, spec.evaluation, spec.arch.image_size(), seed=spec.seed)
    if store.resume_id is None:  # a finished run's checkpoints: start afresh (before the manager reads them)
        shutil.rmtree(store.directory, ignore_errors=True)
    with strategy.scope():  # every variable, optimizer slot included, is mirrored over the replicas
        model = build_model(spec, evaluator.x_test.shape[1:])
        check_fits(model, trainer.batch_size)  # on CPUs the replicas share the host memory
        state = TrainingState(model, store.directory)
        done = state.restore()
    stop.set_model(model)
    batches = spec.dataset.train_batches(trainer.batch_size, spec.seed, evaluator.image_size,
                                         start_step=done * trainer.steps_per_eval)
    batches = in_pair_order(batches, trainer.batch_size, model.replicas)
    return Built(model, evaluator, state, batches, done)


@dataclass
class Training:
    """One run of a spec: its store, its built objects and the signal handler that may stop it."""

    spec: RunSpec
    store: Store
    built: Built
    stop: StopOnSignal


def run_tags(spec: RunSpec, store: Store, replicas: int) -> dict[str, str]:
    """What a run is tagged with from its start: its parts, fingerprint, lock, sweep and cluster job."""
    tags = {"regularizer": spec.regularizer.name, "dataset": spec.dataset.name, "model": spec.arch.name,
            "acai.config_key": store.key, "acai.lock": str(store.lock.path), "acai.replicas": str(replicas)}
    if sweep := spec.tracking.sweep:
        tags["sweep"] = sweep
        if parent := find_parent(MlflowClient(), store.experiment_id, sweep):  # a `-m` sweep's job: its child
            tags[PARENT_ID] = parent
    if "SLURM_JOB_ID" in os.environ:  # a cluster job: its logs are found by this id
        tags["slurm.job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


@contextmanager
def started_run(spec: RunSpec, store: Store, built: Built) -> Iterator[mlflow.ActiveRun]:
    """The MLflow run, new or resumed, with system metrics as `tracking.system_metrics` says."""
    tracking = spec.tracking
    mlflow.set_system_metrics_sampling_interval(tracking.system_metrics_interval)
    with mlflow.start_run(run_id=store.resume_id, experiment_id=store.experiment_id,
                          run_name=tracking.run_name or run_name(spec.config),
                          tags=run_tags(spec, store, built.model.replicas),
                          log_system_metrics=tracking.system_metrics) as run:
        yield run


class Loop:
    """What `model.fit` calls back (metrics, evaluations, progress, checkpoints) and the run's clock."""

    def __init__(self, spec: RunSpec, store: Store, built: Built):
        trainer = spec.trainer
        self.outbox = Outbox(store.directory / "outbox", remote=is_remote(mlflow.get_tracking_uri()))
        self.outbox.deliver()  # what a run cut off by a server outage kept: before reading what was logged
        self.clock = built.state.clock()
        self.metrics = TrainMetrics(trainer.batch_size, trainer.steps_per_eval, trainer.log_every, self.outbox,
                                    skip_until=logged_until(store.resume_id, "train/loss"), clock=self.clock)
        self.evaluation = EvaluationCallback(built.evaluator, trainer.batch_size, trainer.steps_per_eval,
                                             self.outbox, history=eval_history(store.resume_id))
        every = max(1, round(trainer.checkpoint_every / (trainer.steps_per_eval * trainer.batch_size)))
        self.start = time.perf_counter()
        self.startup = self.start - acai.STARTED  # this process: imports, Hydra, the store, data, networks
        self.checkpointing = Checkpointing(built.state, every, self.now)
        self.progress = Progress(trainer.verbose, trainer.batch_size, trainer.steps_per_eval, trainer.evaluations,
                                 self.evaluation, metrics=built.evaluator.declared)
        built.evaluator.announce = self.progress.phase  # a long evaluation shows what it is doing on a terminal

    def now(self) -> dict[str, float]:
        """The time totals so far over every process that trained this run (saved with each checkpoint)."""
        return {"wall_seconds": self.clock["wall_seconds"] + time.perf_counter() - self.start,
                "train_seconds": self.metrics.train_seconds,
                "first_step_seconds": self.metrics.first_step_seconds,
                "timed_steps": self.metrics.timed_steps}

    def callbacks(self, stop: StopOnSignal) -> list[keras.callbacks.Callback]:
        return [self.metrics, self.evaluation, self.progress, self.checkpointing, stop]

    def final_metrics(self, totals: dict[str, float], spec: RunSpec, evaluator: Evaluator) -> dict[str, float]:
        """Time, speed, budget and the last evaluation's figures as `final/*`."""
        timing = {f"time/{k}": totals[k] for k in ("wall_seconds", "train_seconds", "first_step_seconds")}
        timing |= phase_times(self.startup, self.checkpointing.seconds, evaluator.timings)
        return (timing | {"time/images_per_second": self.metrics.images_per_second,
                          "samples": spec.trainer.total_steps * spec.trainer.batch_size}
                | {f"final/{k}": v for k, v in self.evaluation.last.items()})


def start_logging(run, t: Training, phase: Phase) -> Loop:
    """The header, the config and data notes (unless a resumed run holds them), then the callbacks."""
    spec, store, built, stop = t.spec, t.store, t.built, t.stop
    trainer = spec.trainer
    store.lock.describe(run_id=run.info.run_id)
    print(header(run, spec.tracking.experiment, mlflow.get_tracking_uri(), mlflow.get_artifact_uri(),
                 samples=trainer.total_steps * trainer.batch_size,
                 eval_every=trainer.steps_per_eval * trainer.batch_size, evaluations=trainer.evaluations), flush=True)
    pause_for_tests("config", stop)
    log_start(spec.config, run if store.resume_id else None, spec.dataset)
    if store.resume_id is not None:
        mlflow.set_tags({"acai.lock": str(store.lock.path)})
        print(f"Resuming MLflow run {store.resume_id} after {built.evaluations_done} of {trainer.evaluations} "
              "evaluations")
    phase.final_done = done_steps(store.resume_id)
    loop = Loop(spec, store, built)
    stop.check("during start-up")
    return loop


def fit(t: Training, loop: Loop) -> None:
    """Train the remaining evaluation intervals (Keras's epochs), evaluating and checkpointing after each."""
    trainer, built = t.spec.trainer, t.built
    built.model.fit(built.batches, epochs=trainer.evaluations, initial_epoch=built.evaluations_done,
                    steps_per_epoch=trainer.steps_per_eval, verbose=0, shuffle=False,
                    callbacks=loop.callbacks(t.stop))


def finish(run, t: Training, loop: Loop, done: set[str]) -> dict[str, float]:
    """The final logging as named steps (`acai.training.final`); returns the run's time totals."""
    spec, built = t.spec, t.built
    loop.outbox.deliver()
    totals = loop.now()
    final_start = time.perf_counter()
    tags = {"acai.plateau": loop.evaluation.plateau or "unknown"}  # 'left at 81920', ...
    steps = [("metrics", log_metrics_step(run, loop.final_metrics(totals, spec, built.evaluator), tags)),
             ("latent_plot", latent_plot_step(run, built.model, built.evaluator, spec.dataset))]
    if spec.tracking.log_model:
        steps += model_steps(run, built.model)
    steps.append(("time", lambda: mlflow.log_metric("time/final_seconds",  # plot, models, classifier
                                                    time.perf_counter() - final_start)))
    run_final_steps(steps, done, t.stop, loop.progress.final)
    loop.progress.phase("")
    return totals


def train(cfg: DictConfig) -> str:
    """Train one configuration and return its MLflow run id; rerunning a killed command resumes it.

    One process at a time per configuration: the lock on `<checkpoint_dir>/<config key>.lock` is taken
    before looking for a run to resume, so a live run is never taken for a killed one. SIGINT and SIGTERM
    are handled from here on (`StopOnSignal`): a stop before the run exists changes nothing in the store."""
    stop = StopOnSignal()
    with stop.installed():
        try:
            key = None
            if cfg.resume:
                cfg, key = resume_config(cfg)
            spec = RunSpec.from_config(cfg)
            if note := spec.trainer.budget_note():
                print(note)
            keras.utils.set_random_seed(spec.seed)
            experiment_id = open_experiment(spec.tracking)
            key = key or config_key(cfg)
            stop.check("during start-up")
            with run_lock(lock_path(spec.trainer.checkpoint_dir, key)) as lock:
                if spec.tracking.skip_finished and not cfg.resume and (done := find_run(experiment_id, key, True)):
                    print(f"Skipping: MLflow run {done} already finished this configuration "
                          "(tracking.skip_finished=true)")
                    return done
                resume_id = cfg.resume or find_run(experiment_id, key, finished=False)
                return train_locked(spec, Store(experiment_id, key, lock, resume_id), stop)
        except Stopped:
            raise
        except Interrupted as e:  # before a run was started or resumed: nothing to mark
            raise Stopped(f"stopped{' at once' if stop.count > 1 else ''} by {e.signal_name} during start-up, "
                          "before any MLflow run was started or resumed: nothing was logged; rerun the same "
                          "command", e.signum, e.step) from None


def train_locked(spec: RunSpec, store: Store, stop: StopOnSignal) -> str:
    """The run itself, with its configuration's lock held: build, start, fit, finish, then prune."""
    t = Training(spec, store, build(spec, store, stop), stop)
    built = t.built
    stop.check("during start-up")
    try:
        with started_run(spec, store, built) as run:
            phase = Phase(run.info.run_id, spec.trainer.evaluations, store.directory, run.info.artifact_uri)
            with marked_when_cut_short(phase, stop, lambda: int(built.state.evaluations_done.numpy())):
                loop = start_logging(run, t, phase)
                phase.name = "training"
                fit(t, loop)
                phase.name = "final logging"
                totals = finish(run, t, loop, phase.final_done)
        with stop.shield():  # the run is FINISHED: a signal now changes nothing
            # Only now: until the run is FINISHED, a rerun resumes it from these checkpoints.
            built.state.prune(keep=spec.trainer.keep_checkpoints, weights_logged=spec.tracking.log_model)
            print(summary(run.info.run_id, totals["wall_seconds"], totals["train_seconds"],
                          loop.metrics.images_per_second, loop.evaluation.last,
                          shown=console_columns(metrics=built.evaluator.declared)), flush=True)
        return run.info.run_id
    except MlflowException as e:  # MLflow could not mark the run ended: say what matters
        forget_active_run()
        cause = e.__context__
        while cause is not None and not isinstance(cause, AcaiError):
            cause = cause.__context__
        if cause is None:
            raise TrackingError(f"the MLflow store failed ({typed_line(e)}); rerun the same command to "
                                "resume") from None
        raise cause from None
