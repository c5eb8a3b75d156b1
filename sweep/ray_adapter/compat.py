"""Ray's private names, in one place, checked against the Ray this project pins (setup.cfg).

Ray's trainable API changed four times in its own examples, and the sweep leans on a few things Ray does not
promise: where Tune keeps a trial's files, how to make it save its experiment state now, which keys it adds to a
result, and three start-up costs it pays by default. When an upgrade moves one of them, this module fails at
import with one line naming it, not a trial deep in a sweep. Imported before anything else of Ray (the environment
is read by Ray at import).
"""
from __future__ import annotations

import os

PINNED = "2.60"

# Per-epoch checkpoints trip a warning meant for sub-second reporting loops.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Tune's own console output (configuration box, TensorBoard hint, status tables) is replaced by sweep/console.py;
# verbose=0 silences only the old output engine.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# A local Ray bound to 127.0.0.1 needs no token (it is the only one on this machine that can talk to it); Ray
# prints a warning about the token on every start otherwise.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Ray's usage statistics go to Ray's servers: off unless the user turns them on (RAY_USAGE_STATS_ENABLED=1).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tune's default loggers: its CSV and JSON records are kept (passed in tuner.py); its TensorBoard logger is not:
# tensorboardX imports torch in the driver as fit() starts (1.2 s of CPU before the first trial's worker is asked
# for, measured), and trials are compared in wandb and the results folder.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

import ray  # noqa: E402


class RayChanged(RuntimeError):
    pass


def _need(what: str, get):
    try:
        return get()
    except (ImportError, AttributeError, KeyError) as exc:
        raise RayChanged(f"Ray {ray.__version__} has no {what} ({type(exc).__name__}: {exc}); this project is "
                         f"built on Ray {PINNED}.x (setup.cfg pins it): pip install -e . puts it back") from None


def _import(module: str):
    import importlib

    return importlib.import_module(module)


AUTO_RESULT_KEYS = _need("ray.tune.result.AUTO_RESULT_KEYS", lambda: _import("ray.tune.result").AUTO_RESULT_KEYS)
_class_cache = _need("ray.tune.execution.class_cache", lambda: _import("ray.tune.execution.class_cache"))
_air_usage = _need("ray.air._internal.usage", lambda: _import("ray.air._internal.usage"))

if os.environ["RAY_USAGE_STATS_ENABLED"] == "0":
    # Tune.fit counts the callbacks for those statistics by importing the wandb, MLflow, Comet and Aim
    # integrations to compare classes (0.6 s of the start-up, measured), then records nothing when they are off.
    _need("ray.air._internal.usage.tag_callbacks", lambda: _air_usage.tag_callbacks)
    _air_usage.tag_callbacks = lambda callbacks: False

# Tune gives its trial actors a runtime env of their own ({"env_vars": {"PL_DISABLE_FORK": "1"}}, for PyTorch
# Lightning, which nothing here uses). Ray hands the idle workers it starts with itself only to tasks and actors
# whose env is empty, so each first trial waited for a new process to boot: 0.5 s of the start-up (BENCHMARKS.md).
_need("class_cache.DEFAULT_ENV_VARS", lambda: _class_cache.DEFAULT_ENV_VARS).pop("PL_DISABLE_FORK", None)


def trial_storage(trial) -> tuple:
    """(filesystem, folder) of a trial in the sweep's storage, seen from the driver (any node's trial writes there)."""
    return trial.storage.storage_filesystem, trial.storage.trial_fs_path


def storage_here() -> tuple:
    """The same, from inside the running trial (its own folder)."""
    from ray import tune

    storage = tune.get_context().get_storage()
    return storage.storage_filesystem, storage.trial_fs_path


def skip_taken_checkpoint_names(taken) -> None:
    """Tune names a trial's checkpoints by its own count of them, which reaches its saved state only every few seconds
    and is handed to a restored worker from there: after a kill or a PBT pause the next one would be copied, file by
    file, onto a folder saved earlier (the state a replay continues from, or the one PBT is cloning into another
    trial; measured), and a kill mid-copy would leave neither. The worker's count moves past every name
    `taken(fs, path)` (Tune counts one up, then copies)."""
    from ray import tune

    storage = tune.get_context().get_storage()
    storage.current_checkpoint_index += 1
    while taken(storage.storage_filesystem, storage.checkpoint_fs_path):
        storage.current_checkpoint_index += 1
    storage.current_checkpoint_index -= 1


def save_experiment_now(tune_controller) -> None:
    """Tune's experiment state saved and synced to the results folder, waiting for it (Tune saves it every few
    checkpoints or seconds on its own)."""
    tune_controller.checkpoint(force=True, wait=True)


def optuna_study(search):
    """OptunaSearch's study (made in its __init__ when a define-by-run space is given): finished trials of an earlier
    sweep are added to it directly, since its evaluated_rewards refuses a define-by-run space."""
    return search._ot_study
