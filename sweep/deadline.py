"""--time-limit: stop the sweep before a batch job's wall clock runs out, losing no finished epoch.

From measured epoch times: once no running trial can finish the epoch it is in before the limit (less a
reserve for writing results), or a trial starts whose first epoch cannot end in time, the sweep is stopped the
way Ctrl-C stops it (each trial keeps its last epoch's checkpoint) and the process exits with EXIT_RESUME.
"""
from __future__ import annotations

import time

from .outcome import Listener, StopReason


def reserve_s(limit_s: float) -> float:
    """Seconds kept after the stop for Tune's last save, result files and the report."""
    return max(5.0, min(120.0, 0.05 * limit_s))


class Deadline(Listener):
    def __init__(self, limit_s: float, stop, t0: float | None = None, clock=time.time):
        self.clock = clock
        self.t0 = clock() if t0 is None else t0
        self.limit_s = limit_s
        self.end = self.t0 + limit_s - reserve_s(limit_s)
        self.stop = stop  # called once with StopReason.TIME_LIMIT
        self.last: dict[str, float] = {}  # trial -> when its current epoch began (its last report)
        self.epoch_s: dict[str, float] = {}
        self.stopped = False

    def left_s(self) -> float:
        return self.end - self.clock()

    def typical_epoch_s(self) -> float | None:
        return max(self.epoch_s.values()) if self.epoch_s else None

    def fits(self, seconds: float | None) -> bool:
        return seconds is None or self.clock() + seconds <= self.end

    def on_start(self, trial_id, config):
        self.last[trial_id] = self.clock()
        if not self.fits(self.typical_epoch_s()):
            self._stop(f"trial {trial_id} could not finish an epoch before the limit")

    def on_result(self, trial_id, metrics):
        self.last[trial_id] = self.clock()
        if metrics.get("epoch_time_s"):
            self.epoch_s[trial_id] = float(metrics["epoch_time_s"])

    def on_end(self, trial_id, status, metrics, error):
        self.last.pop(trial_id, None)

    def on_tick(self):
        if self.stopped:
            return
        now = self.clock()
        if now >= self.end:
            self._stop("the time limit is reached")
            return
        running = list(self.last)
        if not running or not self.epoch_s:
            return
        typical = self.typical_epoch_s()
        # The epoch each running trial is in ends at its last report + its epoch time: if none ends in time,
        # waiting only burns the job's clock.
        if all(self.last[t] + self.epoch_s.get(t, typical) > self.end for t in running):
            self._stop("no running trial can finish its epoch before the limit")

    def _stop(self, why: str) -> None:
        if self.stopped:
            return
        self.stopped = True
        print(f"[sweep] time limit: {why}; stopping (every finished epoch is kept)", flush=True)
        self.stop(StopReason.TIME_LIMIT)
