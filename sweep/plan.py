"""How long will it take: the epoch budget with ASHA's expected cut, and wall time from measured epochs.

ASHA (grace g, reduction factor η, budget T) promotes about 1/η of the trials at each rung g, gη, gη², …
below T: a trial trains to the first rung, continues to the next with probability 1/η, and so on. That is the
expected cut; the real one depends on how trials rank, so the plan says "about".
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def rungs(max_t: int, grace: int, eta: float) -> list[int]:
    out, r = [], grace
    while r < max_t:
        out.append(int(r))
        r *= eta
    return out


def expected_epochs(max_t: int, grace: int, eta: float) -> float:
    """Epochs one trial trains on average under ASHA (max_t when nothing is cut)."""
    marks = rungs(max_t, grace, eta) + [max_t]
    total, prev = 0.0, 0
    for i, mark in enumerate(marks):
        total += (mark - prev) / eta ** i
        prev = mark
    return total


@dataclass(frozen=True)
class Plan:
    trials: int
    concurrent: int
    max_epochs: int
    rungs: list[int]
    epochs_per_trial: float  # expected, with ASHA's cut
    eta: float = 2.0

    @property
    def epochs(self) -> float:
        return self.trials * self.epochs_per_trial

    def wall_s(self, epoch_s: float) -> float:
        """Expected seconds for the whole sweep at `epoch_s` per epoch per trial, `concurrent` trials at a time."""
        return self.epochs * epoch_s / max(1, self.concurrent)

    def lines(self, epoch_s: float | None = None, job_s: float | None = None) -> list[str]:
        cut = 1 - self.epochs_per_trial / self.max_epochs
        out = [f"plan: {self.trials} trials, {self.concurrent} at a time, up to {self.max_epochs} epochs each; " +
               (f"ASHA rungs at epochs {self.rungs} keep the best 1/{self.eta:g} at each" if self.rungs
                  else "no early stopping (ASHA's grace period is the whole budget)"),
               f"plan: about {self.epochs:.0f} trial-epochs in all ({self.epochs_per_trial:.1f} per trial; "
               f"{cut:.0%} fewer than {self.trials * self.max_epochs} without early stopping)"]
        if epoch_s:
            wall = self.wall_s(epoch_s)
            line = f"plan: at {epoch_s:.1f} s per epoch (measured), about {duration(wall)} on this machine"
            if job_s:
                line += f" = {math.ceil(wall / job_s)} job(s) of {duration(job_s)}"
            out.append(line)
        else:
            out.append("plan: wall time follows once the first epochs are timed")
        return out


def make_plan(spec) -> Plan:
    t, g, eta = spec.epochs, spec.asha.grace_period, spec.asha.reduction_factor
    return Plan(spec.trials.num_samples, spec.trials.max_concurrent, t, rungs(t, g, eta),
                expected_epochs(t, g, eta), eta)


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def parse_duration(text: str) -> float:
    """'1h50m', '90m', '45s', '2h', '5400' (seconds) -> seconds. ValueError says what is allowed."""
    import re

    t = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    # Also the schedulers' own form: HH:MM:SS (SGE h_rt, SLURM --time).
    if re.fullmatch(r"\d+:\d{1,2}:\d{1,2}", t):
        h, m, s = (int(p) for p in t.split(":"))
        return float(h * 3600 + m * 60 + s)
    m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", t)
    if not t or not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration; use e.g. 1h50m, 90m, 45s, 01:50:00 or seconds")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return float(d * 86400 + h * 3600 + mi * 60 + s)
