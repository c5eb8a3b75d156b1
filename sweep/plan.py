"""How long will it take: the epochs the trial scheduler will let the trials train, and wall time from measured epochs.

The epochs come from playing the scheduler's rule on the planned trials (sweep/trial_schedulers/simulate.py), not
from a closed form: ASHA with few trials at a rung promotes more than 1/reduction_factor, HyperBand sizes its
brackets by its own formula. So the plan says "about" and gives the range it expects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .trial_schedulers import name_of
from .trial_schedulers.simulate import Expected, expected


@dataclass(frozen=True)
class Wall:
    """Seconds a sweep (or what is left of it) takes: the median and the 10th-90th percentile of what is expected."""

    about: float  # the median: half the expected outcomes take longer
    low: float
    high: float


@dataclass(frozen=True)
class Plan:
    trials: int
    concurrent: int
    max_epochs: int
    expected: Expected  # trial-epochs the scheduler lets the trials train: mean, 10th-90th percentile
    scheduler: str = ""  # what the trial scheduler does, in one line
    searcher: str = ""  # who chooses each trial's config
    final: str = ""  # what the final model is made of, and what it costs

    @property
    def epochs_per_trial(self) -> float:
        return self.expected.per_trial

    @property
    def epochs(self) -> float:
        return self.expected.epochs

    def wall_s(self, epoch_s: float) -> float:
        """Expected seconds for the whole sweep at `epoch_s` per epoch per trial, `concurrent` trials at a time."""
        return self.epochs * epoch_s / max(1, self.concurrent)

    def lines(self, epoch_s: float | None = None, job_s: float | None = None, wall: Wall | None = None,
              next_epoch_s: float | None = None) -> list[str]:
        """`wall`: the sweep's time from sweep/eta.py (costs per config, the trials' order on the slots); without
        it, `epoch_s` for every epoch. `next_epoch_s`: what an epoch of the trials still to start is expected to
        cost, when it differs from `epoch_s`."""
        full = self.trials * self.max_epochs
        e = self.expected
        out = [f"plan: {self.trials} trials, {self.concurrent} at a time, up to {self.max_epochs} epochs each"
               + (f"; {self.scheduler}" if self.scheduler else "")]
        if self.searcher:
            out.append(f"plan: {self.searcher}")
        if self.final:
            out.append(f"plan: then {self.final}")
        if e.epochs < full:
            spread = f"{e.low:.0f}-{e.high:.0f} in 8 of 10 simulated runs of the scheduler; " if e.high > e.low else ""
            out.append(f"plan: about {e.epochs:.0f} trial-epochs in all ({spread}{1 - e.epochs / full:.0%} fewer than "
                       f"the {full} of training every trial to the end)")
        elif e.epochs > full:
            out.append(f"plan: about {e.epochs:.0f} trial-epochs in all ({e.low:.0f}-{e.high:.0f} in 8 of 10 simulated "
                       f"runs of the scheduler): every trial trains every epoch, and a trial that copies another goes "
                       f"back to that one's epoch and trains on from there")
        else:
            out.append(f"plan: {full} trial-epochs in all (every trial trains every epoch)")
        if epoch_s:
            total = wall.about if wall else self.wall_s(epoch_s)
            expect = f"; {next_epoch_s:.1f} s expected of the configs still to run" \
                if next_epoch_s and abs(next_epoch_s / epoch_s - 1) > 0.05 else ""
            line = f"plan: at {epoch_s:.1f} s per epoch (measured{expect}), about {duration(total)} on this machine"
            if wall and wall.high > wall.low:
                line += f" ({duration(wall.low)}-{duration(wall.high)} in 8 of 10 draws)"
            if job_s and wall:
                line += f"; at the longer, {math.ceil(wall.high / job_s)} job(s) of {duration(job_s)}"
            elif job_s:
                line += f" = {math.ceil(total / job_s)} job(s) of {duration(job_s)}"
            out.append(line)
        else:
            out.append("plan: wall time follows once the first epochs are timed")
        return out


def make_plan(spec) -> Plan:
    ts, trials = spec.trial_scheduler, spec.trials
    return Plan(trials.num_samples, trials.max_concurrent, spec.epochs,
                expected(ts.type, ts.settings, trials.num_samples, trials.max_concurrent, spec.epochs),
                ts.describe(spec.epochs), searcher_line(spec), final_line(spec))


def final_line(spec) -> str:
    """The final model and its cost: retrains (epochs x models) and inference (models x TTA views)."""
    from trainables.tta_views import tta_cost

    r = spec.retrain
    if not r.enabled:
        return "no final model (retrain.enabled false)"
    seeds = len(r.seeds) if r.source != "trial" else 1
    views = tta_cost(r.tta)
    data = "train+val" if r.train_on_val else "train"
    made = {"config": f"retrained for {r.epochs} epochs on {data}",
            "trial": "taken as the trial's own final weights (nothing trained)",
            "schedule": f"its schedule replayed for {spec.epochs} epochs on {data}"}[r.source]
    if r.ensemble_top > 1:
        return (f"an ensemble chosen among the best {r.ensemble_top} trials on the validation images, each member "
                f"{made}" + (f" x {seeds} seeds" if seeds > 1 else "") + f": up to {r.ensemble_top * seeds} models, "
                f"up to {r.ensemble_top * seeds * views}x the inference of one model")
    return (f"the best trial {made}" + (f" x {seeds} seeds" if seeds > 1 else "") +
            f"; {seeds * views}x the inference of one model" + (f" (test-time augmentation '{r.tta}')" if views > 1
                                                                 else ""))


def searcher_line(spec) -> str:
    """Who chooses each trial's config: the YAML's sampler through OptunaSearch, or (PBT) a random initial population
    that the scheduler's exploit and explore take from there; and, for a row that pauses trials to bring them to a
    level together, that trials.max_concurrent does not apply (Kind.uncapped)."""
    s, kind = spec.sampler, spec.trial_scheduler.kind
    uncapped = ": the resources a trial asks decide how many train at once, not trials.max_concurrent"
    if not kind.searcher:
        return (f"{spec.trial_scheduler.type} chooses the configs: an initial population drawn at random from the "
                f"space (seed {s.seed}), then its exploit and explore steps; sampler: is not used. The population "
                f"of {spec.trials.num_samples} is alive together, paused and resumed in turn (least trained first)"
                + uncapped)
    told = "; with several trials at a time it is told about the running ones (constant liar)" \
        if s.type == "tpe" and spec.trials.max_concurrent > 1 else ""
    if kind.uncapped:
        told += (f". {name_of(spec.trial_scheduler.type)} pauses trials at each level until the others get there, "
                 f"so every trial starts as soon as there is room" + uncapped)
    return f"Optuna's {s.type} sampler chooses each trial's config (seed {s.seed}){told}"


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
