"""What ASHA did: where it stopped trials, and the epochs that saved compared with training every trial to the end."""
from __future__ import annotations

from dataclasses import dataclass

from .folder import Sweep, num


@dataclass
class AshaSummary:
    grace_period: int
    reduction_factor: float
    max_epochs: int
    rungs: list[int]  # the epochs at which ASHA compares trials
    rows: list[tuple[int, int, int]]  # (epoch, trials that reached it, trials stopped there)
    spent: int  # epochs trained by all trials together
    full: int  # epochs had every trial trained to max_epochs (an errored trial counts what it ran)


def rungs(grace: int, factor: float, max_t: int) -> list[int]:
    """Ray's AsyncHyperBandScheduler milestones: grace * factor^k below max_t."""
    out, r = [], grace
    while r < max_t and factor > 1:
        out.append(int(r))
        r *= factor
    return out


def summarise(sweep: Sweep) -> AshaSummary:
    asha = sweep.spec.get("asha", {})
    grace, factor = int(asha.get("grace_period", 1)), float(asha.get("reduction_factor", 2))
    max_t = sweep.max_epochs
    epochs = {t["trial_id"]: int(num(t.get("epochs")) or 0) for t in sweep.trials}
    stopped = [epochs[t["trial_id"]] for t in sweep.trials if t["status"] == "stopped_early"]
    ran = list(epochs.values())
    milestones = rungs(grace, factor, max_t)
    rows = [(e, sum(n >= e for n in ran), stopped.count(e)) for e in sorted(set(milestones) | set(stopped))]
    spent = sum(epochs.values())
    full = sum(n if t["status"] == "errored" else max(max_t, n) for t, n in
               ((t, epochs[t["trial_id"]]) for t in sweep.trials))
    return AshaSummary(grace, factor, max_t, milestones, rows, spent, full)
