"""A whole run: config -> data, networks, regularizer -> fit -> final evaluation -> MLflow."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import mlflow
import tensorflow as tf
from mlflow.entities import LoggedModelStatus, Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

import acai
from acai.config import EvaluationConfig, TrackingConfig, TrainerConfig, build, section
from acai.console import header, summary
from acai.data.base import Dataset
from acai.errors import AcaiError, ConfigError, Interrupted, TrackingError
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
from acai.tracking.outbox import Outbox
from acai.tracking.plots import latent_scatter
from acai.tracking.sweep import PARENT_ID, find_parent
from acai.training.autoencoder import Autoencoder
from acai.training.callbacks import Evaluate, Progress, StopOnSignal, TrainMetrics
from acai.training.checkpoint import Checkpointing, TrainingState
from acai.training.distribute import in_pair_order, make_strategy
from acai.training.memory import check_fits


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
    for label in ("verbose", "keep_checkpoints"):
        data["trainer"].pop(label, None)
    for label in ("sweep", "skip_finished", "objective", "system_metrics", "system_metrics_interval"):
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


FINAL_TAG = "acai.final."  # + the name of a step of the final logging: set once that step is in the store
PAUSE_ENV = "ACAI_PAUSE_BEFORE"  # tests only: `<step>:<file>` waits before that step while the file exists


def write_fault(error: BaseException) -> bool:
    """What the disk or the store raise when a write fails (full, read-only, gone): the run then ends
    FAILED with one line. TensorFlow's other OpErrors are bugs and keep their traceback."""
    return (isinstance(error, (OSError, MlflowException, sqlite3.Error, tf.errors.PermissionDeniedError))
            or disk_full(error))


class Stopped(Interrupted):
    """A stop by signal, recorded in the store and worded for the phase it happened in."""


def first_line(error: BaseException) -> str:
    """`Type: first line of the message`, for a one-line report of an error from a library."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def end_run(status: str) -> str | None:
    """Mark the active run `status`; None when done, else why it could not be (a read-only store)."""
    try:
        mlflow.end_run(status)
        return None
    except Exception as e:  # noqa: BLE001 - reported in the run's one line, never instead of it
        forget_active_run()
        return first_line(e)


def forget_active_run() -> None:
    """A run MLflow could not mark ended (its store down or read-only) stays this process's active run, and
    the next `start_run` in the process (a sweep's next job, a test) would fail on it: let it go."""
    from mlflow.tracking import fluent

    fluent._active_run_stack.get().clear()


def pause_for_tests(step: str, stop: StopOnSignal) -> None:
    """`ACAI_PAUSE_BEFORE=<step>:<file>`: create `file` and wait, before `step`, until it is removed or a
    signal comes, so a test can act at a known point of a phase. Unset (always, outside tests): nothing."""
    name, _, marker = os.environ.get(PAUSE_ENV, "").partition(":")
    if name != step or not marker:
        return
    path = Path(marker)
    path.touch()
    while path.exists() and stop.signum is None:
        time.sleep(0.02)


def done_steps(run_id: str | None) -> set[str]:
    """The steps of the final logging that a resumed run already completed (none for a new run)."""
    if run_id is None:
        return set()
    tags = MlflowClient().get_run(run_id).data.tags
    return {k[len(FINAL_TAG):] for k in tags if k.startswith(FINAL_TAG)}


def log_model_once(run, name: str, log: Callable[[], None]) -> None:
    """Log a model unless the run holds a finished (READY) one of that name; one left PENDING by a kill
    or FAILED by a write error is deleted first, so the run ends with exactly one model of each name."""
    client = MlflowClient()
    found = client.search_logged_models([run.info.experiment_id],
                                        filter_string=f"source_run_id = '{run.info.run_id}'")
    mine = [m for m in found if m.name == name]
    if any(m.status == LoggedModelStatus.READY for m in mine):
        return
    for model in mine:
        client.delete_logged_model(model.model_id)
    log()


def run_final_steps(steps: list[tuple[str, Callable[[], None]]], done: set[str], stop: StopOnSignal,
                    announce: Callable[[str], None] = lambda name: None) -> None:
    """The final logging as named steps, each recorded as the tag `acai.final.<name>` once in the store:
    a rerun after a stop or a failure does what is left and repeats nothing. A signal stops between steps;
    `announce` is told each step as it starts (the console's progress line)."""
    for name, step in steps:
        if name in done:
            continue
        pause_for_tests(name, stop)
        stop.check(f"during the final logging (before {name})")
        announce(name.replace("_", " "))
        step()
        mlflow.set_tag(FINAL_TAG + name, "done")
        done.add(name)


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
            trainer, evaluation, tracking, dataset, arch, regularizer = prepare(cfg)
            if note := trainer.budget_note():
                print(note)
            keras.utils.set_random_seed(cfg.seed)
            experiment_id = open_experiment(tracking)
            key = key or config_key(cfg)
            stop.check("during start-up")
            with run_lock(lock_path(trainer.checkpoint_dir, key)) as lock:
                if tracking.skip_finished and not cfg.resume and (done := find_run(experiment_id, key, True)):
                    print(f"Skipping: MLflow run {done} already finished this configuration "
                          "(tracking.skip_finished=true)")
                    return done
                return train_locked(cfg, trainer, evaluation, tracking, dataset, arch, regularizer, experiment_id,
                                    key, lock, stop)
        except Stopped:
            raise
        except Interrupted as e:  # before a run was started or resumed: nothing to mark
            raise Stopped(f"stopped{' at once' if stop.count > 1 else ''} by {e.signal_name} during start-up, "
                          "before any MLflow run was started or resumed: nothing was logged; rerun the same "
                          "command", e.signum, e.step) from None


def stop_message(e: Interrupted, phase: str, run_id: str, done: int, evaluations: int, steps: set[str],
                 at_once: bool, unmarked: str | None) -> str:
    """The one line of a stop by signal: where it stopped, what the run was marked, how to go on."""
    how = f"stopped{' at once' if at_once else ''} by {e.signal_name}"
    where = {"start-up": "during start-up", "training": f"at step {e.step}",
             "final logging": f"during the final logging (done: {', '.join(sorted(steps)) or 'none'})"}[phase]
    marked = (f"MLflow run {run_id} marked KILLED" if unmarked is None
              else f"MLflow run {run_id} could not be marked KILLED ({unmarked})")
    rest = ("training is complete and its last checkpoint is kept: rerun the same command to log the rest"
            if phase == "final logging" else
            f"its last checkpoint ({done} of {evaluations} evaluations) is kept: rerun the same command to resume")
    return f"{how} {where}: {marked}; {rest}"


def fault_message(e: BaseException, phase: str, run, directory: Path, unmarked: str | None) -> str:
    """The one line of a write that failed (a full disk, a read-only store or artifact folder)."""
    run_id = run.info.run_id
    what = (f"no space left on the device (checkpoints in {directory}, artifacts in {run.info.artifact_uri})"
            if disk_full(e) else f"a file or MLflow store operation failed ({first_line(e)})")
    marked = (f"MLflow run {run_id} marked FAILED" if unmarked is None
              else f"MLflow run {run_id} could not be marked FAILED either ({unmarked})")
    fix = "free space" if disk_full(e) else "fix it"
    return (f"{what} during the {phase}: {marked}; the last complete checkpoint and everything logged so far are "
            f"kept: {fix} and rerun to resume (the same command)")


def train_locked(cfg, trainer, evaluation, tracking, dataset, arch, regularizer, experiment_id, key, lock,
                 stop: StopOnSignal) -> str:
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
    stop.set_model(model)
    batches = dataset.train_batches(trainer.batch_size, cfg.seed, evaluator.image_size,
                                    start_step=first_epoch * trainer.steps_per_eval)
    batches = in_pair_order(batches, trainer.batch_size, model.replicas)
    stop.check("during start-up")

    tags = {"regularizer": regularizer.name, "dataset": dataset.name, "model": arch.name, "acai.config_key": key,
            "acai.lock": str(lock.path), "acai.replicas": str(model.replicas)}
    if tracking.sweep:
        tags["sweep"] = tracking.sweep
        if parent := find_parent(MlflowClient(), experiment_id, tracking.sweep):  # a `-m` sweep's job: its child
            tags[PARENT_ID] = parent
    if "SLURM_JOB_ID" in os.environ:  # a cluster job: its logs are found by this id
        tags["slurm.job_id"] = os.environ["SLURM_JOB_ID"]
    name = tracking.run_name or run_name(cfg)
    phase, final_done = "start-up", set()
    try:
        mlflow.set_system_metrics_sampling_interval(tracking.system_metrics_interval)
        with mlflow.start_run(run_id=resume_id, experiment_id=experiment_id, run_name=name, tags=tags,
                              log_system_metrics=tracking.system_metrics) as run:
            try:
                lock.describe(run_id=run.info.run_id)
                print(header(run, tracking.experiment, mlflow.get_tracking_uri(), mlflow.get_artifact_uri(),
                             trainer.total_steps * trainer.batch_size, trainer.steps_per_eval * trainer.batch_size,
                             trainer.evaluations), flush=True)
                pause_for_tests("config", stop)
                log_start(cfg, run if resume_id else None, dataset)
                if resume_id is not None:
                    mlflow.set_tags({"acai.lock": str(lock.path)})
                    print(f"Resuming MLflow run {resume_id} after {first_epoch} of {trainer.evaluations} evaluations")
                final_done = done_steps(resume_id)
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
                            "train_seconds": metrics_cb.train_seconds,
                            "first_step_seconds": metrics_cb.first_step_seconds,
                            "timed_steps": metrics_cb.timed_steps}

                checkpointing = Checkpointing(state, every, clock_now)
                progress = Progress(trainer.verbose, trainer.batch_size, trainer.steps_per_eval, trainer.evaluations,
                                    evaluate_cb)
                evaluator.announce = progress.phase  # a long evaluation shows what it is doing on a terminal
                stop.check("during start-up")
                phase = "training"
                model.fit(batches, epochs=trainer.evaluations, initial_epoch=first_epoch,
                          steps_per_epoch=trainer.steps_per_eval, verbose=0, shuffle=False,
                          callbacks=[metrics_cb, evaluate_cb, progress, checkpointing, stop])
                phase = "final logging"
                outbox.deliver()
                totals = clock_now()
                timing = {f"time/{k}": totals[k] for k in ("wall_seconds", "train_seconds", "first_step_seconds")}
                timing |= phase_times(startup, checkpointing.seconds, evaluator.timings)
                final_start = time.perf_counter()
                steps = final_steps(run, model, evaluator, dataset, tracking,
                                    timing | {"time/images_per_second": metrics_cb.images_per_second,
                                              "samples": trainer.total_steps * trainer.batch_size}
                                    | {f"final/{k}": v for k, v in evaluate_cb.last.items()},
                                    {"acai.plateau": evaluate_cb.plateau or "unknown"})  # 'left at 81920', ...
                steps.append(("time", lambda: mlflow.log_metric("time/final_seconds",  # plot, models, classifier
                                                                time.perf_counter() - final_start)))
                run_final_steps(steps, final_done, stop, progress.final)
                progress.phase("")
            except Interrupted as e:
                with stop.shield():
                    unmarked = end_run("KILLED")
                raise Stopped(stop_message(e, phase, run.info.run_id, int(state.epoch.numpy()), trainer.evaluations,
                                           final_done, stop.count > 1, unmarked), e.signum, e.step) from None
            except Exception as e:
                if not write_fault(e):
                    raise
                with stop.shield():
                    unmarked = end_run("FAILED")
                raise TrackingError(fault_message(e, phase, run, directory, unmarked)) from None
        with stop.shield():  # the run is FINISHED: a signal now changes nothing
            # Only now: until the run is FINISHED, a rerun resumes it from these checkpoints.
            state.prune(keep=trainer.keep_checkpoints, weights_logged=tracking.log_model)
            print(summary(run.info.run_id, totals["wall_seconds"], totals["train_seconds"],
                          metrics_cb.images_per_second, evaluate_cb.last), flush=True)
        return run.info.run_id
    except MlflowException as e:  # MLflow could not mark the run ended: say what matters
        forget_active_run()
        cause = e.__context__
        while cause is not None and not isinstance(cause, AcaiError):
            cause = cause.__context__
        if cause is None:
            raise TrackingError(f"the MLflow store failed ({first_line(e)}); rerun the same command to "
                                "resume") from None
        raise cause from None


def final_steps(run, model, evaluator, dataset, tracking, metrics: dict[str, float],
                tags: dict[str, str]) -> list[tuple[str, Callable[[], None]]]:
    """The final logging, as (name, step) pairs run in order by `run_final_steps` (add a step here)."""
    exported: list = []  # the serving model, built once for the two steps that log it

    def export():
        if not exported:
            exported.append(model.export())
        return exported[0]

    def log_metrics() -> None:  # with its tag in one write: never logged twice, even if killed right after
        client = MlflowClient()
        now = int(time.time() * 1000)
        client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()] + [RunTag(FINAL_TAG + "metrics", "done")])

    def latent_plot() -> None:
        latents = predict(model.encode_model, evaluator.x_test)
        fig = latent_scatter(latents, evaluator.y_test if dataset.labelled else None,
                             f"{run.info.run_name}: test latents (PCA)", dataset.label_name)
        try:
            mlflow.log_figure(fig, "latent_space.png")
        finally:
            plt.close(fig)

    steps = [("metrics", log_metrics), ("latent_plot", latent_plot)]
    if tracking.log_model:
        steps.append(("model", lambda: log_model_once(run, "model", lambda: log_keras_model(export()))))
        steps.append(("interpolator",
                      lambda: log_model_once(run, "interpolator", lambda: log_interpolator(export()))))
        if model.classifier is not None:
            steps.append(("classifier", lambda: log_classifier(model.classifier)))
        steps.append(("critic", lambda: log_critic(model.regularizer)))
    return steps
