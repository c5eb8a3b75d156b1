"""Every Ray call lives here: Ray's trainable API changed four times in its own examples.

The trial function maps the plain `train(config, report)` onto `tune.report` / `tune.get_checkpoint`.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import torch

from trainables.config import TrainConfig
from trainables.errors import DivergedError, UserError

CKPT_FILE = "state.pt"
DIVERGED_MARK = "diverged.txt"

# Per-epoch checkpoints trip a warning meant for sub-second reporting loops.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402


class ClusterError(UserError):
    pass


def start(address: str | None, num_cpus: int | None = None, runtime_env: dict | None = None) -> dict:
    """Start local Ray (the default) or join a cluster; returns the cluster's total resources."""
    if ray.is_initialized():
        return cluster_resources()
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"--address {address!r}: could not connect to a Ray cluster ({exc})") from None
    return cluster_resources()


def stop() -> None:
    if ray.is_initialized():
        ray.shutdown()


def cluster_resources() -> dict:
    res = ray.cluster_resources()
    return {"cpu": float(res.get("CPU", 0)), "gpu": float(res.get("GPU", 0)), "nodes": len(ray.nodes())}


def _load_state(checkpoint) -> dict | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, CKPT_FILE), map_location="cpu", weights_only=True)


def _trial(config: dict, data=None, extra_val=None) -> None:
    from trainables.engine import train

    trial_dir = tune.get_context().get_trial_dir()
    mark = os.path.join(trial_dir, DIVERGED_MARK)
    if os.path.exists(mark):  # a retry of a diverged trial would diverge again: fail at once, same reason
        raise DivergedError(**_read_mark(mark))
    cfg = TrainConfig.from_dict(config)

    def report(metrics: dict, state: dict) -> None:
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, os.path.join(d, CKPT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    try:
        train(cfg, report, checkpoint=_load_state(tune.get_checkpoint()), data=data, extra_val=extra_val)
    except DivergedError as exc:
        with open(mark, "w") as f:
            f.write(f"{exc.epoch} {exc.step} {exc.loss}")
        raise


def _read_mark(path: str) -> dict:
    epoch, step, loss = open(path).read().split()
    return {"epoch": int(epoch), "step": int(step), "loss": float(loss)}


@dataclass
class SweepRun:
    """What the rest of the sweep needs from Ray, as plain data."""

    trials: list[dict]  # one per trial: id, status, error, config, last metrics, epochs
    histories: dict[str, list[dict]]  # trial id -> per-epoch metrics
    experiment_path: str


def experiment_exists(path: str) -> bool:
    return tune.Tuner.can_restore(path)


def run_sweep(spec, *, storage_path: str, data=None, extra_val=None, resume: bool = False,
              callbacks: list | None = None, verbose: int = 1) -> SweepRun:
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    res = spec.resources
    trainable = tune.with_resources(
        tune.with_parameters(_trial, data=data, extra_val=extra_val), {"cpu": res.cpu, "gpu": res.gpu}
    )
    exp_path = os.path.join(storage_path, spec.name)
    if resume:
        tuner = tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        search = OptunaSearch(
            space=spec.define_by_run, metric=spec.metric, mode=spec.mode, sampler=spec.make_sampler(),
            points_to_evaluate=spec.points_to_evaluate or None,
        )
        asha = ASHAScheduler(
            time_attr="training_iteration", metric=spec.metric, mode=spec.mode, max_t=spec.epochs,
            grace_period=spec.asha.grace_period, reduction_factor=spec.asha.reduction_factor,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=search, scheduler=asha, num_samples=spec.trials.num_samples,
                max_concurrent_trials=spec.trials.max_concurrent,
                trial_name_creator=_short_name, trial_dirname_creator=_short_name,
                reuse_actors=True,  # a fresh worker per trial re-imports torch: seconds each on a laptop
            ),
            run_config=tune.RunConfig(
                name=spec.name, storage_path=storage_path, verbose=verbose, callbacks=callbacks,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=spec.trials.max_failures),
            ),
        )
    grid = tuner.fit()
    return _collect(grid, spec.epochs, exp_path)


def _short_name(trial) -> str:
    return f"trial_{trial.trial_id}"


def _collect(grid, max_epochs: int, exp_path: str) -> SweepRun:
    trials, histories = [], {}
    for result in grid:
        metrics = dict(result.metrics or {})
        tid = metrics.get("trial_id") or os.path.basename(result.path).removeprefix("trial_")
        df = result.metrics_dataframe
        hist = [] if df is None else df.to_dict("records")
        epochs = int(metrics.get("training_iteration", len(hist)) or 0)
        if result.error is not None:
            status, error = "errored", _error_line(result.error)
        elif epochs >= max_epochs:
            status, error = "completed", ""
        else:
            status, error = "stopped_early", ""
        trials.append({"trial_id": tid, "status": status, "error": error, "epochs": epochs,
                       "config": dict(result.config or {}), "metrics": metrics, "path": result.path})
        histories[tid] = hist
    return SweepRun(trials, histories, exp_path)


def _error_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    # Ray wraps the trial's exception in a RayTaskError whose last line is the original message.
    for line in reversed(text):
        if line.strip():
            return line.strip()[:500]
    return type(err).__name__


def run_remote(fn: Callable, resources: dict, *args, **kwargs):
    """Run fn where the cluster has the resources (the retrain on a GPU node); block for its result."""
    remote = ray.remote(num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0), max_retries=0)(fn)
    return ray.get(remote.remote(*args, **kwargs))
