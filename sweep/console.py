"""What the user sees while trials run: one line per trial event, and every `every_s` seconds a status line with
the metric being optimised, the best so far and the time left (sweep/eta.py: each config's measured cost, the trials
running and queued)."""
from __future__ import annotations

import math
import time

from .eta import Eta
from .outcome import Listener, Status
from .plan import Plan, Wall, duration


def say(msg: str) -> None:
    print(f"[sweep] {msg}", flush=True)


def fmt(metric: str, value) -> str:
    """Accuracies in percent (one unit everywhere), losses and the rest as numbers."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return str(v)
    return f"{100 * v:.1f}%" if metric.endswith("_acc") else f"{v:.4g}"


STOPPERS = {"asha": "ASHA", "hyperband": "HyperBand", "median": "median stopping", "pbt": "PBT", "pb2": "PB2"}


class Console(Listener):
    def __init__(self, metric: str, mode: str, plan: Plan, params: list[str], every_s: float = 30.0,
                 done: int = 0, clock=time.time, job_s: float | None = None, stopper: str = "asha",
                 eta: Eta | None = None):
        self.metric, self.mode, self.plan, self.params = metric, mode, plan, params
        self.eta = eta or Eta(plan, done=done)  # the plan line after the first epoch and the status line use it
        self.stopper = STOPPERS.get(stopper, stopper)  # who stops trials early, as the console names it
        self.every_s, self.clock, self.job_s = every_s, clock, job_s
        self.t0 = self.last_status = clock()
        self.started: dict[str, float] = {}
        self.epochs: dict[str, int] = {}
        self.ended = done  # trials that ended before this run (resume)
        self.best: tuple[float, str] | None = None
        self.planned = False
        self.last_said: dict[str, float] = {}  # trial -> when the console last spoke of it
        self.epoch_began: dict[str, float] = {}  # trial -> when its current epoch began

    def on_start(self, trial_id, config):
        self.started[trial_id] = self.last_said[trial_id] = self.epoch_began[trial_id] = self.clock()
        self.eta.start(trial_id, config, self.started[trial_id])
        shown = ", ".join(f"{k}={_short(config[k])}" for k in self.params if k in config)
        say(f"trial {trial_id} started ({len(self.started) + self.ended}/{self.plan.trials}): {shown}")

    def on_result(self, trial_id, metrics):
        now = self.last_said[trial_id] = self.epoch_began[trial_id] = self.clock()
        epoch = int(metrics.get("epoch", 0) or 0)
        self.epochs[trial_id] = epoch
        self.eta.result(trial_id, metrics, now)
        value = metrics.get(self.metric)
        if value is not None and math.isfinite(float(value)):
            better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
            if better:
                self.best = (float(value), trial_id)
        say(f"trial {trial_id} epoch {epoch}/{self.plan.max_epochs}: {self.metric} {fmt(self.metric, value)}"
            f"{self._best_text()} ({metrics.get('epoch_time_s', 0):.1f}s)")
        if not self.planned and self.eta.measured():
            self.planned = True
            say(self.plan_line(now))

    def on_end(self, trial_id, status, metrics, error):
        self.ended += 1
        self.eta.end(trial_id)
        self.started.pop(trial_id, None)
        epochs = self.epochs.pop(trial_id, int(metrics.get("epoch", 0) or 0))
        what = {Status.COMPLETED: "completed", Status.STOPPED_EARLY: f"stopped early by {self.stopper}",
                Status.ERRORED: "errored", Status.INTERRUPTED: "interrupted"}[status]
        tail = f": {error}" if error else f": {self.metric} {fmt(self.metric, metrics.get(self.metric))}"
        say(f"trial {trial_id} {what} after {epochs} epoch{'s' * (epochs != 1)}{tail} "
            f"[{self.ended}/{self.plan.trials} ended]")

    def on_progress(self, trial_id, progress):
        """A trial inside a long epoch: said every `every_s` while no epoch of it has ended for that long."""
        now = self.clock()
        if now - self.last_said.get(trial_id, self.started.get(trial_id, now)) < self.every_s:
            return
        step, steps, epoch = progress.get("step", 0), progress.get("steps", 0), progress.get("epoch", 0)
        if not steps or progress.get("t", 0) <= self.last_said.get(trial_id, 0):
            return
        self.last_said[trial_id] = now
        began = self.epoch_began.get(trial_id, self.started.get(trial_id, now))
        left = (now - began) * (steps - step) / max(step, 1)
        say(f"trial {trial_id} epoch {epoch}/{self.plan.max_epochs}: step {step}/{steps} ({step / steps:.0%}), "
            f"about {duration(left)} left in this epoch")

    def on_tick(self):
        now = self.clock()
        if now - self.last_status < self.every_s:
            return
        self.last_status = now
        say(self.status_line(now))

    def status_line(self, now: float) -> str:
        line = (f"{duration(now - self.t0)} elapsed: {len(self.started)} running, "
                f"{self.ended}/{self.plan.trials} ended{self._best_text()}")
        eta = self.eta_s(now)
        return line + (f"; about {duration(eta)} left" if eta is not None else "; ETA after the first epoch")

    def eta_s(self, now: float | None = None) -> float | None:
        left = self.eta.left(self.clock() if now is None else now)
        return None if left is None else left.about

    def plan_line(self, now: float) -> str:
        """The plan's wall time, once the first epoch is timed: what has elapsed plus the same estimate of what is left
        as the status line's."""
        left, spent = self.eta.left(now), now - self.t0
        wall = Wall(spent + left.about, spent + left.low, spent + left.high)
        return self.plan.lines(self.eta.epoch_s(), self.job_s, wall, self.eta.queued_epoch_s())[-1]

    def _best_text(self) -> str:
        if self.best is None:
            return ""
        return f"; best {fmt(self.metric, self.best[0])} (trial {self.best[1]})"


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
