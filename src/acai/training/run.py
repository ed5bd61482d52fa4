"""A whole run: config -> data, networks, regularizer -> fit -> final evaluation -> MLflow."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time

import keras
import matplotlib.pyplot as plt
import mlflow
import tensorflow as tf
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

import acai
from acai.config import EvaluationConfig, TrackingConfig, TrainerConfig, build, section
from acai.console import header, summary
from acai.data.base import Dataset
from acai.errors import ConfigError, Interrupted, TrainingError
from acai.evaluation.evaluator import Evaluator
from acai.locks import lock_path, run_lock
from acai.networks.base import Architecture
from acai.networks.inference import predict
from acai.regularizers.base import Regularizer
from acai.tracking.loading import get_run, run_config
from acai.tracking.mlflow_run import (
    is_remote,
    log_classifier,
    log_config,
    log_critic,
    log_interpolator,
    log_keras_model,
    open_experiment,
    run_name,
)
from acai.tracking.outbox import Outbox, Undelivered
from acai.tracking.plots import latent_scatter
from acai.training.autoencoder import Autoencoder
from acai.training.callbacks import Evaluate, Progress, StopOnSignal, TrainMetrics
from acai.training.checkpoint import Checkpointing, TrainingState
from acai.training.distribute import in_pair_order, make_strategy
from acai.training.memory import check_fits


def resume_config(cfg: DictConfig) -> DictConfig:
    """`resume=<run id>`: continue that run with the config it logged (only `trainer.verbose` may change)."""
    tracking = section(cfg.tracking, TrackingConfig, "tracking")
    open_experiment(tracking)
    client = MlflowClient()
    run = get_run(client, cfg.resume)
    if run.info.status == "FINISHED":
        raise ConfigError("resume", cfg.resume, "that run has finished; resume continues an unfinished run")
    logged = run_config(client, cfg.resume)
    logged.resume = cfg.resume
    logged.trainer.verbose = cfg.trainer.verbose
    return logged


def eval_history(run_id: str | None) -> dict[str, list[float]]:
    """The evaluations a resumed run already logged, in step order (for the median of the last 20)."""
    if run_id is None:
        return {}
    client = MlflowClient()
    metrics = client.get_run(run_id).data.metrics
    return {k[len("eval/"):]: [m.value for m in sorted(client.get_metric_history(run_id, k), key=lambda m: m.step)]
            for k in metrics if k.startswith("eval/")}


def prepare(cfg: DictConfig):
    """Validate every section and build the objects; fails here, before any training, on bad input."""
    trainer = section(cfg.trainer, TrainerConfig, "trainer")
    evaluation = section(cfg.evaluation, EvaluationConfig, "evaluation")
    tracking = section(cfg.tracking, TrackingConfig, "tracking")
    dataset = build(cfg.dataset, "dataset", Dataset)
    arch = build(cfg.model, "model", Architecture)
    regularizer = build(cfg.regularizer, "regularizer", Regularizer)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or not 0 <= cfg.seed < 2**32:
        raise ConfigError("seed", cfg.seed, "must be an integer in 0 .. 2^32 - 1")
    arch.latent_shape((0, 0, 1))  # a latent size that does not fit fails here, before any data is loaded
    return trainer, evaluation, tracking, dataset, arch, regularizer


def config_key(cfg: DictConfig) -> str:
    """A fingerprint of everything that shapes training: the same command gives the same key.

    Leaves out what only labels or steers the run: the sweep a job belongs to (a rerun `-m` sweep gets a
    new, time-stamped folder, yet its jobs must find the runs a crash interrupted), verbosity, resume.
    """
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("resume", None)
    data["trainer"].pop("verbose", None)
    for label in ("sweep", "skip_finished", "objective"):
        data["tracking"].pop(label, None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def disk_full(error: BaseException) -> bool:
    """ENOSPC from Python, or from TensorFlow's own file writes (which raise OpErrors, not OSErrors)."""
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)


def train(cfg: DictConfig) -> str:
    """Train one configuration and return its MLflow run id; rerunning a killed command resumes it.

    One process at a time per configuration: the lock on `<checkpoint_dir>/<config key>.lock` is taken
    before looking for a run to resume, so a live run is never taken for a killed one."""
    if cfg.resume:
        cfg = resume_config(cfg)
    trainer, evaluation, tracking, dataset, arch, regularizer = prepare(cfg)
    if note := trainer.budget_note():
        print(note)
    keras.utils.set_random_seed(cfg.seed)
    experiment_id = open_experiment(tracking)
    key = config_key(cfg)
    with run_lock(lock_path(trainer.checkpoint_dir, key)) as lock:
        if tracking.skip_finished and not cfg.resume and (done := find_run(experiment_id, key, finished=True)):
            print(f"Skipping: MLflow run {done} already finished this configuration (tracking.skip_finished=true)")
            return done
        return train_locked(cfg, trainer, evaluation, tracking, dataset, arch, regularizer, experiment_id, key, lock)


def train_locked(cfg, trainer, evaluation, tracking, dataset, arch, regularizer, experiment_id, key, lock) -> str:
    """The run itself, with this configuration's lock held."""
    resume_id = cfg.resume or find_run(experiment_id, key, finished=False)
    strategy = make_strategy(trainer.strategy, trainer.batch_size)
    evaluator = Evaluator(dataset, evaluation, arch.image_size(), seed=cfg.seed)
    directory = lock.path.parent / key
    if resume_id is None:  # a finished run's checkpoints: start afresh (before the manager reads them)
        shutil.rmtree(directory, ignore_errors=True)
    with strategy.scope():  # every variable, optimizer slot included, is mirrored over the replicas
        model = Autoencoder(arch, regularizer, evaluator.x_test.shape[1:], dataset.num_classes,
                            lr=trainer.lr, epsilon=trainer.adam_epsilon, seed=cfg.seed, precision=trainer.precision)
        check_fits(model, trainer.batch_size)  # on CPUs the replicas share the host memory
        model.compile(jit_compile=trainer.use_xla(arch.xla_on_cpu))
        state = TrainingState(model, directory)
        first_epoch = state.restore()
    batches = dataset.train_batches(trainer.batch_size, cfg.seed, evaluator.image_size,
                                    start_step=first_epoch * trainer.steps_per_eval)
    batches = in_pair_order(batches, trainer.batch_size, model.replicas)

    tags = {"regularizer": regularizer.name, "dataset": dataset.name, "model": arch.name, "acai.config_key": key,
            "acai.lock": str(lock.path), "acai.replicas": str(model.replicas)}
    if tracking.sweep:
        tags["sweep"] = tracking.sweep
    if "SLURM_JOB_ID" in os.environ:  # a cluster job: its logs are found by this id
        tags["slurm.job_id"] = os.environ["SLURM_JOB_ID"]
    name = tracking.run_name or run_name(cfg)
    try:
        with mlflow.start_run(run_id=resume_id, experiment_id=experiment_id, run_name=name, tags=tags) as run:
            lock.describe(run_id=run.info.run_id)
            print(header(run, tracking.experiment, mlflow.get_tracking_uri(), mlflow.get_artifact_uri(),
                         trainer.total_steps * trainer.batch_size, trainer.steps_per_eval * trainer.batch_size,
                         trainer.evaluations), flush=True)
            if resume_id is None:
                log_config(cfg)
                if notes := dataset.notes():
                    mlflow.set_tag("acai.data_notes", "\n".join(notes))
            else:
                mlflow.set_tags({"acai.lock": str(lock.path)})
                print(f"Resuming MLflow run {resume_id} after {first_epoch} of {trainer.evaluations} evaluations")
            outbox = Outbox(directory / "outbox", remote=is_remote(mlflow.get_tracking_uri()))
            outbox.deliver()  # what a run cut off by a server outage kept: before reading what was logged
            clock = state.clock()
            metrics_cb = TrainMetrics(trainer.batch_size, trainer.steps_per_eval, trainer.log_every, outbox,
                                      skip_until=logged_until(resume_id, "train/loss"), clock=clock)
            evaluate_cb = Evaluate(evaluator, trainer.batch_size, trainer.steps_per_eval, outbox,
                                   history=eval_history(resume_id))
            every = max(1, round(trainer.checkpoint_every / (trainer.steps_per_eval * trainer.batch_size)))
            start = time.perf_counter()
            startup = start - acai.STARTED  # this process: imports, Hydra, the store, data, networks

            def clock_now() -> dict[str, float]:
                """The time totals so far over every process that trained this run (saved with each checkpoint)."""
                return {"wall_seconds": clock["wall_seconds"] + time.perf_counter() - start,
                        "train_seconds": metrics_cb.train_seconds, "first_step_seconds": metrics_cb.first_step_seconds,
                        "timed_steps": metrics_cb.timed_steps}

            stop = StopOnSignal()
            checkpointing = Checkpointing(state, every, clock_now)
            progress = Progress(trainer.verbose, trainer.batch_size, trainer.steps_per_eval, trainer.evaluations,
                                evaluate_cb)
            try:
                with stop.installed():
                    model.fit(batches, epochs=trainer.evaluations, initial_epoch=first_epoch,
                              steps_per_epoch=trainer.steps_per_eval, verbose=0, shuffle=False,
                              callbacks=[metrics_cb, evaluate_cb, progress, checkpointing, stop])
            except Interrupted as e:
                mlflow.end_run("KILLED")
                done = int(state.epoch.numpy())
                raise Interrupted(
                    f"stopped by {e.signal_name} at step {e.step}: MLflow run {run.info.run_id} marked KILLED; its "
                    f"last checkpoint ({done} of {trainer.evaluations} evaluations) is kept: rerun the same command to "
                    "resume",
                    e.signum, e.step) from None
            except (OSError, tf.errors.OpError) as e:
                if not disk_full(e):
                    raise
                raise TrainingError(
                    f"no space left on the device (checkpoints in {directory}, artifacts in "
                    f"{tracking.artifact_location}); the last complete checkpoint and everything logged so far are "
                    "kept: free space and rerun to resume") from None
            outbox.deliver()
            totals = clock_now()
            timing = {f"time/{k}": totals[k] for k in ("wall_seconds", "train_seconds", "first_step_seconds")}
            timing |= phase_times(startup, checkpointing.seconds, evaluator.timings)
            mlflow.log_metrics(timing | {"time/images_per_second": metrics_cb.images_per_second,
                                         "samples": trainer.total_steps * trainer.batch_size}
                               | {f"final/{k}": v for k, v in evaluate_cb.last.items()})
            final_start = time.perf_counter()
            latents = predict(model.encode_model, evaluator.x_test)
            fig = latent_scatter(latents, evaluator.y_test if dataset.labelled else None,
                                 f"{run.info.run_name}: test latents (PCA)", dataset.label_name)
            mlflow.log_figure(fig, "latent_space.png")
            plt.close(fig)
            if tracking.log_model:
                exported = model.export()
                log_keras_model(exported)
                log_interpolator(exported)
                log_critic(model.regularizer)
                if model.classifier is not None:
                    log_classifier(model.classifier)
            state.remove_leftovers()
            mlflow.log_metric("time/final_seconds", time.perf_counter() - final_start)  # plot, models, classifier
            print(summary(run.info.run_id, totals["wall_seconds"], totals["train_seconds"],
                          metrics_cb.images_per_second, evaluate_cb.last), flush=True)
            return run.info.run_id
    except MlflowException as e:  # MLflow could not mark the run ended after an outage: say what matters
        cause = e.__context__
        while cause is not None and not isinstance(cause, Undelivered):
            cause = cause.__context__
        if cause is None:
            raise
        raise cause from None
