"""report.md + report.html (+ report.pdf) + optuna.journal, built only from a sweep's result files.

sweep.json, trials.csv, history.csv, best.json, final/metrics.json and robustness/*/robustness.json are all
it reads, so a report can be rebuilt at any time: `python -m sweep.report results/<name>`.
"""
from __future__ import annotations

import os

from trainables import atomic

from ..console import say
from . import axes, html, parallel, pdf, plots, quiet, scheduler, sections, slices, views
from . import folder as results_folder
from .importance import Importance
from .journal import JOURNAL, record_trials

__all__ = ["write_report", "record_trials", "plot_curves", "plot_params"]


def write_report(folder: str) -> str:
    """Write report.md, report.html, report.pdf (with a headless Chromium), plots/*.png and optuna.journal in
    `folder`; returns report.md's text. What libraries warn meanwhile goes to logs/report.log, not the console."""
    with quiet.to_log(folder):
        text, why_no_pdf = _write(folder)
    if why_no_pdf:
        say(why_no_pdf.replace("**", "").replace("`", ""))
    return text


def _write(folder: str) -> tuple[str, str]:
    """The report's files; returns report.md's text and, when there is no report.pdf, the line saying why."""
    sweep = results_folder.load(folder)
    plot_dir = os.path.join(folder, "plots")
    extra = [m for m in ("val_acc", "ood_val_acc") if m != sweep.metric and sweep.has_metric(m)]
    found = pdf.browser()
    pdf_line = pdf.planned(folder, found)
    lines = sections.header(sweep) + [pdf_line, ""] + sections.leaderboard(sweep, extra)
    curves = plots.curves(sweep, [sweep.metric, *extra], os.path.join(plot_dir, "curves.png"))
    lines += ["## Learning curves", "", f"![learning curves]({os.path.relpath(curves, folder)})", ""]
    lines += scheduler.section(sweep)
    imp_lines, imp = views.importance(sweep, plot_dir)
    shown = axes.shown(sweep, imp)
    lines += imp_lines + views.focus(sweep, imp, plot_dir) + parallel.section(sweep, shown, plot_dir)
    lines += slices.section(sweep, shown, plot_dir) + views.pareto(sweep, plot_dir)
    lines += sections.failures(sweep) + sections.final(sweep)
    record_trials(folder)
    lines += ["## The Optuna study", "", f"Every trial is recorded in `{JOURNAL}`; browse it with "
              f"`optuna-dashboard {os.path.join(folder, JOURNAL)}` (`pip install -e '.[dashboard]'`).", ""]
    text = "\n".join(lines) + "\n"
    title = f"Sweep {sweep.spec.get('name', '')}"
    _publish(folder, text, title)
    why = pdf.write_pdf(found, folder) if found else ""
    if found and not why:
        return text, ""
    pdf.drop(folder)  # an earlier build's PDF would not be this report
    if not why:
        return text, pdf_line
    line = pdf.failed(folder, why)  # the report says so instead of promising a PDF that is not there
    text = text.replace(pdf_line, line)
    _publish(folder, text, title)
    return text, line


def _publish(folder: str, text: str, title: str) -> None:
    atomic.write_text(os.path.join(folder, "report.md"), text)
    html.write_html(text, folder, title)


def plot_curves(history: list[dict], trials: list[dict], metric: str, path: str) -> str:
    """Learning curves of `metric` from history.csv / trials.csv rows (one line per trial)."""
    sweep = results_folder.Sweep(os.path.dirname(path), {"spec": {"metric": metric}}, trials, history)
    return plots.curves(sweep, [metric], path)


def plot_params(trials: list[dict], params: list[str], metric: str, path: str) -> str:
    """`metric` (by the last epoch) against each of `params`, from trials.csv rows: the report's slices."""
    rows = [{"trial_id": str(i), **t} for i, t in enumerate(trials)]
    sweep = results_folder.Sweep(os.path.dirname(path), {"spec": {"metric": metric, "mode": "max"},
                                                         "param_names": params}, rows, [])
    return slices.draw(sweep, axes.shown(sweep, Importance(), every=True), path)
