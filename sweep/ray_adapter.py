"""Every Ray call lives here: Ray's trainable API changed four times in its own examples.

The trial function maps the plain `train(config, report)` onto `tune.report` / `tune.get_checkpoint`; what
comes back is `sweep.outcome` data (our statuses, the engine's metric names), and per-trial events go to
`outcome.Listener`s (console, tracking, time limit), never to Ray's own integrations.
"""
from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import tempfile
import time
from typing import Any

from pyarrow.fs import FileSelector, FileType

from trainables.config import TrainConfig
from trainables.errors import DivergedError, UserError, first_line

from .outcome import Failure, Listener, Status, StopReason, SweepRun, TrialOutcome

CKPT_FILE = "state.pt"
DIVERGED_MARK = "diverged.txt"
ERROR_MARK = "error.json"  # the trial's exception, classified where it was raised: {"kind", "user", "message"}
FINISHED_MARK = "finished.txt"

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
# Tune's default loggers: its CSV and JSON records are kept (passed in run_sweep); its TensorBoard logger is not:
# tensorboardX imports torch in the driver as fit() starts (1.2 s of CPU before the first trial's worker is asked
# for, measured), and trials are compared in wandb and the results folder.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.execution import class_cache as _tune_class_cache  # noqa: E402
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback  # noqa: E402
from ray.tune.result import AUTO_RESULT_KEYS  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402

if os.environ["RAY_USAGE_STATS_ENABLED"] == "0":
    # Tune.fit counts the callbacks for those statistics by importing the wandb, MLflow, Comet and Aim
    # integrations to compare classes (0.6 s of the start-up, measured), then records nothing when they are off.
    from ray.air._internal import usage as _air_usage

    if hasattr(_air_usage, "tag_callbacks"):
        _air_usage.tag_callbacks = lambda callbacks: False

# Tune gives its trial actors a runtime env of their own ({"env_vars": {"PL_DISABLE_FORK": "1"}}, for PyTorch
# Lightning, which nothing here uses). Ray hands the idle workers it starts with itself only to tasks and actors
# whose env is empty, so each first trial waited for a new process to boot: 0.5 s of the start-up (BENCHMARKS.md).
getattr(_tune_class_cache, "DEFAULT_ENV_VARS", {}).pop("PL_DISABLE_FORK", None)

# What Tune adds to every result: dropped at the boundary, so no Ray name reaches results files or trackers.
_RAY_KEYS = frozenset(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint",
                                          "iterations_since_restore", "checkpoint_dir_name"}


class ClusterError(UserError):
    pass


def start(address: str | None, num_cpus: int | None = None, runtime_env: dict | None = None,
          log_dir: str | None = None) -> dict:
    """Start local Ray (the default) or join a cluster; returns the cluster's total resources. Ray's and
    Optuna's own log lines go to log_dir/ray.log, not the console."""
    if ray.is_initialized():
        if log_dir:
            _log_to_file(os.path.join(log_dir, "ray.log"))
        return cluster_resources()
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                              configure_logging=not log_dir)
    sigterm = signal.getsignal(signal.SIGTERM)
    if log_dir:  # ray.init clears the "ray" logger's handlers; what it logs while starting goes there through this
        _log_to_file(os.path.join(log_dir, "ray.log"), roots=("ray._private", "optuna"))
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"--address {address!r}: could not connect to a Ray cluster ({exc})") from None
    finally:
        # ray.init sets SIGTERM to sys.exit(15): a scheduler's TERM would end the driver with status 15 instead of
        # stopping resumably (exit 75). The handler the caller had stays.
        if sigterm is not None and signal.getsignal(signal.SIGTERM) is not sigterm:
            try:
                signal.signal(signal.SIGTERM, sigterm)
            except ValueError:  # not the main thread (pipeline starts Ray in the background): Ray set nothing
                pass
    if log_dir:  # after ray.init, which resets the "ray" logger's handlers
        _log_to_file(os.path.join(log_dir, "ray.log"))
    _profile("ray_started")
    return cluster_resources()


def started() -> bool:
    return ray.is_initialized()


def _log_to_file(path: str, roots=("ray", "optuna")) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    children = [n for n in logging.root.manager.loggerDict if n.startswith(("ray.", "optuna."))]
    for name in [*children, *roots]:  # e.g. ray.tune's own console handler: its lines reach the file through "ray"
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
            if isinstance(h, logging.FileHandler):  # ours, from the call before ray.init
                h.close()
        lg.propagate = True
    for name in roots:
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    import optuna

    optuna.logging.disable_default_handler()


def call_where_gpu(fn, *args, **kwargs):
    """fn(*args, **kwargs) where a GPU is: here when this process has one (or the cluster has none), else as a
    Ray task holding one GPU (a cluster whose head node has no GPU: the retrain must not run on its CPU).
    Exceptions come back as fn raised them; Ctrl-C here cancels the task."""
    import torch

    if torch.cuda.is_available() or not ray.is_initialized() or cluster_resources()["gpu"] < 1:
        return fn(*args, **kwargs)
    ref = ray.remote(num_gpus=1, max_retries=0)(fn).remote(*args, **kwargs)
    done = False
    try:
        result = ray.get(ref)
        done = True
        return result
    except ray.exceptions.RayTaskError as exc:
        done = True
        raise exc.cause from None
    finally:
        if not done:
            ray.cancel(ref, force=True)


def cluster_resources() -> dict:
    res = ray.cluster_resources()
    return {"cpu": float(res.get("CPU", 0)), "gpu": float(res.get("GPU", 0)), "nodes": len(ray.nodes())}


def _load_state(checkpoint) -> dict | None:
    if checkpoint is None:
        return None
    import torch

    with checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, CKPT_FILE), map_location="cpu", weights_only=True)


def read_checkpoint(path: str) -> dict:
    """A trial's saved training state, from local or shared storage (or a cloud URI)."""
    return _load_state(tune.Checkpoint(path))


def _profile(event: str, **kw) -> None:
    """SWEEP_PROFILE=FILE: one JSON line per phase of the start-up and of each trial (bench/bench_overhead.py)."""
    path = os.environ.get("SWEEP_PROFILE")
    if path:
        import json

        kw.setdefault("process_started", _process_started())

        with open(path, "a") as f:
            f.write(json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **kw}) + "\n")


def _process_started() -> float | None:
    """When this process was created (Linux: /proc), as a time.time() value, to 0.01 s."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time, clock ticks after boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def _trial(config: dict, data=None, extra_val=None, checkpoint_every: int = 1) -> None:
    _profile("trial_called")  # the worker process has imported Ray, Tune and this module
    import torch

    from trainables.engine import train

    _profile("trial_start")
    fs, mark = _diverged_mark()
    if fs.get_file_info(mark).type != FileType.NotFound:  # a retry would diverge again: fail at once, same reason
        with fs.open_input_stream(mark) as f:
            raise DivergedError(**_read_mark(f.read().decode()))  # (its ERROR_MARK stands from the first attempt)
    error_mark = os.path.join(os.path.dirname(mark), ERROR_MARK)
    if fs.get_file_info(error_mark).type != FileType.NotFound:  # an earlier attempt's: this one writes its own
        fs.delete_file(error_mark)
    cfg = TrainConfig.from_dict(config)
    if not cfg.threads:  # as many threads as CPUs this trial holds: concurrent trials must not oversubscribe
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))

    def report(metrics: dict, state: dict) -> None:
        # Peak memory of this trial's process (Linux: KiB), so trials.csv shows what each one needs.
        metrics = {**metrics, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "ended_at": time.time()}
        t0 = t1 = time.time()
        epoch = int(metrics.get("epoch", 0))
        if epoch % checkpoint_every and epoch < cfg.epochs:
            tune.report(metrics)  # trials.checkpoint_every: a kill costs this trial the epochs since its last save
        else:
            with tempfile.TemporaryDirectory() as d:
                torch.save(state, os.path.join(d, CKPT_FILE))
                t1 = time.time()
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        _profile("report", epoch=metrics.get("epoch"), save_s=t1 - t0, report_s=time.time() - t1,
                 epoch_s=metrics.get("epoch_time_s"))

    try:
        state, finished = _catch_up(tune.get_checkpoint(), report)
        _profile("train_start")
        if not finished:
            train(cfg, report, checkpoint=state, data=data, extra_val=extra_val, progress=_progress_file(fs))
        _profile("trial_end")
    except DivergedError as exc:
        _write_mark(fs, mark, f"{exc.epoch} {exc.step} {exc.loss}")
        _write_mark(fs, error_mark, _error_mark(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - classified for the driver (sweep/fail_fast.py), then raised as it is
        _write_mark(fs, error_mark, _error_mark(exc))
        raise


PROGRESS_FILE = "progress.json"


def _progress_file(fs, every_s: float = 10.0):
    """The engine's per-step hook: every `every_s` the step reached in this epoch, in the trial's folder, so the
    driver can show progress inside a long epoch (a part-3 epoch on a CPU runs for many minutes)."""
    import json

    path = os.path.join(tune.get_context().get_storage().trial_fs_path, PROGRESS_FILE)

    def wrap(steps, epoch):
        last, total = time.time(), len(steps)
        for step in steps:
            yield step
            if time.time() - last >= every_s:
                last = time.time()
                _write_mark(fs, path, json.dumps({"epoch": epoch, "step": step + 1, "steps": total, "t": last}))

    return wrap


def _diverged_mark():
    """(filesystem, path) of the diverged mark: in the trial's folder in the sweep's storage, which every retry
    of the trial sees, on any node. (get_trial_dir() is node-local, and not even the same folder for a fresh
    and a reused actor: a retry looked in the other one and trained on.)"""
    storage = tune.get_context().get_storage()
    storage.storage_filesystem.create_dir(storage.trial_fs_path, recursive=True)
    return storage.storage_filesystem, os.path.join(storage.trial_fs_path, DIVERGED_MARK)


def _catch_up(checkpoint, report) -> tuple[dict | None, bool]:
    """(state to continue from, whether the trial had already finished), from the trial's folder, not just Ray.

    After a kill -9, Ray restores a trial from the checkpoint its experiment state knew of, and that state
    lags the trial's folder (Ray syncs it every few checkpoints, or 300 s): a trial that had finished, or that
    ASHA had stopped, would train on. The epochs a newer checkpoint holds are reported from its saved metrics
    instead (one cut short by the kill does not load: the one before it is used), and a trial with a
    FINISHED_MARK stops there.
    """
    storage = tune.get_context().get_storage()
    fs, folder = storage.storage_filesystem, storage.trial_fs_path
    infos = fs.get_file_info(FileSelector(folder, allow_not_found=True))
    names = sorted((i.base_name for i in infos if i.type == FileType.Directory
                    and i.base_name.startswith("checkpoint_")), reverse=True)
    finished = None
    if any(i.base_name == FINISHED_MARK for i in infos):
        with fs.open_input_stream(os.path.join(folder, FINISHED_MARK)) as f:
            finished = int(f.read().decode())
    given = os.path.basename(checkpoint.path.rstrip("/")) if checkpoint is not None else None
    try:
        state = _load_state(checkpoint)
    except Exception:  # noqa: BLE001 - deleted as a newer one arrived, just before the kill: take the newest
        state, given = None, None
    done = state["epoch"] if state else 0
    for name in names:
        if name == given:
            break
        try:
            newer = _load_state(tune.Checkpoint(os.path.join(folder, name), filesystem=fs))
        except Exception:  # noqa: BLE001 - whatever the failure, it is not a complete checkpoint
            continue
        if finished is not None and newer["epoch"] > finished:
            continue
        missed = newer["history"][done:newer["epoch"]]
        if not missed:
            break
        for metrics in missed[:-1]:
            tune.report(metrics)
        report(missed[-1], newer)
        return newer, finished is not None
    if state is not None and state.get("stand_in"):  # nothing newer could be read after all: start over
        state = None
    return state, finished is not None


class _DurableASHA(ASHAScheduler):
    """ASHA that makes a trial's end durable before anyone is told of it (Tune tells the scheduler first, then
    the searcher, then the callbacks that print it). Tune's own record of a finished trial reaches the results
    folder at its next save: after a kill -9 a trial restored from the older record would train on, or one
    it never recorded would be lost. So: a FINISHED_MARK (the epochs done) in the trial's folder, then Tune's
    experiment state saved and synced, waiting for it."""

    def on_trial_complete(self, tune_controller, trial, result):
        super().on_trial_complete(tune_controller, trial, result)
        fs, folder = trial.storage.storage_filesystem, trial.storage.trial_fs_path
        fs.create_dir(folder, recursive=True)
        _write_mark(fs, os.path.join(folder, FINISHED_MARK), str(int((result or {}).get("training_iteration", 0))))
        tune_controller.checkpoint(force=True, wait=True)


def _write_mark(fs, path: str, data: str | bytes) -> None:
    """Temp name, then rename: a kill mid-write never leaves half a file (which would not parse)."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with fs.open_output_stream(tmp) as f:
        f.write(data.encode() if isinstance(data, str) else data)
    fs.move(tmp, path)


def _drop_checkpoints(fs, trial_dir: str) -> None:
    for info in fs.get_file_info(FileSelector(trial_dir, allow_not_found=True)):
        if info.type == FileType.Directory and info.base_name.startswith("checkpoint_"):
            fs.delete_dir(info.path)


def _drop_weights_keep_folders(fs, trial_dir: str) -> None:
    """A trial ASHA stopped: each checkpoint's weights go, its folder and its epochs' metrics stay. Tune's last
    saved record of the trial (_DurableASHA's, taken before Tune marks it terminated) names that checkpoint as
    the state to restore it from: deleted, a kill -9 before Tune's next save (at the next epoch of any trial:
    seconds to minutes) made --resume fail to restore it ("does not exist on storage anymore"), ending it
    errored (measured with bench/kill_resume.py). Kept weightless, it restores, _catch_up sees the finished
    mark and trains nothing, and _complete_history still finds its epochs."""
    import io

    import torch

    for info in fs.get_file_info(FileSelector(trial_dir, allow_not_found=True)):
        if info.type != FileType.Directory or not info.base_name.startswith("checkpoint_"):
            continue
        try:
            state = _load_state(tune.Checkpoint(info.path, filesystem=fs))
        except Exception:  # noqa: BLE001 - cut short by an earlier kill: nothing in it worth keeping
            fs.delete_dir_contents(info.path)
            continue
        buf = io.BytesIO()
        torch.save({k: state[k] for k in ("epoch", "history", "stand_in") if k in state}, buf)
        _write_mark(fs, os.path.join(info.path, CKPT_FILE), buf.getvalue())


def _failure(exc: BaseException | None, text: str = "") -> Failure:
    """Ray's wrapped exception as our Failure: the original exception's class (RayTaskError keeps it as `cause`)
    and whether it is the user's mistake, decided by its type, never by its text."""
    while exc is not None and getattr(exc, "cause", None) is not None and exc.cause is not exc:
        exc = exc.cause
    if exc is None:
        return Failure(_last_line(text) or "error")
    return Failure(first_line(exc)[:500], type(exc).__name__, isinstance(exc, UserError))


def _error_mark(exc: BaseException) -> str:
    import json

    return json.dumps({"kind": type(exc).__name__, "user": isinstance(exc, UserError), "message": first_line(exc)})


def _marked_failure(trial, text: str) -> Failure:
    """What the trial wrote of its exception (ERROR_MARK); a worker lost without one: Ray's text, unclassified."""
    import json

    fs, path = trial.storage.storage_filesystem, os.path.join(trial.storage.trial_fs_path, ERROR_MARK)
    try:
        with fs.open_input_stream(path) as f:
            mark = json.loads(f.read().decode())
        return Failure(str(mark["message"])[:500], str(mark["kind"]), bool(mark["user"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Failure(_last_line(text) or "error")


def _error_text(trial) -> str:
    """What Tune wrote of the trial's error (its error file, on the driver): the text its last line is taken from."""
    try:
        with open(trial.error_file) as f:
            return f.read()
    except (OSError, TypeError):  # no error file (None)
        return ""


def drop_weights(outcomes, keep: set[str]) -> None:
    """After the sweep: every trial's saved training state but `keep`'s goes (its metrics stay in the results
    files); a finished sweep needs no state to resume, and the retrain reuses only the best trial's."""
    from pyarrow.fs import FileSystem, LocalFileSystem

    for t in outcomes:
        if t.trial_id in keep or not t.checkpoint:
            continue
        trial_dir = os.path.dirname(t.checkpoint.rstrip("/"))
        fs, path = FileSystem.from_uri(trial_dir) if "://" in trial_dir else (LocalFileSystem(), trial_dir)
        _drop_checkpoints(fs, path)


def _stand_in_for_deleted_checkpoints(exp_path: str) -> None:
    """Tune deletes a trial's previous checkpoint the moment it registers a new one, and saves its experiment
    state (which names the checkpoint to restore from) a moment later: killed in between, the state names a
    deleted checkpoint, Ray refuses to restore the trial and it ends `errored`, finished or not (measured with
    bench/kill_resume.py). With num_to_keep=1 that can only be the one before the newest: put a stand-in there
    holding the epochs it had, so the trial restores and _catch_up replays the newest from its saved metrics."""
    import io

    import torch
    from pyarrow.fs import FileSystem, LocalFileSystem

    fs, root = FileSystem.from_uri(exp_path) if "://" in exp_path else (LocalFileSystem(), exp_path)
    for trial in fs.get_file_info(FileSelector(root, allow_not_found=True)):
        if trial.type != FileType.Directory or not trial.base_name.startswith("trial_"):
            continue
        names = {i.base_name for i in fs.get_file_info(FileSelector(trial.path))
                 if i.type == FileType.Directory and i.base_name.startswith("checkpoint_")}
        if not names:
            continue
        newest = max(names)
        before = f"checkpoint_{int(newest.removeprefix('checkpoint_')) - 1:06d}"
        if before in names or before.endswith("-00001"):
            continue
        try:
            state = _load_state(tune.Checkpoint(os.path.join(trial.path, newest), filesystem=fs))
        except Exception:  # noqa: BLE001 - cut short by the kill: Ray restores from an earlier one, which exists
            continue
        buf = io.BytesIO()
        torch.save({"epoch": state["epoch"] - 1, "history": state["history"][:state["epoch"] - 1],
                    "stand_in": True}, buf)
        fs.create_dir(os.path.join(trial.path, before))
        _write_mark(fs, os.path.join(trial.path, before, CKPT_FILE), buf.getvalue())


def _read_mark(text: str) -> dict:
    epoch, step, loss = text.split()
    return {"epoch": int(epoch), "step": int(step), "loss": float(loss)}


def experiment_exists(path: str) -> bool:
    return tune.Tuner.can_restore(path)


def _fs(path: str):
    from pyarrow.fs import FileSystem, LocalFileSystem

    return FileSystem.from_uri(path) if "://" in path else (LocalFileSystem(), path)


def trained_anything(exp_path: str) -> bool:
    """Whether any trial of the experiment finished an epoch: a checkpoint, or a result Tune logged."""
    fs, root = _fs(exp_path)
    for trial in fs.get_file_info(FileSelector(root, allow_not_found=True)):
        if trial.type != FileType.Directory or not trial.base_name.startswith("trial_"):
            continue
        for info in fs.get_file_info(FileSelector(trial.path)):
            if info.base_name.startswith("checkpoint_") or (info.base_name == "result.json" and info.size):
                return True
    return False


def set_aside(exp_path: str) -> str:
    """Move an experiment's state away (its trials' error files stay readable); returns where it went."""
    fs, root = _fs(exp_path)
    dest = f"{root.rstrip('/')}.before-{time.strftime('%Y%m%d-%H%M%S')}"
    fs.move(root, dest)
    return dest


_stop = {"reason": None}
# The running sweep's listener and budget. Module state, not the callback's: Tune pickles its callbacks into
# the experiment (tuner.pkl) and restores them on --resume, where the listener of this run must be used.
_current: dict[str, Any] = {"listener": Listener(), "max_epochs": 0}


def request_stop(reason: StopReason) -> None:
    """Stop the running sweep as Ctrl-C does (every trial keeps its last checkpoint; Tune saves its state), for
    `reason`. Tune's loop checks its interrupt flag between steps: SIGUSR1 sets it."""
    if _stop["reason"] is None:
        _stop["reason"] = reason
    os.kill(os.getpid(), signal.SIGUSR1)


class _Events(tune.Callback):
    """Tune's callbacks, turned into Listener events (our statuses, the engine's metric names). Also takes over
    the stop signals once Tune has set its own handlers, to know why it was stopped: Ctrl-C, or a scheduler."""

    @property
    def listener(self) -> Listener:
        return _current["listener"]

    def setup(self, **info):
        ray_handler = signal.getsignal(signal.SIGUSR1)  # Tune's: sets its interrupt flag

        def handler(reason):
            def on_signal(signum, frame):
                if _stop["reason"] is None:
                    _stop["reason"] = reason
                if callable(ray_handler):
                    ray_handler(signum, frame)
            return on_signal

        signal.signal(signal.SIGINT, handler(StopReason.CTRL_C))
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
            signal.signal(sig, handler(StopReason.SIGNAL))

    def on_step_begin(self, iteration, trials, **info):
        self.listener.on_tick()
        now = time.time()
        if now - _current.get("progress_read", 0) >= 15:  # inside long epochs: what the trials wrote
            _current["progress_read"] = now
            for trial in trials:
                if trial.status == "RUNNING":
                    seen = _read_progress(trial)
                    if seen:
                        self.listener.on_progress(trial.trial_id, seen)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.listener.on_start(trial.trial_id, dict(trial.config or {}))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.listener.on_result(trial.trial_id, _engine(result))

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = _engine(trial.last_result or {})
        if _stop["reason"] is not None and not _finished_mark(trial.storage.storage_filesystem,
                                                               trial.storage.trial_fs_path):
            return  # stopped by the interrupt, not finished: said once, at the end
        done = int(last.get("epoch", 0) or 0) >= _current["max_epochs"]
        if not done:
            # Stopped by ASHA: it can neither be resumed nor retrained from (only a completed trial's final state
            # is reused), and its end is already durable (_DurableASHA ran first): its weights are dead weight.
            _drop_weights_keep_folders(trial.storage.storage_filesystem, trial.storage.trial_fs_path)
        self.listener.on_end(trial.trial_id, Status.COMPLETED if done else Status.STOPPED_EARLY, last, "")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.listener.on_end(trial.trial_id, Status.ERRORED, _engine(trial.last_result or {}),
                             _marked_failure(trial, _error_text(trial)))  # Ray 2.60's Trial has no error_msg


def _read_progress(trial) -> dict | None:
    import json

    fs, path = trial.storage.storage_filesystem, os.path.join(trial.storage.trial_fs_path, PROGRESS_FILE)
    try:
        with fs.open_input_stream(path) as f:
            return json.loads(f.read().decode())
    except (OSError, ValueError):
        return None


def run_sweep(spec, *, storage_path: str, data=None, extra_val=None, resume: bool = False,
              listener: Listener | None = None, warm=None) -> SweepRun:
    """Run (or continue) the sweep; returns its trials as plain data. Stopped early by Ctrl-C, request_stop or
    a scheduler's signal: the trials not finished come back INTERRUPTED and `stop_reason` says why.
    `warm` (sweep.warm_start.WarmStart): earlier trials told to the sampler, its best configs run first; a
    restored sweep's searcher state already holds them."""
    from ray.tune.search.optuna import OptunaSearch

    _current.update(listener=listener or Listener(), max_epochs=spec.epochs)
    _stop["reason"] = None
    res = spec.resources
    trainable = tune.with_resources(
        tune.with_parameters(_trial, data=data, extra_val=extra_val,
                             checkpoint_every=getattr(spec.trials, "checkpoint_every", 1)),
        {"cpu": res.cpu, "gpu": res.gpu}
    )
    exp_path = os.path.join(storage_path, spec.name)
    if resume:
        _stand_in_for_deleted_checkpoints(exp_path)
        tuner = tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        from . import warm_start

        many = len(spec.objectives) > 1  # Optuna's multi-objective samplers; ASHA stays on the first objective
        search = OptunaSearch(
            space=spec.define_by_run, sampler=spec.make_sampler(),
            points_to_evaluate=warm_start.points(warm, spec) or None,
            metric=[o.metric for o in spec.objectives] if many else spec.metric,
            mode=[o.mode for o in spec.objectives] if many else spec.mode,
        )
        if warm is not None:
            # OptunaSearch's evaluated_rewards refuses a define-by-run space (Ray 2.60); its study, made in
            # __init__ because the space is given, takes finished trials directly.
            warm_start.add_to_study(search._ot_study, warm, spec)
        asha = _DurableASHA(
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
                name=spec.name, storage_path=storage_path, verbose=0,
                callbacks=[_Events(), CSVLoggerCallback(), JsonLoggerCallback()],
                # 1, not more: Tune saves and syncs its experiment state to the results folder after every
                # num_to_keep checkpoints of a trial (else every >= 10 s), so after each epoch of any trial a
                # kill -9 loses nothing Tune knew. (_catch_up covers the moment between the two.)
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=spec.trials.max_failures),
            ),
        )
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)}
    try:
        _profile("tune_fit", torch_loaded="torch" in sys.modules)  # the driver leaves the CPU to Ray and the trials
        grid = tuner.fit()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    run = _collect(grid, spec.epochs, exp_path)
    if run.interrupted and _stop["reason"] is None:
        _stop["reason"] = StopReason.CTRL_C
    run.stop_reason = str(_stop["reason"]) if run.interrupted or _stop["reason"] else ""
    return run


def _short_name(trial) -> str:
    return f"trial_{trial.trial_id}"


def _engine(result: dict) -> dict:
    return {k: v for k, v in (result or {}).items() if k not in _RAY_KEYS and k != "config"}


def _finished_mark(fs, folder: str) -> bool:
    return fs.get_file_info(os.path.join(folder, FINISHED_MARK)).type != FileType.NotFound


def _collect(grid, max_epochs: int, exp_path: str) -> SweepRun:
    trials = []
    for result in grid:
        raw = dict(result.metrics or {})
        tid = raw.get("trial_id") or os.path.basename(result.path).removeprefix("trial_")
        df = result.metrics_dataframe
        hist = [] if df is None else df.to_dict("records")
        epochs = int(raw.get("training_iteration", len(hist)) or 0)
        hist = _one_row_per_epoch([_engine(h) for h in _complete_history(hist, epochs, result.checkpoint)])
        # Ctrl-C makes fit() return normally, the trials it stopped marked TERMINATED like finished ones. A
        # finished trial has a FINISHED_MARK (or, from before marks, `done`; a restored trial that ended
        # without a new result keeps `done` False, so `done` alone is not enough).
        finished = _finished_mark(result.filesystem, result.path) or bool(raw.get("done"))
        error, failure = "", None
        if result.error is not None and not _is_interrupt(result.error):
            failure = _failure(result.error, str(result.error))
            status, error = Status.ERRORED, failure.message
        elif not finished:
            status = Status.INTERRUPTED
        elif epochs >= max_epochs:
            status = Status.COMPLETED
        else:
            status = Status.STOPPED_EARLY
        trials.append(TrialOutcome(
            trial_id=tid, status=status, config=dict(result.config or {}), metrics=_engine(raw), history=hist,
            checkpoint=result.checkpoint.path if result.checkpoint is not None else None,
            wall_s=float(raw.get("time_total_s", 0.0) or 0.0), error=error, failure=failure))
    return SweepRun(trials, exp_path)


def _one_row_per_epoch(hist: list[dict]) -> list[dict]:
    """A trial restored from the checkpoint of its last epoch (after a stop) has that epoch twice in Tune's
    result log, copies of one another (measured under real SLURM: the last finished epoch of each trial in
    flight at a time-limit stop). The later row stands: an epoch trained again would differ, and be seen."""
    rows: dict = {}
    for h in hist:
        rows[h.get("epoch")] = h
    return [rows[e] for e in sorted(rows, key=lambda e: (e is None, e or 0))]


def _is_interrupt(err: BaseException) -> bool:
    """A trial whose worker got the Ctrl-C itself (a terminal sends it to the whole process group) errors with
    the KeyboardInterrupt Ray wrapped: interrupted, not failed."""
    seen = err
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt) or isinstance(getattr(seen, "cause", None), KeyboardInterrupt):
            return True
        seen = seen.__cause__
    return "KeyboardInterrupt" in str(err)


def _complete_history(hist: list[dict], epochs: int, checkpoint) -> list[dict]:
    """Ray's result.json of a retried trial can lose epochs (its logger copies back the storage's copy, which
    lags); the trial's own last checkpoint holds every epoch's metrics: fill the gaps from there."""
    if len({h.get("training_iteration") for h in hist}) >= epochs or checkpoint is None:
        return hist
    try:
        saved = _load_state(checkpoint)["history"]
    except Exception:  # noqa: BLE001 - keep what Ray has
        return hist
    ray_rows = {h.get("training_iteration"): h for h in hist}
    return [ray_rows.get(m["epoch"], {**m, "training_iteration": m["epoch"]}) for m in saved[:epochs]]


def _last_line(text: str) -> str:
    # Ray wraps the trial's exception in a RayTaskError whose last line is the original message.
    for line in reversed(text.strip().splitlines()):
        if line.strip():
            return line.strip()[:500]
    return ""
