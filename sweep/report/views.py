"""report.md's views of the study drawn by optuna.visualization.matplotlib: importance, the two most important
parameters, and the Pareto front (the parallel coordinates and the slices: parallel.py, slices.py)."""
from __future__ import annotations

import os

from .folder import Sweep
from .importance import EVALUATORS, Importance, evaluator, measure
from .plots import image, optuna_figure
from .sections import table, unit
from .study import objective_metrics, valued_study


def _vis():
    import optuna.visualization.matplotlib as vis

    return vis


def importance(sweep: Sweep, plots: str) -> tuple[list[str], Importance]:
    imp = measure(sweep)
    lines = ["## Hyperparameter importance", ""]
    if imp.why_not:
        return lines + [f"Not measured: {imp.why_not}.", ""], imp
    assessed = imp.ranking + [p for e in EVALUATORS for p in imp.scores[e] if p not in imp.ranking]
    assessed = list(dict.fromkeys(assessed))
    left_out = [p for p in sweep.params if p not in assessed]
    lines += [f"Optuna's PED-ANOVA and fANOVA on `{sweep.metric}` at epoch {imp.epoch}, the deepest epoch that "
              f"{imp.trials} trials reached (ASHA stopped the rest earlier; trials compare fairly only at an "
              f"equal epoch). Shares of the explained variation; 1 is all of it.", ""]
    rows = [[f"`{p}`", *[f"{imp.scores[e][p]:.3f}" if p in imp.scores[e] else "–" for e in EVALUATORS]]
            for p in assessed]
    lines += [table(["parameter", *EVALUATORS], rows), ""]
    if any("–" in r for r in rows):
        lines += ["A dash: that method did not assess the parameter (fANOVA needs it set in every trial; a "
                  "conditional one is not).", ""]
    if left_out:
        lines += [f"Not assessed (set in only some of those trials: conditional): {', '.join(left_out)}.", ""]
    for name in EVALUATORS:
        path = os.path.join(plots, f"importance_{name.lower().replace('-', '')}.png")

        def draw(name=name):
            ax = _vis().plot_param_importances(imp.study, evaluator=evaluator(name), target_name=unit(sweep.metric))
            ax.set_title(f"{name} importance, epoch {imp.epoch}, {imp.trials} trials", loc="left")  # replaces Optuna's
            return ax

        optuna_figure(draw, path, (6, 3.2))
        lines.append(image(sweep.folder, path, f"{name} importance"))
    return lines + [""], imp


def focus(sweep: Sweep, imp: Importance, plots: str) -> list[str]:
    """A contour of the two most important parameters (a slice when only one was assessed)."""
    top = imp.ranking[:2]
    if not top:
        return []
    path = os.path.join(plots, "top_parameters.png")
    target = unit(sweep.metric)
    if len(top) == 2:
        optuna_figure(lambda: _vis().plot_contour(imp.study, params=top, target_name=target), path, (6.5, 5))
        title = f"## `{top[0]}` and `{top[1]}`: the two most important parameters"
    else:
        optuna_figure(lambda: _vis().plot_slice(imp.study, params=top, target_name=target), path, (5, 4))
        title = f"## `{top[0]}`: the most important parameter"
    return [title, "", f"`{sweep.metric}` at epoch {imp.epoch} over the {imp.trials} trials that reached it.", "",
            image(sweep.folder, path, "top parameters"), ""]


def objectives(sweep: Sweep) -> list[str]:
    """What is traded off: the YAML's `objectives:` when it names several (Optuna draws 2 or 3 at once),
    else clean vs corrupted validation accuracy when the sweep measured both."""
    named = [m for m in objective_metrics(sweep) if sweep.has_metric(m)][:3]
    if len(named) >= 2:
        return named
    if sweep.has_metric("val_acc") and sweep.has_metric("ood_val_acc"):
        return ["val_acc", "ood_val_acc"]
    return []


def pareto(sweep: Sweep, plots: str) -> list[str]:
    pair = objectives(sweep)
    if not pair:
        return []
    study, ids = valued_study(sweep, metrics=pair, rule="last_epoch")
    lines = [f"## {' vs '.join(f'`{m}`' for m in pair)}: the Pareto front", ""]
    if not ids:
        return lines + ["No trial reported all of them.", ""]
    front = {t.user_attrs["trial_id"] for t in study.best_trials}
    rows = [[f"`{t.user_attrs['trial_id']}`", *[f"{v:.1f}" if m.endswith("_acc") else f"{v:.4g}"
                                                 for v, m in zip(t.values, pair)],
             "yes" if t.user_attrs["trial_id"] in front else ""] for t in study.trials]
    rows.sort(key=lambda r: (r[-1] != "yes", r[0]))
    path = os.path.join(plots, "pareto.png")
    optuna_figure(lambda: _vis().plot_pareto_front(study, target_names=[unit(m) for m in pair]), path, (6, 4.5))
    return lines + [f"Each trial at the last epoch it trained ({len(ids)} trials; those ASHA stopped at their "
                    f"rung). {len(front)} on the front: no other trial is as good in all and better in one.", "",
                    table(["trial", *[unit(m) for m in pair], "on the front"], rows), "",
                    image(sweep.folder, path, "Pareto front"), ""]
