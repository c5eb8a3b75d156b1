"""The parameters as the parallel coordinates and the slices show them: which ones, in which order, on which scale.

A figure shows only the parameters that varied, most important first (the order the report's importance
measured; the search space's order when it could not be measured), each on its own scale: log where it was
sampled on a log scale, evenly spaced categories for a choice, and `n/a` for a trial that did not use a
conditional parameter (a category of its own, never a made-up number).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from matplotlib.ticker import MaxNLocator
from optuna.distributions import CategoricalDistribution, IntDistribution

from .folder import Sweep
from .importance import EVALUATORS, Importance
from .study import distributions, valued_study

NA = "n/a"  # a conditional parameter a trial did not use
SHORT = 9  # characters a category's tick label keeps: 9 at 8 pt is ~50 px, less than the room between two axes
NA_ROOM = 0.15  # of an axis's height, kept below its numbers for the n/a tick


def short(labels: list[str], n: int = SHORT) -> list[str]:
    """Each label cut to `n` characters with an ellipsis (trivialaugment -> triviala…), numbered where two
    would read the same (resnet18_cifar, resnet18_imagenet -> resnet1…1, resnet1…2)."""
    out = [s if len(s) <= n else f"{s[:n - 1]}…" for s in labels]
    return [f"{s[:n - 2]}…{i}" if out.count(s) > 1 else s for i, s in enumerate(out, 1)]


@dataclass
class Axis:
    """One parameter's scale: `kind` is "log", "linear" or "choice"."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    integer: bool = False
    categories: list = field(default_factory=list)  # a choice's values the trials took, in the space's order
    has_na: bool = False  # some trials did not use it (conditional)

    @property
    def labels(self) -> list[str]:
        """Tick labels of the categories (n/a first when some trials did not use the parameter)."""
        return ([NA] if self.has_na else []) + short([str(c) for c in self.categories])

    def _unit(self, v: float) -> float:
        """A number as a fraction of [low, high] on this axis's scale."""
        if self.high == self.low:
            return 0.5
        if self.kind == "log":
            return (math.log10(v) - math.log10(self.low)) / (math.log10(self.high) - math.log10(self.low))
        return (v - self.low) / (self.high - self.low)

    def position(self, value) -> float:
        """Where a trial's value sits on the axis, 0 (bottom) to 1 (top); None is n/a, at the bottom."""
        if self.kind == "choice":
            slots = len(self.labels)
            slot = 0 if value is None else (1 if self.has_na else 0) + self.categories.index(value)
            return 0.5 if slots == 1 else slot / (slots - 1)
        if value is None:
            return 0.0
        base = NA_ROOM if self.has_na else 0.0
        return base + (1 - base) * self._unit(value)

    def ticks(self) -> list[tuple[float, str]]:
        """(position, label) of each tick: every category, or a few round numbers of the parameter's scale."""
        if self.kind == "choice":
            return [(self.position(None if lab == NA else c), lab)
                    for lab, c in zip(self.labels, ([None] if self.has_na else []) + self.categories)]
        out = [(self.position(v), f"{v:g}") for v in self.tick_values()]
        return ([(0.0, NA)] if self.has_na else []) + out

    def tick_values(self) -> list[float]:
        return numbers(self.low, self.high, self.kind == "log", self.integer)


def key(axes: list[Axis]) -> str:
    """A caption's sentence naming each shortened label in full ('' when none was shortened)."""
    pairs = {(lab, str(c)) for a in axes for lab, c in zip(short([str(c) for c in a.categories]), a.categories)
             if lab != str(c)}
    return f"Shortened labels: {', '.join(f'{lab} = {full}' for lab, full in sorted(pairs))}." if pairs else ""


def numbers(low: float, high: float, log: bool, integer: bool) -> list[float]:
    """Round tick values within [low, high]: powers of ten on a log scale (1, 2, 5 times them across less than
    two decades), else MaxNLocator's, at most 5 either way."""
    if high <= low:
        return [low]
    if log:
        decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        steps = (1,) if math.log10(high / low) >= 2 else (1, 2, 5)
        vals = [m * 10.0 ** k for k in decades for m in steps if low * (1 - 1e-9) <= m * 10.0 ** k <= high * (1 + 1e-9)]
        vals = vals[::-(-len(vals) // 5)] if len(vals) > 5 else vals
        return vals if len(vals) >= 2 else [low, high]
    vals = MaxNLocator(nbins=4, integer=integer).tick_values(low, high)
    span = high - low
    return [float(v) for v in vals if low - 1e-9 * span <= v <= high + 1e-9 * span]


def axis(name: str, dist, values: list) -> Axis:
    """The axis of parameter `name` sampled from Optuna distribution `dist`, for the trials' `values` (None:
    not used by that trial). Numbers span the search space's range, so a figure shows where trials went in it."""
    has_na = any(v is None for v in values)
    if isinstance(dist, CategoricalDistribution):
        seen = {repr(v) for v in values if v is not None}  # repr: True and 1 are different choices here
        return Axis(name, "choice", categories=[c for c in dist.choices if repr(c) in seen], has_na=has_na)
    return Axis(name, "log" if dist.log else "linear", float(dist.low), float(dist.high),
                integer=isinstance(dist, IntDistribution), has_na=has_na)


def varied(values: list) -> bool:
    """True when the trials took at least two values (n/a counts as one)."""
    return len({repr(v) for v in values}) >= 2


def ordered(sweep: Sweep, imp: Importance) -> tuple[list[str], str]:
    """The sweep's parameters most important first, and how they were ordered (a phrase for a caption)."""
    by_importance = [*imp.ranking, *[p for e in EVALUATORS for p in imp.scores.get(e, {})]]
    names = list(dict.fromkeys([p for p in by_importance if p in sweep.params] + sweep.params))
    if not imp.ranking:
        return names, f"in the search space's order (importance not measured: {imp.why_not})"
    rest = "" if set(names) <= set(by_importance) else "; those it did not assess follow in the search space's order"
    return names, f"most important first by the importance above{rest}"


@dataclass
class Shown:
    """What the parallel coordinates and the slices draw: every trial with a value (by the ranking rule, in
    the report's unit), and the parameters that varied among them, most important first."""

    ids: list[str]  # trial ids, in trials.csv's order (the order trials began)
    values: list[float]
    params: list[dict]  # each trial's values; a conditional parameter it did not use is absent
    axes: list[Axis]  # the parameters that varied, in `how`'s order
    single: dict[str, str]  # the parameters that took one value in every trial -> that value
    how: str  # how `axes` are ordered, for a caption


def shown(sweep: Sweep, imp: Importance, every: bool = False) -> Shown:
    """The trials with a value and the parameters that varied among them (`every`: every parameter with a value)."""
    study, ids = valued_study(sweep)
    trials = study.trials
    names, how = ordered(sweep, imp)
    dists = distributions(sweep)
    out = Shown(ids, [t.value for t in trials], [t.params for t in trials], [], {}, how)
    for name in names:
        values = [t.params.get(name) for t in trials]
        if varied(values) or (every and any(v is not None for v in values)):
            out.axes.append(axis(name, dists[name], values))
        elif values:
            out.single[name] = NA if values[0] is None else str(values[0])
    return out
