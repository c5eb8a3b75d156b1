"""How long the sweep has left: what an epoch of each config costs, and how many epochs each trial still trains.

Cost per config, not per sweep. An epoch's seconds depend on a few settings (`FEATURES`): the model and its input
size, AugMix and its consistency loss (JSD: three views of every image through the network), the batch size, the
training images, the runtime. log(seconds per epoch) is fitted as an intercept plus one effect per (setting, value)
to the trials' measured epochs, each effect pulled towards a prior (`PRIORS`; a MAP estimate, i.e. ridge regression
towards the prior): a config like measured ones costs what they cost; one that differs in a setting of known effect
is scaled from them (AugMix + JSD about 3.5x, measured on this CPU: small_cnn 4.4x per training epoch, bn_cnn less)
until trials of its own are measured, which then outweigh the prior; a model never measured costs the sweep's mean.
No prior from a timed batch before the first epoch: that would import torch in the driver, 1.2 s of CPU on the
start-up's critical path (BENCHMARKS.md, "Orchestration overhead"), and the first epochs are measured soon after.

Time left. Each running trial goes on as a trial that went on past its epoch did in the plan's replays of the trial
scheduler (sweep/trial_schedulers/simulate.py); the k-th queued trial trains what the k-th trial to start trained
there, at the cost of its config: the enqueued one when known, else one drawn from the space, moving towards the
configs the sampler has proposed so far. The trials are laid on the free slots in start order; the answer is the
median of DRAWS such draws, with the 10th-90th percentile. Seconds between epochs (checkpoints, Tune) and before a
trial's first (its process, the data, the model) are measured too and counted.
"""
from __future__ import annotations

import heapq
import math
import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from trainables.config import TrainConfig

from .plan import Plan, Wall

DRAWS = 200
OBSERVED_SD = 0.1  # log-seconds: how much the same config's epochs differ between trials (a shared machine)
SAMPLER_WEIGHT = 4  # the space's own distribution counts as this many proposed configs
DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def views(config: Mapping) -> str:
    if not config["augmix"]:
        return "plain"
    return "augmix+jsd" if config["augmix_jsd"] else "augmix"


# setting -> its value in a config (with TrainConfig's defaults filled in), and the train images of the split
FEATURES = {
    "model": lambda c, n: c["model"],
    "input_size": lambda c, n: c["input_size"],
    "stem": lambda c, n: c["stem"],
    "views": lambda c, n: views(c),
    "batch_size": lambda c, n: c["batch_size"],
    "images": lambda c, n: round((c["subset"] or n) * (1 - c["val_fraction"])),
    "auto_augment": lambda c, n: c["auto_augment"],
    "precision": lambda c, n: c["precision"],
    "threads": lambda c, n: c["threads"],
    "device": lambda c, n: c["device"],
}
VIEWS = {"plain": 0.0, "augmix": math.log(1.5), "augmix+jsd": math.log(3.5)}  # small_cnn 1 : 2 : 4.4, bn_cnn 1 : 1.3


def prior(feature: str, value) -> tuple[float, float]:
    """(mean, sd) of a setting value's effect on log(seconds per epoch)."""
    if feature == "views":
        return VIEWS[value], 0.4
    if feature == "images":  # the training pass scales with the images; validation does not
        return math.log(max(value, 1)), 0.3
    if feature == "input_size":  # pixels through the network
        return 2 * math.log(max(value, 32) / 32), 0.7
    if feature == "batch_size":  # per-image cost about constant (measured: small_cnn within 3% from 32 to 256)
        return 0.0, 0.25
    if feature == "model":
        return 0.0, 1.5
    return 0.0, 0.5


def key(config: Mapping, train_images: int) -> tuple:
    full = {**DEFAULTS, **config}
    return tuple((f, read(full, train_images)) for f, read in FEATURES.items())


class CostModel:
    """Seconds per training epoch of a config (`key`), from the measured epochs of every trial (one mean per trial)."""

    def __init__(self):
        self.observed: dict[str, tuple[tuple, float]] = {}  # trial -> (key, mean log seconds per epoch)
        self._fit: tuple[float, dict] | None = None
        self._seconds: dict[tuple, float] = {}

    def observe(self, trial_id: str, k: tuple, epoch_s: list[float]) -> None:
        recent = epoch_s[-5:]
        self.observed[trial_id] = (k, math.log(max(sum(recent) / len(recent), 1e-3)))
        self._fit, self._seconds = None, {}

    def __bool__(self) -> bool:
        return bool(self.observed)

    def seconds(self, k: tuple) -> float:
        if k not in self._seconds:
            intercept, effects = self.fit()
            self._seconds[k] = math.exp(intercept + sum(effects[fv] if fv in effects else prior(*fv)[0] for fv in k))
        return self._seconds[k]

    def fit(self) -> tuple[float, dict]:
        if self._fit is None:
            self._fit = _map_fit(list(self.observed.values()))
        return self._fit


def _map_fit(rows: list[tuple[tuple, float]]) -> tuple[float, dict]:
    """log seconds = intercept + sum of effects; each effect ~ N(prior), each trial's mean ~ N(that, OBSERVED_SD)."""
    import numpy as np

    columns = sorted({fv for k, _ in rows for fv in k}, key=repr)
    index = {fv: i + 1 for i, fv in enumerate(columns)}
    x = np.zeros((len(rows), len(columns) + 1))
    x[:, 0] = 1.0
    for r, (k, _) in enumerate(rows):
        for fv in k:
            x[r, index[fv]] = 1.0
    y = np.array([v for _, v in rows])
    means = np.array([0.0] + [prior(*fv)[0] for fv in columns])
    precision = np.array([1e-8] + [prior(*fv)[1] ** -2 for fv in columns])  # the intercept: no prior
    a = x.T @ x / OBSERVED_SD ** 2 + np.diag(precision)
    b = x.T @ y / OBSERVED_SD ** 2 + precision * means
    theta = np.linalg.solve(a, b)
    return float(theta[0]), {fv: float(theta[index[fv]]) for fv in columns}


@dataclass
class Trial:
    key: tuple
    index: int  # its place in the start order
    since: float  # when it (re)started, or last reported an epoch
    epoch: int = 0
    epoch_s: list = field(default_factory=list)


class Eta:
    """The console's time left: told every trial event, asked at each status line."""

    def __init__(self, plan: Plan, slots: int | None = None, space: list[dict] = (), enqueued: list[dict] = (),
                 train_images: int = 50_000, done: int = 0, fixed: Mapping | None = None):
        self.plan, self.slots = plan, max(1, slots or plan.concurrent)
        self.train_images = train_images  # CIFAR-100's training split unless the data says otherwise
        self.fixed = dict(fixed or {})  # the space's fixed: values, under every config
        self.space = [self.key(c) for c in space]  # configs drawn from the space: what a sampler starts with
        self.enqueued = [self.key(c) for c in enqueued]
        self.costs = CostModel()
        self.trials: dict[str, Trial] = {}
        self.running: set[str] = set()
        self.proposed: list[tuple] = []  # configs the sampler chose (not enqueued)
        self.ended = done  # trials that ended, those of an earlier run (resume) included
        self.epochs_s: list[float] = []  # every measured epoch
        self.between: list[float] = []  # seconds between a trial's epochs beyond the epoch itself (saves, Tune)
        # Seconds from a trial's start to its first epoch, beyond the epoch: the first trials' (cold: their processes
        # import torch while Ray settles; 9 s each at load 14 on 2 cores) apart from the later ones' (0.2-0.3 s there)
        self.start_up: dict[bool, list[float]] = {True: [], False: []}

    @classmethod
    def for_spec(cls, spec, plan: Plan, slots: int | None = None, train_images: int = 50_000, done: int = 0,
                 seed: int = 0) -> "Eta":
        rng = random.Random(seed)
        space = [spec.active({p.name: draw(p, rng) for p in spec.params}) for _ in range(DRAWS)]
        enqueued = [spec.active(dict(e)) for e in spec.enqueue]
        return cls(plan, slots, space, enqueued, train_images, done, spec.fixed)

    def key(self, config: Mapping) -> tuple:
        return key({**self.fixed, **config}, self.train_images)

    def start(self, trial_id: str, config: Mapping, now: float) -> None:
        t = self.trials.get(trial_id)
        if t is None:  # (a paused trial that starts again keeps its place)
            index = self.ended + len(self.running)
            t = self.trials[trial_id] = Trial(self.key(config), index, now)
            if index >= len(self.enqueued):
                self.proposed.append(t.key)
        t.since = now
        self.running.add(trial_id)

    def result(self, trial_id: str, metrics: Mapping, now: float) -> None:
        t = self.trials.get(trial_id)
        seconds = float(metrics.get("epoch_time_s") or 0)
        if t is None or seconds <= 0:
            return
        gap = max(0.0, now - t.since - seconds)
        (self.between if t.epoch_s else self.start_up[t.index < self.slots]).append(gap)
        t.epoch, t.since = int(metrics.get("epoch") or t.epoch + 1), now
        t.epoch_s.append(seconds)
        self.epochs_s.append(seconds)
        self.costs.observe(trial_id, t.key, t.epoch_s)

    def end(self, trial_id: str) -> None:
        if trial_id in self.running:
            self.running.discard(trial_id)
            self.ended += 1

    def measured(self) -> bool:
        return bool(self.costs)

    def epoch_s(self) -> float:
        """Mean measured seconds per epoch so far."""
        return sum(self.epochs_s) / len(self.epochs_s)

    def queued_epoch_s(self) -> float:
        """Mean seconds per epoch expected of the trials not started yet (the measured mean when there are none)."""
        rng = random.Random(0)
        first = self.ended + len(self.running)
        queued = range(first, max(first, self.plan.trials))
        if not queued:
            return self.epoch_s()
        return sum(self._queued_cost(i, rng) for _ in range(DRAWS) for i in queued) / (DRAWS * len(queued))

    def left(self, now: float) -> Wall | None:
        """Seconds left (the median, 10th and 90th percentile of DRAWS draws), None before the first measured epoch.
        The median, not the mean: what is left is skewed (one long trial more or less); on replayed sweeps (12
        trials, a quarter of them 3.6x dearer; bench/bench_eta.py --replay) the median came within 25% of the outcome
        more often at half and three quarters of the run (69 and 73 of 150 vs 58 and 44), as often at the first."""
        if not self.costs:
            return None
        rng = random.Random(0)  # the same state gives the same answer: the status line does not jitter
        between = statistics.median(self.between) if self.between else 0.0
        cold, warm = (statistics.median(self.start_up[c]) if self.start_up[c] else 0.0 for c in (True, False))
        running = sorted((self.trials[r] for r in self.running), key=lambda t: t.index)
        own = [sum(t.epoch_s[-5:]) / len(t.epoch_s[-5:]) if t.epoch_s else self.costs.seconds(t.key) for t in running]
        futures = [self.plan.expected.after(t.epoch, t.index) for t in running]
        first = self.ended + len(running)
        queued = range(first, max(first, self.plan.trials))
        ends = []
        for _ in range(DRAWS):
            jobs = []
            for t, cost, future in zip(running, own, futures):
                epochs = rng.choice(future)  # the time since its last report is spent on the first of them only
                current = cost + between + (0.0 if t.epoch_s else cold if t.index < self.slots else warm)
                jobs.append((epochs - 1) * (cost + between) + max(0.0, current - (now - t.since)) if epochs else 0.0)
            for i in queued:
                epochs = self.plan.expected.of(i, rng.randrange(1 << 30))
                jobs.append(epochs * (self._queued_cost(i, rng) + between) + warm)
            ends.append(_makespan(jobs, self.slots))
        ends.sort()
        return Wall(ends[len(ends) // 2], ends[len(ends) // 10], ends[(len(ends) * 9) // 10])

    def _queued_cost(self, index: int, rng: random.Random) -> float:
        if index < len(self.enqueued):
            return self.costs.seconds(self.enqueued[index])
        n = len(self.proposed)
        if self.proposed and (not self.space or rng.random() < n / (n + SAMPLER_WEIGHT)):
            return self.costs.seconds(rng.choice(self.proposed))
        if self.space:
            return self.costs.seconds(rng.choice(self.space))
        return self.costs.seconds(rng.choice([k for k, _ in self.costs.observed.values()]))


def _makespan(jobs: list[float], slots: int) -> float:
    """Seconds until the last job ends, each taken in order by the first free slot."""
    free = [0.0] * slots
    for job in jobs:
        heapq.heappush(free, heapq.heappop(free) + job)
    return max(free)


def draw(param, rng: random.Random):
    """One value from a searched parameter's YAML distribution (what random sampling and TPE's start-up draw)."""
    from .trial_schedulers.pbt import Resample

    if param.type == "choice":
        return rng.choice(param.values)
    low, high = param.low, param.high
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if param.log else rng.uniform(low, high)
    return Resample(param).clip(value)


def slots(spec, cluster: Mapping) -> int:
    """Trials that can run at once: trials.max_concurrent (uncapped rows, HyperBand and PBT: every trial), or fewer
    when the CPUs or GPUs hold fewer."""
    r = spec.resources
    n = spec.trials.num_samples if spec.trial_scheduler.kind.uncapped else spec.trials.max_concurrent
    if r.cpu:
        n = min(n, int(cluster["cpu"] // r.cpu))
    if r.gpu:
        n = min(n, int(cluster["gpu"] // r.gpu))
    return max(1, n)
