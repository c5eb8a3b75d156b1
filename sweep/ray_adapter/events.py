"""Tune's per-trial callbacks as `sweep.outcome.Listener` events (our statuses, the engine's metric names), and the
stop signals (Ctrl-C, a scheduler's warning, the time limit, fail-fast) turned into Tune's interrupt with a reason."""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from ..outcome import Failure, Listener, Status, StopReason
from . import compat
from . import durability as dur
from .collect import engine_metrics, last_line

from ray import tune  # noqa: E402,I001

# The running sweep's stop reason, listener and budget. Module state, not the callback's: Tune pickles its callbacks
# into the experiment (tuner.pkl) and restores them on --resume, where the listener of this run must be used.
state: dict[str, Any] = {"reason": None, "listener": Listener(), "max_epochs": 0, "progress_read": 0.0, "active": dict}


def begin(listener: Listener | None, max_epochs: int, active=dict) -> None:
    """A new run: its listener, budget and `active` (a trial's config without the parameters it does not use)."""
    state.update(reason=None, listener=listener or Listener(), max_epochs=max_epochs, progress_read=0.0, active=active)


def request_stop(reason: StopReason) -> None:
    """Stop the running sweep as Ctrl-C does (every trial keeps its last checkpoint; Tune saves its state), for
    `reason`. Tune's loop checks its interrupt flag between steps: SIGUSR1 sets it."""
    if state["reason"] is None:
        state["reason"] = reason
    os.kill(os.getpid(), signal.SIGUSR1)


class Events(tune.Callback):
    """Also takes over the stop signals once Tune has set its own handlers, to know why it was stopped."""

    @property
    def listener(self) -> Listener:
        return state["listener"]

    def setup(self, **info):
        ray_handler = signal.getsignal(signal.SIGUSR1)  # Tune's: sets its interrupt flag

        def handler(reason):
            def on_signal(signum, frame):
                if state["reason"] is None:
                    state["reason"] = reason
                if callable(ray_handler):
                    ray_handler(signum, frame)
            return on_signal

        signal.signal(signal.SIGINT, handler(StopReason.CTRL_C))
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
            signal.signal(sig, handler(StopReason.SIGNAL))

    def on_step_begin(self, iteration, trials, **info):
        self.listener.on_tick()
        now = time.time()
        if now - state["progress_read"] >= 15:  # inside long epochs: what the trials wrote
            state["progress_read"] = now
            for trial in trials:
                if trial.status == "RUNNING":
                    seen = _progress(trial)
                    if seen:
                        self.listener.on_progress(trial.trial_id, seen)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.listener.on_start(trial.trial_id, state["active"](trial.config or {}))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.listener.on_result(trial.trial_id, engine_metrics(result))

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = engine_metrics(trial.last_result or {})
        fs, folder = compat.trial_storage(trial)
        if state["reason"] is not None and not dur.is_finished(fs, folder):
            return  # stopped by the interrupt, not finished: said once, at the end
        done = int(last.get("epoch", 0) or 0) >= state["max_epochs"]
        if not done:
            # Stopped early: it can neither be resumed nor retrained from (only a completed trial's final state is
            # reused), and its end is already durable (the scheduler ran first): its weights are dead weight.
            dur.drop_weights_keep_folders(fs, folder)
        self.listener.on_end(trial.trial_id, Status.COMPLETED if done else Status.STOPPED_EARLY, last, "")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.listener.on_end(trial.trial_id, Status.ERRORED, engine_metrics(trial.last_result or {}),
                             marked_failure(trial))


def marked_failure(trial) -> Failure:
    """What the trial wrote of its exception (ERROR_MARK); a worker lost without one: Ray's text, unclassified."""
    fs, folder = compat.trial_storage(trial)
    try:
        mark = json.loads(dur.read_file(fs, os.path.join(folder, dur.ERROR_MARK)) or "")
        return Failure(str(mark["message"])[:500], str(mark["kind"]), bool(mark["user"]))
    except (ValueError, KeyError, TypeError):
        return Failure(last_line(_error_text(trial)) or "error")


def _error_text(trial) -> str:
    """What Tune wrote of the trial's error (its error file, on the driver; Ray 2.60's Trial has no error_msg)."""
    try:
        with open(trial.error_file) as f:
            return f.read()
    except (OSError, TypeError):  # no error file (None)
        return ""


def _progress(trial) -> dict | None:
    fs, folder = compat.trial_storage(trial)
    try:
        return json.loads(dur.read_file(fs, os.path.join(folder, dur.PROGRESS_FILE)) or "")
    except ValueError:
        return None
