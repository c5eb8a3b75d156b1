"""Each trial scheduler's settings: a frozen dataclass whose defaults are the documented ones
(search_spaces/README.md, "Trial schedulers"), and the readers that check a YAML value for each field.

A reader is `(value, path, context) -> value`, raising `Invalid(path, message)` naming what is allowed; the
context is the rest of the space (`Context`), for settings that depend on it (a grace period no longer than the
epochs, the parameters PBT may mutate).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..space.errors import Invalid
from ..space.values import FrozenDict, number, show


class Context(NamedTuple):
    epochs: int  # fixed.epochs: every scheduler's budget per trial (max_t)
    params: tuple  # the space's Params
    checkpoint_every: int


@dataclass(frozen=True)
class Asha:
    grace_period: int = 1
    reduction_factor: float = 3
    brackets: int = 1  # several: a hedge against stopping slow starters (Determined's adaptive ASHA runs several)


@dataclass(frozen=True)
class HyperBand:
    reduction_factor: float = 3


@dataclass(frozen=True)
class Median:
    grace_period: int = 1
    min_samples: int = 3  # other trials' running means needed at an epoch before any trial is stopped there


@dataclass(frozen=True)
class Pbt:
    interval: int = 2  # epochs between perturbations (PBT's perturbation_interval)
    quantile: float = 0.25  # the bottom quantile copies the top one
    resample_probability: float = 0.25  # a perturbed parameter is drawn afresh from its distribution this often
    factors: tuple = (1.2, 0.8)  # else a number is multiplied by one of these (a choice moves to a neighbour)
    mutate: FrozenDict = field(default_factory=FrozenDict)  # param -> perturb | resample (default: every mutable one)
    burn_in: int = 0  # epochs before the first perturbation (a multiple of interval: checkpoints kept fall there)


@dataclass(frozen=True)
class Pb2:
    interval: int = 2
    quantile: float = 0.25
    mutate: tuple = ()  # the numeric parameters PB2's bandit explores (default: every mutable numeric one)


@dataclass(frozen=True)
class Fifo:
    """No early stopping: every trial trains every epoch (the for-loop, with the sampler's choices)."""


MUTATIONS = ("perturb", "resample")


def whole(minimum: int):
    return lambda v, p, ctx: number(v, p, integer=True, minimum=minimum)


def factor(value: Any, path: str, ctx) -> int | float:
    f = number(value, path, minimum=2)
    return int(f) if f.is_integer() else f  # 3, not 3.0, in results files


def fraction(low_open: bool, high: float):
    def read(value, path, ctx):
        f = number(value, path, minimum=0)
        if (low_open and f == 0) or f > high:
            raise Invalid(path, f"{show(value)} is not allowed; allowed: {'(' if low_open else '['}0, {high}]")
        return f
    return read


def burn_in(value: Any, path: str, ctx) -> int:
    n = number(value, path, integer=True, minimum=0)
    if n >= ctx.epochs:
        raise Invalid(path, f"{n} leaves no epoch of fixed.epochs ({ctx.epochs}) to perturb; allowed: 0 to "
                            f"{ctx.epochs - 1}")
    return n


def within_epochs(value: Any, path: str, ctx) -> int:
    n = number(value, path, integer=True, minimum=1)
    if n > ctx.epochs:
        raise Invalid(path, f"{n} is more than fixed.epochs ({ctx.epochs}); allowed: 1 to {ctx.epochs}")
    return n


def interval(value: Any, path: str, ctx) -> int:
    n = within_epochs(value, path, ctx)
    if n % ctx.checkpoint_every:
        raise Invalid(path, f"{n} is not a multiple of trials.checkpoint_every ({ctx.checkpoint_every}): a trial is "
                            f"copied from its last saved epoch, so perturbations fall on saved epochs")
    return n


def factors(value: Any, path: str, ctx) -> tuple:
    if not isinstance(value, list) or len(value) < 2:
        raise Invalid(path, f"{show(value)} is not allowed; give two or more positive factors, e.g. [1.2, 0.8]")
    return tuple(number(v, f"{path}[{i}]", above=0) for i, v in enumerate(value))


def _mutable(name: str, path: str, ctx, numeric: bool = False):
    from trainables.mutable import mutation_error, why_not_mutable

    param = next((p for p in ctx.params if p.name == name), None)
    if param is None:
        searched = ", ".join(p.name for p in ctx.params)
        raise Invalid(path, f"{show(name)} is not a searched parameter; PBT mutates searched ones: {searched}")
    why = why_not_mutable(name)
    ends = param.values if param.type == "choice" else (param.low, param.high)
    why = why or next((w for a in ends for b in ends if (w := mutation_error(name, a, b))), None)
    if why:  # e.g. a momentum range from 0: PBT may move it across a line the run cannot cross
        raise Invalid(path, why)
    if numeric and param.type == "choice":
        raise Invalid(path, f"{name} is a choice; PB2 explores numeric parameters only (use pbt)")
    return param


def check_pbt(s: Pbt, path: str) -> None:
    if s.burn_in % s.interval:  # perturbations then fall off the interval's multiples, where checkpoints are kept
        raise Invalid(f"{path}.burn_in", f"{s.burn_in} is not a multiple of interval ({s.interval}); allowed: 0, "
                                         f"{s.interval}, {2 * s.interval}, ...")
    if not s.mutate:
        raise Invalid(f"{path}.mutate", "no searched parameter can mutate (PBT changes lr, weight decay, mixup, "
                                        "augmentation strengths...; search one of them, or choose another scheduler)")


def mutable_params(ctx, numeric: bool = False) -> tuple:
    """The searched parameters PBT may mutate (the default of `mutate:`)."""
    from trainables.mutable import why_not_mutable

    return tuple(p.name for p in ctx.params if why_not_mutable(p.name) is None
                 and not (numeric and p.type == "choice"))


def mutate_map(value: Any, path: str, ctx) -> FrozenDict:
    """{param: perturb | resample}; a list of names means perturb for each."""
    if isinstance(value, list):
        value = {name: "perturb" for name in value}
    if not isinstance(value, dict) or not value:
        raise Invalid(path, f"{show(value)} is not allowed; give the parameters to mutate, e.g. "
                            f"{{lr: perturb, mixup_alpha: resample}}")
    for name, how in value.items():
        _mutable(name, f"{path}.{name}", ctx)
        if how not in MUTATIONS:
            raise Invalid(f"{path}.{name}", f"{show(how)} is not allowed; choose one of {', '.join(MUTATIONS)}")
    return FrozenDict(value)


def mutate_list(value: Any, path: str, ctx) -> tuple:
    if not isinstance(value, list) or not value:
        raise Invalid(path, f"{show(value)} is not allowed; give a list of numeric parameters, e.g. [lr, weight_decay]")
    for i, name in enumerate(value):
        _mutable(name, f"{path}[{i}]", ctx, numeric=True)
    return tuple(value)
