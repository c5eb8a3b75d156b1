"""Hyperparameter importance by Optuna's PED-ANOVA and fANOVA, on the study rebuilt from the sweep.

ASHA stops most trials early, so the trials that trained to the end are often too few to say anything.
Importance is measured at the deepest epoch that at least MIN_TRIALS trials reached: every trial there
trained equally long, so their values compare fairly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .folder import Sweep
from .study import valued_study

# Below this many valued trials importance is noise (PED-ANOVA compares the top 10% with the rest;
# fANOVA fits a random forest): the report says "too few trials" instead.
MIN_TRIALS = 8
EVALUATORS = ("PED-ANOVA", "fANOVA")


@dataclass
class Importance:
    epoch: int | None = None
    trials: int = 0
    scores: dict = field(default_factory=dict)  # evaluator name -> {param: importance}, most important first
    study: object = None  # the study it was measured on
    why_not: str = ""  # why there is no importance (too few trials, every trial scored the same)

    @property
    def ranking(self) -> list[str]:
        """Parameters most important first (fANOVA's order; PED-ANOVA's when fANOVA gave nothing)."""
        for name in reversed(EVALUATORS):
            if self.scores.get(name):
                return list(self.scores[name])
        return []


def evaluator(name: str):
    import optuna

    if name == "PED-ANOVA":
        return optuna.importance.PedAnovaImportanceEvaluator()
    return optuna.importance.FanovaImportanceEvaluator(seed=0)  # a random forest: seeded, so reruns agree


def epoch_for_importance(sweep: Sweep) -> tuple[int | None, int]:
    """The deepest epoch reached (with a value) by at least MIN_TRIALS trials, and how many reached it."""
    reached: dict[int, int] = {}
    for row in sweep.trials:
        if row["status"] == "errored":
            continue
        for e in {e for e, _ in sweep.curves(sweep.metric).get(row["trial_id"], [])}:
            reached[e] = reached.get(e, 0) + 1
    deep = [e for e, n in reached.items() if n >= MIN_TRIALS]
    if not deep:
        return None, max(reached.values(), default=0)
    return max(deep), reached[max(deep)]


def measure(sweep: Sweep) -> Importance:
    import warnings

    import optuna

    epoch, n = epoch_for_importance(sweep)
    if epoch is None:
        return Importance(trials=n, why_not=f"too few trials: {n} reached any one epoch with a value; "
                                            f"importance needs at least {MIN_TRIALS}")
    study, ids = valued_study(sweep, epoch=epoch)
    values = {t.value for t in study.trials}
    if len(values) < 2:
        return Importance(epoch, len(ids), study=study,
                          why_not=f"every trial scored the same at epoch {epoch}: nothing to attribute")
    out = Importance(epoch, len(ids), study=study)
    for name in EVALUATORS:
        with warnings.catch_warnings():  # PED-ANOVA is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            out.scores[name] = dict(optuna.importance.get_param_importances(study, evaluator=evaluator(name)))
    return out
