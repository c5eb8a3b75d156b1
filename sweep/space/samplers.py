"""Sampler types: one table (name -> how to build it, what it needs, whether it can rank several objectives).

A new type is one row; a name not in the table is an error at load time that lists the allowed ones, never a
silent fallback to some other sampler.
"""
from __future__ import annotations

import importlib.util
import warnings
from typing import Any, Callable, NamedTuple

from trainables.errors import closest

from .errors import Invalid, SpaceError
from .values import show


class Kind(NamedTuple):
    make: Callable[[Any, int], Any]  # (Sampler section, trials at a time) -> optuna sampler
    needs: tuple = ()  # packages optuna imports only when it samples: checked at load, not in trial 5
    multi_objective: bool = False


def _tpe(s, concurrent):
    import optuna

    with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: with several trials at a time TPE counts the running ones as bad results, so it does not
        # suggest the same region twice in a row. Optuna 5.0's default is on; set here so that it stays so.
        return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials, multivariate=True,
                                          group=True, constant_liar=concurrent > 1)


def _random(s, concurrent):
    import optuna

    return optuna.samplers.RandomSampler(seed=s.seed)


def _cmaes(s, concurrent):  # categorical and conditional params fall back to random sampling
    import optuna

    return optuna.samplers.CmaEsSampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                        warn_independent_sampling=False)


def _gp(s, concurrent):
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.GPSampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                         warn_independent_sampling=False)


def _nsga2(s, concurrent):
    import optuna

    # The first generation is random, like the other samplers' startup trials: its size is n_startup_trials
    # (at least 2, NSGA-II's minimum), so a 20-trial sweep evolves for several generations, not one of 50.
    return optuna.samplers.NSGAIISampler(seed=s.seed, population_size=max(2, s.n_startup_trials))


SAMPLERS: dict[str, Kind] = {
    "tpe": Kind(_tpe, multi_objective=True),
    "random": Kind(_random, multi_objective=True),  # ignores n_startup_trials, so switching type is one override
    "cmaes": Kind(_cmaes, needs=("cmaes",)),
    "gp": Kind(_gp, needs=("scipy", "torch"), multi_objective=True),
    "nsga2": Kind(_nsga2, multi_objective=True),
}


def check_type(kind: Any, n_objectives: int = 1) -> str:
    """The sampler type, if it exists, its packages are installed and it can rank `n_objectives` objectives."""
    if not isinstance(kind, str) or kind not in SAMPLERS:
        close = closest(kind, SAMPLERS)
        hint = f"; did you mean '{close}'?" if close else ""
        raise Invalid("sampler.type", f"unknown sampler {show(kind)}; allowed: {', '.join(SAMPLERS)}{hint}")
    missing = [m for m in SAMPLERS[kind].needs if importlib.util.find_spec(m) is None]
    if missing:
        raise Invalid("sampler.type", f"{kind} needs the package(s) {', '.join(missing)}: "
                                      f"pip install {' '.join(missing)}, or use tpe or random")
    if n_objectives > 1 and not SAMPLERS[kind].multi_objective:
        many = [k for k, v in SAMPLERS.items() if v.multi_objective]
        raise Invalid("sampler.type", f"{kind} optimises one objective, but objectives: lists {n_objectives}; "
                                      f"use one of {', '.join(many)}")
    return kind


def make_sampler(section, concurrent: int = 1) -> Any:
    """The configured Optuna sampler for a (validated) `Sampler` section and how many trials run at once."""
    if section.type not in SAMPLERS:  # a hand-made spec; load_space already rejects it
        raise SpaceError(f"unknown sampler type {section.type!r}; allowed: {', '.join(SAMPLERS)}")
    return SAMPLERS[section.type].make(section, concurrent)
