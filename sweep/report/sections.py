"""report.md's text sections: what the sweep was, the leaderboard, ASHA, failures, the final model.

One unit: accuracies in percent with one decimal everywhere (tables and text); losses as they are.
"""
from __future__ import annotations

import json
import os

from ..ranking import SELECT_TEXT
from .folder import Sweep, num

ROBUSTNESS_TITLES = {"generated": "a generated CIFAR-100-C-style copy of the test set",
                     "dl4ds": "the DL4DS OOD files (labels from the official test order)"}


def fmt(metric: str, v) -> str:
    """A metric value in the report's unit: percent for accuracies."""
    f = num(v)
    if f is None:
        return ""
    return f"{100 * f:.1f}" if metric.endswith("_acc") else f"{f:.4g}"


def unit(metric: str) -> str:
    return f"{metric} (%)" if metric.endswith("_acc") else metric


def cell(v) -> str:
    f = num(v)
    if f is not None and not str(v).lstrip("-").isdigit():
        return f"{f:.4g}"
    return str(v).replace("|", "/")


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def rule_sentence(sweep: Sweep) -> str:
    rule = sweep.rule
    other = "best_epoch" if rule.select == "last_epoch" else "last_epoch"
    return (f"Trials are ranked by `{rule.metric}` at {SELECT_TEXT.get(rule.select, rule.select)} "
            f"(`select: {rule.select}` in the search space; the other choice is `{other}`). Among trials with a "
            f"value, those that trained every epoch rank above those stopped early; the first is the one retrained.")


def header(sweep: Sweep) -> list[str]:
    m, spec = sweep.manifest, sweep.spec
    counts = {s: sum(t["status"] == s for t in sweep.trials) for s in ("completed", "stopped_early", "errored")}
    lines = [f"# Sweep `{spec['name']}`", ""]
    if spec.get("description"):
        lines += [spec["description"], ""]
    lines += [f"Command: `{m.get('command', '?')}`  ",
              f"Code commit: `{m.get('commit', '?')}`; data: `{m.get('data', {}).get('path', '?')}` "
              f"(sha256 `{str(m.get('data', {}).get('fingerprint', '?'))[:16]}…`)  ",
              f"Metric: `{sweep.metric}` ({spec['mode']}imise){', in percent' if sweep.metric.endswith('_acc') else ''}"
              f"; {len(sweep.trials)} trials: {counts['completed']} completed, {counts['stopped_early']} stopped "
              f"early by ASHA, {counts['errored']} errored.", "", f"**Ranking rule.** {rule_sentence(sweep)}"]
    objectives = [o for o in spec.get("objectives") or [] if isinstance(o, dict)]
    if len(objectives) >= 2:
        lines += ["", "**Objectives:** " + ", ".join(f"`{o['metric']}` ({o['mode']})" for o in objectives)
                  + f". ASHA stops trials by the first; the sampler weighs them all; the retrain trains the best "
                  f"trial by `{spec.get('pick') or objectives[0]['metric']}` (`pick:`), always on the Pareto front."]
    if sweep.best:
        metric = sweep.best.get("metric") or sweep.rule.metric  # best.json says what its value is
        pct = "%" if metric.endswith("_acc") else ""
        lines += ["", f"**Best trial:** `{sweep.best['trial_id']}` with `{metric}` "
                      f"{fmt(metric, sweep.best.get('value'))}{pct}."]
    return lines + [""]


def leaderboard(sweep: Sweep, extra: list[str]) -> list[str]:
    """Every trial, best first by the ranking rule; `extra`: other metrics (their value by the same rule)."""
    from .study import value_at

    m = sweep.rule.metric  # what ranks: the pick objective; the first objective (the scheduler's) beside it
    extra = [e for e in ([sweep.metric] if sweep.metric != m else []) + extra if e != m]

    def at(t, which: str):
        column = f"{'best' if which == 'best_epoch' else 'final'}_{m}"
        return t[column] if column in t else value_at(sweep, t, m, rule=which)

    head = ["rank", "trial", "status", "epochs", *sweep.params, f"{unit(m)} last epoch",
            f"{unit(m)} best epoch", *[unit(e) for e in extra], "time (s)"]
    rows = []
    for i, t in enumerate(sweep.ranked(), 1):
        rows.append([str(i), f"`{t['trial_id']}`", t["status"], str(t.get("epochs", "")),
                     *[cell(t.get(p, "")) or "–" for p in sweep.params],
                     fmt(m, at(t, "last_epoch")), fmt(m, at(t, "best_epoch")),
                     *[fmt(e, value_at(sweep, t, e)) for e in extra], cell(t.get("time_s", ""))])
    note = "A dash: the parameter was not active in that trial (conditional)." if any(
        t.get(p, "") == "" for t in sweep.trials for p in sweep.params) else ""
    return ["## Leaderboard", "", table(head, rows), "", *([note, ""] if note else [])]


def failures(sweep: Sweep) -> list[str]:
    errored = [t for t in sweep.trials if t["status"] == "errored"]
    if not errored:
        return []
    return ["## Failed trials", "", *[f"- `{t['trial_id']}`: {t.get('error', '')}" for t in errored], ""]


def final(sweep: Sweep) -> list[str]:
    lines = ["## Best configuration and final model", ""]
    if sweep.best:
        lines += [f"Best trial `{sweep.best['trial_id']}`; retrain it alone with "
                  f"`{sweep.best.get('retrain_command', '')}`", "", "```json",
                  json.dumps(sweep.best.get("config", {}), indent=1), "```", ""]
    else:
        lines += ["No trial finished with a finite metric: no best configuration, nothing to retrain.", ""]
    if not sweep.final:
        return lines + ["No final model yet (retrain skipped or not finished).", ""]
    f = sweep.final
    lines += [f"Clean test accuracy: **{fmt('test_acc', f.get('test_acc'))}%** (seeds {f.get('seeds')})."]
    if f.get("submission_note"):
        lines += ["", f["submission_note"]]
    return lines + [""] + robustness(sweep)


def robustness(sweep: Sweep) -> list[str]:
    """The final model's accuracy per corruption and severity, for each labelled corrupted set measured."""
    from robustness.measure import format_table

    lines = []
    for kind, r in sweep.robustness.items():
        title = ROBUSTNESS_TITLES.get(kind, f"the corrupted set `{kind}`")
        lines += [f"### Robustness on {title}", "",
                  f"Corrupted accuracy **{fmt('_acc', r.get('ood_acc'))}%**"
                  + (f" vs clean {fmt('_acc', r['clean_acc'])}%" if r.get("clean_acc") else "") + "."]
        if r.get("tuned_on") and r.get("tuned_acc") is not None:
            lines += [f"Tuned on {', '.join(r['tuned_on'])}: {fmt('_acc', r['tuned_acc'])}%; the held-out "
                      f"corruptions: {fmt('_acc', r.get('held_out_acc'))}%."]
        lines += ["", "Accuracy (%) per corruption and severity:", "", format_table(r), ""]
        if os.path.exists(os.path.join(sweep.folder, "robustness", kind, "heatmap.png")):
            lines += [f"![heatmap of {kind}](robustness/{kind}/heatmap.png)", ""]
    return lines
