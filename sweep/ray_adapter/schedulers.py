"""A row of sweep/trial_schedulers' table, built as the Ray Tune scheduler it names, made durable.

Whatever the scheduler, a trial's end is made durable before anyone is told of it (Tune tells the scheduler first,
then the searcher, then the callbacks that print it): a FINISHED_MARK in the trial's folder, then Tune's experiment
state saved and synced. Tune's own record of a finished trial reaches the results folder only at its next save:
after a kill -9 a trial restored from the older record would train on, or one it never recorded would be lost.
A result whose metric is not a number (NaN, inf) stops that trial alone: no scheduler's statistics see it.
Under PBT, a trial given another's weights and config is saved in Tune's state at once, so a kill -9 cannot undo
half an exploit.
"""
from __future__ import annotations

import importlib
import math

from . import compat
from . import durability as dur

from ray.tune import schedulers as ray_schedulers  # noqa: E402,I001
from ray.tune.schedulers import TrialScheduler  # noqa: E402


class _Durable:
    sweep_metric = ""  # what the sweep ranks by (the first objective)
    exploits = False

    def on_trial_result(self, tune_controller, trial, result):
        value = result.get(self.sweep_metric)
        if value is not None and not _finite(value):
            return TrialScheduler.STOP
        if not self.exploits:
            return super().on_trial_result(tune_controller, trial, result)
        before = {t.trial_id: dict(t.config) for t in tune_controller.get_trials()}
        action = super().on_trial_result(tune_controller, trial, result)
        if any(t.config != before.get(t.trial_id) for t in tune_controller.get_trials()):
            compat.save_experiment_now(tune_controller)  # an exploit: the new config and checkpoint, durable now
        return action

    def on_trial_complete(self, tune_controller, trial, result):
        super().on_trial_complete(tune_controller, trial, result)
        _ended(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        """A paused trial the scheduler ends (HyperBand's bracket done): its end, too."""
        super().on_trial_remove(tune_controller, trial)
        _ended(tune_controller, trial, trial.last_result)


def _ended(tune_controller, trial, result) -> None:
    fs, folder = compat.trial_storage(trial)
    dur.mark_finished(fs, folder, (result or {}).get("training_iteration", 0))
    compat.save_experiment_now(tune_controller)


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number at all: the scheduler's own business


def durable(ray_class: str) -> type:
    """The Ray scheduler class `ray_class`, made durable; one class per name, reachable as this module's attribute
    `Durable<ray_class>` so that Tune can pickle the scheduler into its experiment state and --resume unpickle it."""
    cls = globals().get(f"Durable{ray_class.rpartition('.')[2]}")
    if cls is None:
        module, _, name = ray_class.rpartition(".")  # "pb2.PB2": a submodule Ray does not import by itself
        try:
            base = getattr(importlib.import_module(f"ray.tune.schedulers.{module}") if module else ray_schedulers,
                           name, None)
        except ImportError:
            base = None
        if base is None:
            raise compat.RayChanged(f"ray.tune.schedulers has no {ray_class}: the trial scheduler table names it")
        cls = type(f"Durable{name}", (_Durable, base), {"__module__": __name__})
        globals()[cls.__name__] = cls
    return cls


def __getattr__(name: str):  # unpickling (--resume) asks for the class before anything built it in this process
    if name.startswith("Durable"):
        wanted = name.removeprefix("Durable")
        from ..trial_schedulers import SCHEDULERS

        return durable(next((k.ray for k in SCHEDULERS.values() if k.ray.rpartition(".")[2] == wanted), wanted))
    raise AttributeError(name)


def build(trial_scheduler, context, metric: str, mode: str):
    """The Ray scheduler of a `TrialScheduler` (its row's class and arguments), durable."""
    kind = trial_scheduler.kind
    arguments = trial_scheduler.arguments(context)
    if kind.ray != "FIFOScheduler":  # FIFO takes no metric: it decides nothing
        arguments = dict(metric=metric, mode=mode, time_attr="training_iteration", **arguments)
    scheduler = durable(kind.ray)(**arguments)
    scheduler.sweep_metric, scheduler.exploits = metric, kind.exploits
    return scheduler
