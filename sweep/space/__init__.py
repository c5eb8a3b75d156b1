"""Search spaces are data: a YAML file -> a validated, frozen `SweepSpec` -> Optuna's define-by-run.

Where each job lives:
  load.py           load_space: read, apply smoke mode and overrides, build, report errors with the file name
  overrides.py      --set/flag overrides and the smoke: section, and which wins (file < smoke < overrides)
  yaml_file.py      YAML text -> values (duplicate keys are errors)
  values.py         typed readers (TrainConfig's own coercion), read-only containers
  objectives.py     metric/mode, objectives, pick, select
  params.py         one searched parameter: distribution, bounds, `when:`
  conditions.py     `when:` parsing, parents-first order, completing a partial trial
  check.py          the space against TrainConfig: ranges in context, enqueued configs
  sections.py       sampler/trials/resources/retrain/data/ood_val dataclasses
  (trial_scheduler: sweep/trial_schedulers/, a table of its own, with asha: as its shorthand)
  samplers.py       sampler type -> Optuna sampler (one table)
  define_by_run.py  the only `trial.suggest_*` calls
  spec.py           SweepSpec
"""
from .errors import Invalid, SpaceError
from .load import load_space
from .objectives import METRICS, SELECTS, Objective
from .params import DISTRIBUTIONS, Param
from .samplers import SAMPLERS
from .sections import Data, OodVal, Resources, Retrain, Sampler, Trials
from .spec import SweepSpec

__all__ = ["SpaceError", "Invalid", "SweepSpec", "load_space", "Param", "DISTRIBUTIONS", "METRICS", "SELECTS",
           "Objective", "SAMPLERS", "Sampler", "Trials", "Resources", "Retrain", "Data", "OodVal"]
