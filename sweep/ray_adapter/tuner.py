"""The Tuner: the trial function with its resources, the searcher and the trial scheduler the space's table row
names, Tune's run configuration; or the same sweep restored. Returns `sweep.outcome.SweepRun`."""
from __future__ import annotations

import os
import signal
import sys

from ..outcome import Listener, StopReason, SweepRun
from . import compat
from . import durability as dur
from . import events, schedulers, trial
from .collect import collect
from .profile import profile

from ray import tune  # noqa: E402,I001
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback  # noqa: E402


def run_sweep(spec, *, storage_path: str, data=None, extra_val=None, resume: bool = False,
              listener: Listener | None = None, warm=None) -> SweepRun:
    """Run (or continue) the sweep; returns its trials as plain data. Stopped early by Ctrl-C, request_stop or
    a scheduler's signal: the trials not finished come back INTERRUPTED and `stop_reason` says why.
    `warm` (sweep.warm_start.WarmStart): earlier trials told to the sampler, its best configs run first; a
    restored sweep's searcher state already holds them."""
    events.begin(listener, spec.epochs, spec.active)
    kind = spec.trial_scheduler.kind
    protect = spec.trial_scheduler.settings.interval if kind.exploits else 0
    trainable = tune.with_resources(
        tune.with_parameters(trial.run, data=data, extra_val=extra_val, checkpoint_every=spec.trials.checkpoint_every,
                             record=_recorded(spec), protect_every=protect, active=spec.active),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    exp_path = os.path.join(storage_path, spec.name)
    if resume:
        dur.stand_in_for_deleted_checkpoints(exp_path)
        tuner = tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        search, keys = _searcher(spec, warm)
        tuner = tune.Tuner(
            trainable, param_space=keys,
            tune_config=tune.TuneConfig(
                search_alg=search, num_samples=spec.trials.num_samples,
                scheduler=schedulers.build(spec.trial_scheduler, _context(spec), spec.metric, spec.mode),
                max_concurrent_trials=None if kind.uncapped else spec.trials.max_concurrent,  # (Kind.uncapped: why)
                trial_name_creator=_short_name, trial_dirname_creator=_short_name,
                reuse_actors=True,  # a fresh worker per trial re-imports torch: seconds each on a laptop
            ),
            run_config=tune.RunConfig(
                name=spec.name, storage_path=storage_path, verbose=0,
                callbacks=[events.Events(), CSVLoggerCallback(), JsonLoggerCallback()],
                # 1: Tune saves and syncs its experiment state to the results folder after every num_to_keep
                # checkpoints of a trial (else every >= 10 s), so after each epoch of any trial a kill -9 loses nothing
                # Tune knew (the lineage covers the moment between the two). Under PBT another trial may be told to
                # copy an older checkpoint: Tune keeps them all, the trial prunes its own (durability.prune), and the
                # scheduler saves Tune's state at every exploit.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None if kind.exploits else 1),
                failure_config=tune.FailureConfig(max_failures=spec.trials.max_failures),
            ),
        )
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)}
    try:
        profile("tune_fit", torch_loaded="torch" in sys.modules)  # the driver leaves the CPU to Ray and the trials
        grid = tuner.fit()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    run = collect(grid, spec.epochs, exp_path, spec.active)
    if run.interrupted and events.state["reason"] is None:
        events.state["reason"] = StopReason.CTRL_C
    run.stop_reason = events.state["reason"] if run.interrupted or events.state["reason"] else None
    return run


def load_run(spec, storage_path: str) -> SweepRun:
    """A Tune experiment's trials as they are on disk, without running anything (a part of the sweep that ended)."""
    exp_path = os.path.join(storage_path, spec.name)
    dur.stand_in_for_deleted_checkpoints(exp_path)
    grid = tune.Tuner.restore(exp_path, trial.run).get_results()
    return collect(grid, spec.epochs, exp_path, spec.active)


def _context(spec):
    from ..trial_schedulers import Context

    return Context(spec.epochs, spec.params, spec.trials.checkpoint_every)


def _recorded(spec) -> tuple:
    """The hyperparameters PBT may change within a trial: each epoch's metrics carry the values it ran with."""
    settings = spec.trial_scheduler.settings
    return tuple(getattr(settings, "mutate", ())) if spec.trial_scheduler.kind.exploits else ()


def _searcher(spec, warm) -> tuple:
    """(search algorithm, Tune's param_space). OptunaSearch with the YAML's sampler; for a scheduler that chooses
    configs itself (PBT), its initial population: random draws from the space (Optuna's RandomSampler through the
    same define-by-run, so conditions hold), the enqueued configs first. Tune takes those configs only for keys
    its param_space has: every key any of them sets (what a config does not use, SweepSpec.active drops)."""
    from .. import warm_start

    if not spec.trial_scheduler.kind.searcher:
        from ray.tune.search import BasicVariantGenerator

        population = initial_population(spec, warm)
        keys = {k: v for p in reversed(population) for k, v in p.items()}
        return BasicVariantGenerator(points_to_evaluate=population, max_concurrent=0), keys
    from ray.tune.search.optuna import OptunaSearch

    many = len(spec.objectives) > 1  # Optuna's multi-objective samplers; the scheduler stays on the first objective
    search = OptunaSearch(
        space=spec.define_by_run, sampler=spec.make_sampler(),
        points_to_evaluate=warm_start.points(warm, spec) or None,
        metric=[o.metric for o in spec.objectives] if many else spec.metric,
        mode=[o.mode for o in spec.objectives] if many else spec.mode,
    )
    if warm is not None:
        warm_start.add_to_study(compat.optuna_study(search), warm, spec)
    return search, {}


def initial_population(spec, warm) -> list[dict]:
    import optuna

    from .. import warm_start

    first = warm_start.points(warm, spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec.sampler.seed))
    out = [{**dict(spec.fixed), **p} for p in first[:spec.trials.num_samples]]
    while len(out) < spec.trials.num_samples:
        t = study.ask()
        fixed = spec.define_by_run(t)
        out.append({**fixed, **t.params})
        study.tell(t, 0.0)
    return out


def _short_name(trial) -> str:
    return dur.trial_folder(trial.trial_id)
