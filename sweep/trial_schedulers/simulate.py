"""How many epochs a sweep will train: each scheduler's rule played on the planned trials, many times.

What a scheduler cuts depends on how trials rank and in which order they reach each decision: ASHA, with few
trials at a rung, promotes more than 1/reduction_factor (its cutoff is a percentile of the few values recorded so
far); HyperBand's brackets are sized by its own formula whatever the trial count. So the plan does not use a
closed form: it replays the scheduler's rule (Ray Tune 2.60's, re-written here without Ray: the plan is made before
Ray starts) on `trials` trials run `concurrent` at a time, each with a latent quality and noisy epoch-to-epoch
values (rank correlation between an early and the last epoch about 0.8, as measured on the proxy task:
BENCHMARKS.md, "Search efficiency"), and reports the mean and the 10th-90th percentile of the epochs trained.
Epoch costs may differ per trial (`cost`), which changes the order trials reach a rung, hence the cut.

Each replay's epochs per trial are kept (`Expected.runs`): the console's time left (sweep/eta.py) draws from them how
long a queued trial, or a running one at its epoch, will go on.
"""
from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

RUNS = 200


@dataclass(frozen=True)
class Expected:
    epochs: float  # mean trial-epochs over the simulated runs
    low: float  # 10th percentile
    high: float  # 90th percentile
    per_trial: float  # mean epochs per trial
    runs: tuple = ()  # runs[r][i]: epochs the i-th trial to start trained in replay r (empty: every trial, max_t)

    def of(self, index: int, draw: int) -> float:
        """Epochs of the `index`-th trial to start, in replay `draw` (modulo the replays kept)."""
        if not self.runs:
            return self.per_trial
        run = self.runs[draw % len(self.runs)]
        return run[min(index, len(run) - 1)]

    def after(self, epoch: int, index: int | None = None) -> tuple:
        """Epochs still to train, over the replayed trials that went on past `epoch`: the possible futures of a trial
        still running after it reported that epoch (Tune's scheduler decides before it tells the console: a trial
        stopped there is ending). With `index`, those that started `index`-th (later ones find the rungs fuller
        and are stopped more), unless fewer than 20 of them went on; (0,) when none went on."""
        if not self.runs:
            return (max(0.0, self.per_trial - epoch),)
        if index is not None:
            mine = tuple(run[index] - epoch for run in self.runs if index < len(run) and run[index] > epoch)
            if len(mine) >= 20:
                return mine
        return tuple(n - epoch for run in self.runs for n in run if n > epoch) or (0,)


def asha_rungs(max_t: int, grace: int, eta: float, bracket: int = 0) -> list[float]:
    """Ray's AsyncHyperBandScheduler milestones for one bracket, ascending: grace * eta^(k + bracket) < max_t."""
    count = int(math.log(max_t / grace) / math.log(eta) - bracket + 1)
    return [grace * eta ** (k + bracket) for k in range(max(count, 0))]


def expected(kind: str, settings, trials: int, concurrent: int, max_t: int, cost=None, seed: int = 0) -> Expected:
    """Mean and spread of the trial-epochs `kind` trains; `cost[i]`: seconds per epoch of trial i (default all 1)."""
    play = RULES.get(kind)
    if play is None:  # no early stopping: every trial trains every epoch
        return Expected(trials * max_t, trials * max_t, trials * max_t, max_t)
    rng = random.Random(seed)
    runs = tuple(tuple(play(settings, trials, concurrent, max_t, cost or [1.0] * trials, rng)) for _ in range(RUNS))
    totals = sorted(sum(run) for run in runs)
    mean = sum(totals) / len(totals)
    return Expected(mean, totals[len(totals) // 10], totals[(len(totals) * 9) // 10], mean / max(trials, 1), runs)


def _curves(trials: int, max_t: int, rng) -> list[list[float]]:
    """values[i][t-1]: trial i's metric at epoch t (higher is better); a shared rise makes later epochs score higher."""
    quality = [rng.gauss(0, 1) for _ in range(trials)]
    return [[q + 0.5 * rng.gauss(0, 1) + math.log1p(t) for t in range(1, max_t + 1)] for q in quality]


def _run(trials: int, concurrent: int, max_t: int, cost, decide) -> list[int]:
    """Trials start in order as slots free up; after each epoch `decide(i, epoch, now)` says whether trial i goes on.
    Returns the epochs each trial trained."""
    heap, started, trained = [], 0, [0] * trials
    while started < min(concurrent, trials):
        heapq.heappush(heap, (cost[started], started, 1))
        started += 1
    while heap:
        now, i, epoch = heapq.heappop(heap)
        trained[i] += 1
        if epoch < max_t and decide(i, epoch, now):
            heapq.heappush(heap, (now + cost[i], i, epoch + 1))
        elif started < trials:
            heapq.heappush(heap, (now + cost[started], started, 1))
            started += 1
    return trained


class AshaRule:
    """Ray's ASHA decision for one trial's result: its bracket (drawn as Ray draws it, favouring brackets with more
    rungs), the highest rung it reached and has no value at yet, the cutoff there (the (1 - 1/eta) percentile of the
    values recorded at that rung so far, before this one's), stop below it."""

    def __init__(self, s, max_t: int, trials: int, rng):
        self.eta = s.reduction_factor
        self.brackets = [asha_rungs(max_t, s.grace_period, s.reduction_factor, b) for b in range(s.brackets)]
        self.recorded = [{r: {} for r in rungs} for rungs in self.brackets]
        sizes = [len(r) for r in self.brackets]
        weights = [math.e ** (n - max(sizes)) for n in sizes]
        self.home = [rng.choices(range(len(self.brackets)), weights)[0] for _ in range(trials)]

    def goes_on(self, i: int, epoch: int, value: float) -> bool:
        b = self.home[i]
        for rung in reversed(self.brackets[b]):
            seen = self.recorded[b][rung]
            if epoch < rung or i in seen:
                continue
            cutoff = _percentile(list(seen.values()), 1 - 1 / self.eta) if seen else None
            seen[i] = value
            return cutoff is None or value >= cutoff
        return True


def _asha(s, trials, concurrent, max_t, cost, rng) -> list[int]:
    values = _curves(trials, max_t, rng)
    rule = AshaRule(s, max_t, trials, rng)
    return _run(trials, concurrent, max_t, cost, lambda i, epoch, now: rule.goes_on(i, epoch, values[i][epoch - 1]))


def _percentile(xs: list[float], q: float) -> float:
    """numpy's default (linear) percentile, as Ray's cutoff uses."""
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _median(s, trials, concurrent, max_t, cost, rng) -> list[int]:
    values = _curves(trials, max_t, rng)
    seen: dict[int, int] = {}  # trial -> epochs reported

    def decide(i, epoch, now):
        seen[i] = epoch
        if epoch < s.grace_period:
            return True
        others = [j for j, e in seen.items() if j != i and e >= epoch]
        means = [sum(values[j][s.grace_period - 1:epoch]) / (epoch - s.grace_period + 1) for j in others]
        if len(means) < s.min_samples:
            return True
        means.sort()
        mid = len(means) // 2
        median = means[mid] if len(means) % 2 else (means[mid - 1] + means[mid]) / 2
        return max(values[i][:epoch]) >= median

    return _run(trials, concurrent, max_t, cost, decide)


def _hyperband(s, trials, concurrent, max_t, cost, rng) -> list[int]:
    """Ray's synchronous HyperBand: brackets s = 0, 1, ... of ceil(s_max/(s+1) * eta^s) trials starting at
    max_t * eta^-s epochs; each bracket halves (by eta) once every live trial reached its level. Trials fill the
    brackets in order; a bracket left short by the trial count halves what it has."""
    eta = s.reduction_factor
    s_max = int(round(math.log(max_t) / math.log(eta))) + 1
    values = _curves(trials, max_t, rng)
    trained, i, band = [0] * trials, 0, 0
    while i < trials:
        b = band % s_max
        band += 1
        r = int(max_t * eta ** -b)
        if r == 0:
            continue
        size = int(math.ceil(s_max / (b + 1) * eta ** b))
        live = list(range(i, min(i + size, trials)))
        i += len(live)
        done, keep, halves = 0, size, b
        while live:
            for j in live:
                trained[j] += r - done
            if halves == 0 or r >= max_t:
                break
            keep = int(math.ceil(keep / eta))
            live = sorted(live, key=lambda j: values[j][r - 1])[-keep:]
            done, r, halves = r, int(min(r * eta, max_t)), halves - 1
    return trained


def _pbt(s, trials, concurrent, max_t, cost, rng) -> list[int]:
    """Asynchronous PBT: at each perturbation a trial whose last score is in the bottom quantile copies a top one's
    checkpoint, taken at that trial's own last perturbation, and trains on from there (an epoch it had trained past
    is trained again); a trial at a perturbation while others wait is paused and goes to the back of the queue, so
    the population moves on together. The epochs each trial trains, the copies' included."""
    quality = [rng.gauss(0, 1) for _ in range(trials)]
    at = [0] * trials  # the epoch each trial's weights are at
    score: dict[int, tuple[float, int]] = {}  # trial -> (score at its last perturbation, that epoch)
    waiting = list(range(trials))
    heap = [(cost[i], i) for i in waiting[:concurrent]]
    waiting = waiting[concurrent:]
    trained = [0] * trials
    while heap:
        now, i = heapq.heappop(heap)
        at[i] += 1
        trained[i] += 1
        e = at[i]
        perturb = e >= getattr(s, "burn_in", 0) and e % s.interval == 0 and e < max_t
        if perturb:
            # Across epochs a learning curve dominates: a checkpoint many epochs back rarely scores better.
            score[i] = ((1 + 0.15 * quality[i]) * (1 - math.exp(-3 * e / max_t)) + 0.01 * rng.gauss(0, 1), e)
            ranked = sorted((j for j in score if at[j] < max_t), key=lambda j: score[j][0])  # finished ones: out
            n = min(int(math.ceil(len(ranked) * s.quantile)), len(ranked) // 2)
            if n and i in ranked[:n]:
                donor = rng.choice(ranked[-n:])
                at[i], quality[i] = score[donor][1], quality[donor] + 0.1 * rng.gauss(0, 1)
                score[i] = (score[donor][0], at[i])
        if at[i] >= max_t or (perturb and waiting):
            if at[i] < max_t:
                waiting.append(i)
            if waiting:  # PBT runs the waiting trial that is furthest behind (its choose_trial_to_run)
                nxt = min(waiting, key=lambda j: (at[j], j))
                waiting.remove(nxt)
                heapq.heappush(heap, (now + cost[nxt], nxt))
        else:
            heapq.heappush(heap, (now + cost[i], i))
    return trained


RULES = {"asha": _asha, "median": _median, "hyperband": _hyperband, "pbt": _pbt, "pb2": _pbt}
