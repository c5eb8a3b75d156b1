"""What Population Based Training is given to explore with: plain, picklable Python (Tune pickles the scheduler into
its experiment state, and restores it on --resume).

PBT resamples a parameter from `Resample(param)` (its YAML distribution) or multiplies it by a factor; `Explore`
then puts every value back inside the space — PBT's own multiplication knows no bounds, and a weight decay pushed
past the YAML's range, or an int left fractional, would be a trial the space never allowed — and redraws the
parameters the YAML asked to be resampled every time.
"""
from __future__ import annotations

import math
import random


class Resample:
    """One draw from a searched parameter's YAML distribution."""

    def __init__(self, param):
        self.type, self.low, self.high, self.step = param.type, param.low, param.high, param.step
        self.values = tuple(param.values)

    def __call__(self):
        if self.type == "choice":
            return random.choice(self.values)
        if self.type in ("loguniform", "logint"):
            value = math.exp(random.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = random.uniform(self.low, self.high)
        return self.clip(value)

    def clip(self, value):
        if self.type == "choice":
            return value
        value = min(max(value, self.low), self.high)
        if self.step:
            value = self.low + round((value - self.low) / self.step) * self.step
            value = min(max(value, self.low), self.high)
        if self.type in ("int", "logint"):
            return int(round(value))
        return float(value)


class Explore:
    """PBT's custom_explore_fn: every mutated value clipped to its parameter's range and grid; `redraw` ones drawn
    afresh."""

    def __init__(self, params: dict, redraw: tuple = ()):
        self.params = {name: Resample(p) for name, p in params.items()}
        self.redraw = tuple(redraw)

    def __call__(self, config: dict) -> dict:
        config = dict(config)
        for name, dist in self.params.items():
            if name in self.redraw:
                config[name] = dist()
            elif name in config:
                config[name] = dist.clip(config[name])
        return config


def mutations(params: tuple, mutate: dict) -> tuple[dict, "Explore"]:
    """(PBT's hyperparam_mutations, its custom_explore_fn) for the params named in `mutate` (name -> how)."""
    chosen = {p.name: p for p in params if p.name in mutate}
    space = {name: list(p.values) if p.type == "choice" else Resample(p) for name, p in chosen.items()}
    return space, Explore(chosen, redraw=tuple(n for n, how in mutate.items() if how == "resample"))
