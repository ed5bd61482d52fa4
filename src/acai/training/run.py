"""A whole run: config -> data, networks, regularizer -> fit -> final evaluation -> MLflow."""

from __future__ import annotations

import time

import keras
import mlflow
from omegaconf import DictConfig

from acai.config import EvaluationConfig, TrackingConfig, TrainerConfig, build, section
from acai.data.base import Dataset
from acai.evaluation.evaluator import Evaluator
from acai.networks.base import Architecture
from acai.networks.inference import predict
from acai.regularizers.base import Regularizer
from acai.tracking.mlflow_run import log_classifier, log_config, log_keras_model, open_experiment, run_name
from acai.tracking.plots import latent_scatter
from acai.training.autoencoder import Autoencoder
from acai.training.callbacks import Evaluate, TrainMetrics


def prepare(cfg: DictConfig):
    """Validate every section and build the objects; fails here, before any training, on bad input."""
    trainer = section(cfg.trainer, TrainerConfig, "trainer")
    evaluation = section(cfg.evaluation, EvaluationConfig, "evaluation")
    tracking = section(cfg.tracking, TrackingConfig, "tracking")
    dataset = build(cfg.dataset, "dataset", Dataset)
    arch = build(cfg.model, "model", Architecture)
    regularizer = build(cfg.regularizer, "regularizer", Regularizer)
    return trainer, evaluation, tracking, dataset, arch, regularizer


def train(cfg: DictConfig) -> str:
    """Train one configuration and return its MLflow run id."""
    trainer, evaluation, tracking, dataset, arch, regularizer = prepare(cfg)
    keras.utils.set_random_seed(cfg.seed)
    experiment_id = open_experiment(tracking)
    native = dataset.test_set()[0].shape[1]
    image_size = arch.image_size(native)
    evaluator = Evaluator(dataset, evaluation, image_size, seed=cfg.seed)
    model = Autoencoder(arch, regularizer, evaluator.x_test.shape[1:], dataset.num_classes,
                        lr=trainer.lr, epsilon=trainer.adam_epsilon, seed=cfg.seed)
    model.compile(jit_compile=trainer.jit_compile)
    batches = dataset.train_batches(trainer.batch_size, cfg.seed, image_size)

    tags = {"regularizer": regularizer.name, "dataset": dataset.name, "model": arch.name}
    if tracking.sweep:
        tags["sweep"] = tracking.sweep
    with mlflow.start_run(experiment_id=experiment_id, run_name=tracking.run_name or run_name(cfg), tags=tags) as run:
        log_config(cfg)
        metrics_cb = TrainMetrics(trainer.batch_size, trainer.steps_per_eval, trainer.log_every)
        evaluate_cb = Evaluate(evaluator, trainer.batch_size, trainer.steps_per_eval)
        start = time.perf_counter()
        model.fit(batches, epochs=trainer.evaluations, steps_per_epoch=trainer.steps_per_eval,
                  callbacks=[metrics_cb, evaluate_cb], verbose=trainer.verbose)
        timing = {"time/wall_seconds": time.perf_counter() - start, "time/train_seconds": metrics_cb.train_seconds,
                  "time/first_step_seconds": metrics_cb.first_step_seconds,
                  "time/images_per_second": metrics_cb.images_per_second,
                  "samples": trainer.total_steps * trainer.batch_size}
        mlflow.log_metrics(timing | {f"final/{k}": v for k, v in evaluate_cb.last.items()})
        latents = predict(model.encode_model, evaluator.x_test)
        fig = latent_scatter(latents, evaluator.y_test, f"{run.info.run_name}: test latents (PCA)")
        mlflow.log_figure(fig, "latent_space.png")
        if tracking.log_model:
            log_keras_model(model.export())
            log_classifier(model.classifier)
        return run.info.run_id
