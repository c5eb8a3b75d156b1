"""Every Ray call lives in this package (tests/test_boundaries.py): Ray's trainable API changed four times in its own
examples, and what the rest of the sweep sees of it is this module's names and `sweep.outcome` data.

  compat.py      Ray's private names and start-up defaults, checked against the pinned Ray
  cluster.py     starting Ray or joining a cluster, its log, running the retrain where a GPU is
  trial.py       the trial function: train(config, report) on tune.report / tune.get_checkpoint
  durability.py  what each trial keeps in its folder, and where a restarted trial really was (kill -9)
  schedulers.py  a row of sweep/trial_schedulers' table built as its Ray scheduler, made durable
  events.py      Tune's callbacks as Listener events; the stop signals and their reasons
  tuner.py       the Tuner (searcher + scheduler) or the sweep restored; run_sweep
  collect.py     Tune's results as SweepRun data
  profile.py     SWEEP_PROFILE: start-up and per-trial phase times
"""
from . import compat  # noqa: F401 - first: Ray reads its environment when it is imported
from .cluster import ClusterError, call_where_gpu, cluster_resources, start, started
from .durability import read_checkpoint, set_aside, trained_anything
from .events import request_stop
from .tuner import run_sweep

__all__ = ["ClusterError", "call_where_gpu", "cluster_resources", "start", "started", "read_checkpoint",
           "set_aside", "trained_anything", "request_stop", "run_sweep", "experiment_exists", "drop_weights"]


def experiment_exists(path: str) -> bool:
    from ray import tune

    return tune.Tuner.can_restore(path)


def drop_weights(outcomes, keep: set[str]) -> None:
    """After the sweep: every trial's saved training state but `keep`'s goes (its metrics stay in the results
    files); a finished sweep needs no state to resume, and the retrain reuses only what it keeps."""
    from .durability import drop_weights as drop

    drop(((t.trial_id, t.checkpoint) for t in outcomes), keep)


def __getattr__(name: str):
    """Sweeps started when the adapter was one file pickled these names into Tune's state: --resume finds them."""
    from . import events, schedulers

    old = {"_DurableASHA": lambda: schedulers.durable("AsyncHyperBandScheduler"), "_Events": lambda: events.Events}
    if name in old:
        return old[name]()
    raise AttributeError(name)
