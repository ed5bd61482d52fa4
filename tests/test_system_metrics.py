"""MLflow's own system metrics (`system/*`: CPU, memory, disk) are logged with every training run by default."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from acai.training.run import train

# mlp ACAI for 8 evaluations: a few seconds, several sampling intervals of 0.25 s
RUN = ["experiment=smoke", "model=mlp", "model.hidden=[64]", "regularizer=acai", "trainer.total_samples=2048",
       "trainer.eval_every=256", "tracking.log_model=false", "evaluation.cluster=false"]


def system_metrics(cfg) -> dict[str, list[int]]:
    run_id = train(cfg)
    client = MlflowClient(cfg.tracking.uri)
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith("system/")]
    return {k: sorted(m.step for m in client.get_metric_history(run_id, k)) for k in keys}


def test_a_run_logs_cpu_and_memory_every_interval(compose_cfg):
    logged = system_metrics(compose_cfg(*RUN, "tracking.system_metrics_interval=0.25"))
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(logged), logged
    steps = logged["system/cpu_utilization_percentage"]
    assert len(steps) >= 2 and steps == list(range(len(steps)))  # one sample per interval, in order


def test_system_metrics_can_be_turned_off(compose_cfg):
    assert system_metrics(compose_cfg(*RUN, "tracking.system_metrics=false",
                                      "tracking.system_metrics_interval=0.25")) == {}
