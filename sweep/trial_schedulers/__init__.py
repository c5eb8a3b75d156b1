"""Trial schedulers as data: one table row per scheduler (`SCHEDULERS`), read by the space loader, the plan, the
Ray adapter and the report. Nothing here imports Ray: a row names the Ray Tune class and gives its arguments as
plain Python, and the adapter builds it (sweep/ray_adapter/schedulers.py).

Adding a scheduler is one row here plus its settings' dataclass and readers (settings.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, NamedTuple

from trainables.errors import closest

from ..space.errors import Invalid
from ..space.values import mapping, show, thaw
from . import pbt
from . import settings as st
from .settings import Context
from .simulate import asha_rungs

__all__ = ["SCHEDULERS", "TrialScheduler", "Context", "read", "asha_rungs"]


class Kind(NamedTuple):
    settings: type  # frozen dataclass: its defaults are the documented ones
    readers: dict  # setting -> reader(value, path, context)
    ray: str  # the Ray Tune scheduler class the adapter builds: a name in ray.tune.schedulers (or module.name there)
    arguments: Callable[[Any, Context], dict]  # that class's arguments, plain Python (metric and mode added there)
    describe: Callable[[Any, int], str]  # one line for the plan and the report
    searcher: bool = True  # OptunaSearch chooses each trial's config; False: a random initial population (PBT)
    stops_early: bool = True  # may end a trial before its last epoch
    exploits: bool = False  # copies one trial's weights into another: every checkpoint a donor may still be asked for
    pauses: bool = False  # pauses trials and restores them from their last saved epoch
    # Brings many trials to a level together, pausing those there first: no cap on live trials, since Tune counts a
    # paused trial as live and the rest would never start (measured: HyperBand then stopped nothing and PBT equalled
    # the for-loop); the resources a trial asks decide how many train at once.
    uncapped: bool = False
    defaults: Callable[[Context], dict] = lambda ctx: {}  # settings whose default depends on the space
    check: Callable[[Any, str], None] = lambda settings, path: None  # settings checked against each other
    name: str = ""  # what the report calls it ("What ASHA did"); empty: the row's key


def _asha(s, ctx):
    return dict(max_t=ctx.epochs, grace_period=s.grace_period, reduction_factor=s.reduction_factor,
                brackets=s.brackets)


def _describe_asha(s, epochs):
    rungs = [int(r) if float(r).is_integer() else round(r, 2) for r in asha_rungs(epochs, s.grace_period,
                                                                                   s.reduction_factor)]
    which = f"rungs at epochs {rungs} keep the best 1/{s.reduction_factor:g} at each" if rungs else \
        "no rung before the last epoch: nothing is stopped"
    return f"ASHA: {which}" + (f"; {s.brackets} brackets, each starting its rungs one step later" if s.brackets > 1
                                else "")


def _pbt(s, ctx):
    mutations, explore = pbt.mutations(ctx.params, dict(s.mutate))
    return dict(perturbation_interval=s.interval, burn_in_period=s.burn_in, hyperparam_mutations=mutations,
                quantile_fraction=s.quantile, resample_probability=s.resample_probability,
                perturbation_factors=tuple(s.factors), custom_explore_fn=explore)


def _describe_pbt(s, epochs):
    mutated = ", ".join(f"{k} ({v})" for k, v in s.mutate.items()) or "nothing (no searched parameter can mutate)"
    return (f"PBT: every {s.interval} epochs the bottom {s.quantile:g} of the population copies the weights of the top "
            f"{s.quantile:g} and mutates {mutated}; no trial is stopped early")


def _pb2(s, ctx):
    bounds = {p.name: [p.low, p.high] for p in ctx.params if p.name in s.mutate}
    return dict(perturbation_interval=s.interval, hyperparam_bounds=bounds, quantile_fraction=s.quantile)


SCHEDULERS: dict[str, Kind] = {
    "asha": Kind(st.Asha, {"grace_period": st.within_epochs, "reduction_factor": st.factor,
                           "brackets": st.whole(1)}, "AsyncHyperBandScheduler", _asha, _describe_asha,
                 name="ASHA"),
    "hyperband": Kind(st.HyperBand, {"reduction_factor": st.factor}, "HyperBandScheduler",
                      lambda s, ctx: dict(max_t=ctx.epochs, reduction_factor=s.reduction_factor),
                      lambda s, e: f"HyperBand: synchronous brackets of successive halving by {s.reduction_factor:g}, "
                                   f"trials paused at each level until their bracket gets there", pauses=True,
                      uncapped=True, name="HyperBand"),
    "median": Kind(st.Median, {"grace_period": st.within_epochs, "min_samples": st.whole(1)}, "MedianStoppingRule",
                   lambda s, ctx: dict(grace_period=s.grace_period, min_samples_required=s.min_samples),
                   lambda s, e: f"median stopping: from epoch {s.grace_period} a trial whose best is below the median "
                                f"of the others' running means ({s.min_samples}+ of them) stops", pauses=True,
                   name="median stopping"),
    "pbt": Kind(st.Pbt, {"interval": st.interval, "quantile": st.fraction(True, 0.5),
                         "resample_probability": st.fraction(False, 1.0), "factors": st.factors,
                         "mutate": st.mutate_map, "burn_in": st.burn_in},
                "PopulationBasedTraining", _pbt, _describe_pbt, searcher=False, stops_early=False, exploits=True,
                pauses=True, uncapped=True,
                defaults=lambda ctx: {"mutate": st.FrozenDict.of(st.mutable_params(ctx), "perturb")},
                check=st.check_pbt, name="PBT"),
    "pb2": Kind(st.Pb2, {"interval": st.interval, "quantile": st.fraction(True, 0.5), "mutate": st.mutate_list},
                "pb2.PB2", _pb2, lambda s, e: f"PB2: PBT whose mutations a GP bandit picks, every {s.interval} epochs",
                searcher=False, stops_early=False, exploits=True, pauses=True, uncapped=True,
                defaults=lambda ctx: {"mutate": st.mutable_params(ctx, numeric=True)}, name="PB2"),
    "fifo": Kind(st.Fifo, {}, "FIFOScheduler", lambda s, ctx: {},
                 lambda s, e: "no early stopping: every trial trains every epoch", stops_early=False,
                 name="the FIFO scheduler"),
}


def name_of(kind: str) -> str:
    """What the plan and the report call a row ("What ASHA did"): its `name`, else its key."""
    row = SCHEDULERS.get(kind)
    return (row.name if row else "") or kind


NEEDS = {"pb2": ("GPy",)}  # packages a row's Ray class imports only when built: checked at load


@dataclass(frozen=True)
class TrialScheduler:
    type: str = "asha"
    settings: Any = st.Asha()

    @property
    def kind(self) -> Kind:
        return SCHEDULERS[self.type]

    def to_dict(self) -> dict:
        return {"type": self.type, **thaw(asdict(self.settings))}

    def describe(self, epochs: int) -> str:
        return self.kind.describe(self.settings, epochs)

    def arguments(self, ctx: Context) -> dict:
        return self.kind.arguments(self.settings, ctx)


def read(raw: Any, ctx: Context, path: str = "trial_scheduler") -> TrialScheduler:
    """The `trial_scheduler:` section ({type: ..., settings...}) checked against the table and the space."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise Invalid(path, f"{show(raw)} is not a mapping; write e.g. {{type: asha, grace_period: 3}}")
    kind = raw.get("type", "asha")
    if not isinstance(kind, str) or kind not in SCHEDULERS:
        close = closest(kind, SCHEDULERS)
        raise Invalid(f"{path}.type", f"unknown trial scheduler {show(kind)}; allowed: {', '.join(SCHEDULERS)}"
                                      + (f"; did you mean '{close}'?" if close else ""))
    _check_installed(kind, path)
    row = SCHEDULERS[kind]
    mapping(raw, path, ["type", *row.readers])
    values = {**row.defaults(ctx), **{k: row.readers[k](v, f"{path}.{k}", ctx) for k, v in raw.items() if k != "type"}}
    if row.pauses and not row.exploits and ctx.checkpoint_every != 1:  # (PBT's interval is checked to fall on one)
        raise Invalid(f"{path}.type", f"{kind} pauses trials and restarts them from their last saved epoch: it needs "
                                      f"trials.checkpoint_every 1, not {ctx.checkpoint_every}")
    settings = row.settings(**values)
    row.check(settings, path)
    return TrialScheduler(kind, settings)


def _check_installed(kind: str, path: str) -> None:
    import importlib.util

    missing = [m for m in NEEDS.get(kind, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise Invalid(f"{path}.type", f"{kind} needs the package(s) {', '.join(missing)}: pip install "
                                      f"{' '.join(missing)}, or use pbt")
