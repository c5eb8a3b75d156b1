"""The metric against each parameter that varied: a grid of slices, most important first.

Optuna's slice plot puts every parameter in one row (15 panels, 3,500 px wide for part 1) and a parameter with
one value gets a panel too. Here: COLS panels a row, as many rows as needed, each on the parameter's own
scale (axes.py); a conditional parameter's panel shows the trials that used it.
"""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullLocator

from .axes import Axis, Shown, key
from .folder import Sweep
from .plots import image, save
from .sections import unit

COLS = 4  # 4 panels of 3 in: 1,300 px at the report's 100 dpi, a page's width
PANEL_IN = (3.0, 2.5)
JITTER = 0.12  # of the gap between two categories: trials with the same choice do not hide each other


def section(sweep: Sweep, shown: Shown, plots: str) -> list[str]:
    lines = [f"## `{sweep.metric}` against each parameter that varied", ""]
    if len(shown.ids) < 2:
        return lines + [f"Not drawn: {len(shown.ids)} trial(s) with a value; a slice needs at least two.", ""]
    if not shown.axes:
        return lines + ["Not drawn: every parameter took one value in every trial with a value.", ""]
    path = draw(sweep, shown, os.path.join(plots, "params.png"))
    notes = [f"{len(shown.axes)} parameters, {shown.how}. Each dot a trial (its value by the ranking rule), "
             f"coloured by trial number (the order trials began); a conditional parameter's panel shows the trials "
             f"that used it (how many, in its label)."]
    if shown.single:
        notes.append(f"No panel for a parameter with one value: {', '.join(f'`{k}`' for k in shown.single)}.")
    if key(shown.axes):
        notes.append(key(shown.axes))
    return lines + [" ".join(notes), "", image(sweep.folder, path, "slice plot"), ""]


def draw(sweep: Sweep, shown: Shown, path: str) -> str:
    n = len(shown.axes)
    cols = min(COLS, n)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, sharey=True, squeeze=False, layout="constrained",
                             figsize=(PANEL_IN[0] * cols + 0.8, PANEL_IN[1] * rows))
    order = np.arange(len(shown.ids))
    rng = np.random.default_rng(0)  # the same jitter on every rebuild
    dots = None
    for ax, a in zip(grid.flat, shown.axes):
        used = [i for i, p in enumerate(shown.params) if a.name in p]
        xs = [_x(a, shown.params[i][a.name]) for i in used]
        if a.kind == "choice":
            xs = [x + rng.uniform(-JITTER, JITTER) for x in xs]
        dots = ax.scatter(xs, [shown.values[i] for i in used], c=order[used], cmap="viridis", s=22,
                          vmin=0, vmax=max(1, len(order) - 1), edgecolors="0.2", linewidths=0.4)
        _scale(ax, a)
        ax.set_xlabel(a.name + (f" ({len(used)} of {len(order)} trials)" if a.has_na else ""), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in grid[:, 0]:
        ax.set_ylabel(unit(sweep.metric), fontsize=9)
    for ax in grid.flat[n:]:
        ax.axis("off")
    bar = fig.colorbar(dots, ax=grid, fraction=0.03, pad=0.01, aspect=30 * rows)
    bar.set_label("trial number (order begun)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return save(fig, path, tight=False)  # constrained layout placed the panels and the colour bar


def _x(a: Axis, value) -> float:
    return a.categories.index(value) if a.kind == "choice" else value


def _scale(ax, a: Axis) -> None:
    """The x axis on the parameter's own scale: its categories, or its search range (log where sampled so)."""
    if a.kind == "choice":
        labels = a.labels[1:] if a.has_na else a.labels  # n/a trials have no dot here
        ax.set_xticks(range(len(labels)), labels, rotation=0 if len(labels) <= 4 else 30,
                      ha="center" if len(labels) <= 4 else "right")
        ax.set_xlim(-0.5, len(labels) - 0.5)
        return
    if a.kind == "log":
        ax.set_xscale("log")
    ax.set_xticks(a.tick_values(), [f"{v:g}" for v in a.tick_values()])
    ax.xaxis.set_minor_locator(NullLocator())  # a log axis would label 2x10^-3, 3x10^-3, ... too
    pad = (a.high / a.low) ** 0.04 if a.kind == "log" else 0.04 * (a.high - a.low)
    ax.set_xlim(*((a.low / pad, a.high * pad) if a.kind == "log" else (a.low - pad, a.high + pad)))
