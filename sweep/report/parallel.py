"""Parallel coordinates of the most important parameters, drawn here rather than by Optuna.

Optuna's plot puts every parameter side by side in alphabetical order, a single-valued one too, spaces a
choice's values by their labels' sort order and prints them full length: with part 1's 15 parameters its tick
labels run into each other. Here the first axis is the ranking metric (also the lines' colour), then the TOP
most important parameters that varied, each on its own scale (axes.py), with short labels, and the figure
grows with the number of axes.
"""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
from matplotlib import patheffects, transforms
from matplotlib.colors import LinearSegmentedColormap

from .axes import Axis, Shown, key
from .folder import Sweep
from .plots import image, save
from .sections import unit

TOP = 6  # axes after the metric's: more and the lines of a 30-trial sweep are a tangle
NAME_PT, TICK_PT = 9, 8
CHAR_IN = 0.6 * NAME_PT / 72  # DejaVu Sans averages about 0.6 em per character
MARGIN_IN = (0.7, 0.9)  # left of the metric's axis (its numbers), right of the last axis (its labels)


def section(sweep: Sweep, shown: Shown, plots: str) -> list[str]:
    lines = ["## Parallel coordinates", ""]
    if len(shown.ids) < 2:
        return lines + [f"Not drawn: {len(shown.ids)} trial(s) with a value; lines need at least two.", ""]
    if len(shown.axes) < 2:
        return lines + [f"Not drawn: {_varied(shown)} varied; the slices below show it.", ""]
    drawn, rest = shown.axes[:TOP], shown.axes[TOP:]
    path = draw(sweep, shown, drawn, os.path.join(plots, "parallel_coordinates.png"))
    best = _best(sweep, shown)
    lines += [f"Every trial with a value ({len(shown.ids)}), one line each, coloured by `{sweep.metric}` by the "
              f"ranking rule (purple: worst, yellow-green: best; dashed: stopped by ASHA, valued where it stopped; "
              f"outlined: the best trial `{best}`). The first axis is the metric, then the {len(drawn)} parameters "
              f"that varied, {shown.how}.", "", image(sweep.folder, path, "parallel coordinates"), ""]
    notes = []
    if rest:
        notes.append(f"Not drawn, less important: {', '.join(f'`{a.name}`' for a in rest)} (each in the slices "
                     f"below).")
    if shown.single:
        notes.append("One value in every trial, so no axis: "
                     + ", ".join(f"`{k}` = {v}" for k, v in shown.single.items()) + ".")
    logs = [f"`{a.name}`" for a in drawn if a.kind == "log"]
    if logs:
        notes.append(f"On a log scale, as sampled: {', '.join(logs)}.")
    if any(a.has_na for a in drawn):
        notes.append("`n/a`: a conditional parameter the trial did not use.")
    if key(drawn):
        notes.append(key(drawn))
    return lines + ([" ".join(notes), ""] if notes else [])


def _varied(shown: Shown) -> str:
    return f"only `{shown.axes[0].name}`" if shown.axes else "no parameter"


def _best(sweep: Sweep, shown: Shown) -> str:
    return next(t["trial_id"] for t in sweep.ranked() if t["trial_id"] in shown.ids)


def _wrap(name: str, chars: int) -> str:
    """A name too long for the room between two axes, on two lines at the underscore nearest its middle."""
    cuts = [i for i, c in enumerate(name) if c == "_"]
    if len(name) <= chars or not cuts:
        return name
    i = min(cuts, key=lambda i: abs(i - len(name) / 2))
    return f"{name[:i + 1]}\n{name[i + 1:]}"


def draw(sweep: Sweep, shown: Shown, drawn: list[Axis], path: str) -> str:
    values = shown.values
    metric = Axis(unit(sweep.metric), "linear", min(values), max(values))
    columns = [metric, *drawn]
    widest = max(len(a.name) for a in columns)
    gap = min(2.0, max(1.25, CHAR_IN * widest + 0.2))  # inches between two axes: room for the longest name
    width = MARGIN_IN[0] + gap * (len(columns) - 1) + MARGIN_IN[1]
    fig = plt.figure(figsize=(width, 4.2))
    ax = fig.add_axes((MARGIN_IN[0] / width, 0.04, gap * (len(columns) - 1) / width, 0.8))
    ax.set_xlim(0, len(columns) - 1)
    ax.set_ylim(-0.03, 1.03)
    ax.axis("off")
    # viridis without its last tenth: pure yellow on white is hard to see, and the best line must stand out
    viridis = plt.get_cmap("viridis")
    cmap = LinearSegmentedColormap.from_list("viridis90", [viridis(0.9 * k / 8) for k in range(9)])
    if sweep.mode == "min":
        cmap = cmap.reversed()
    status = {t["trial_id"]: t["status"] for t in sweep.trials}
    best = _best(sweep, shown)
    order = sorted(range(len(values)), key=lambda i: (shown.ids[i] == best, values[i] * (1 if sweep.mode == "max"
                                                                                           else -1)))
    for i in order:  # the best drawn last, on top
        ys = [metric.position(values[i])] + [a.position(shown.params[i].get(a.name)) for a in drawn]
        top = shown.ids[i] == best
        ax.plot(range(len(columns)), ys, color=cmap(metric.position(values[i])), alpha=1.0 if top else 0.75,
                lw=3.0 if top else 1.3, ls="--" if status.get(shown.ids[i]) == "stopped_early" else "-",
                zorder=3 if top else 2,
                path_effects=[patheffects.withStroke(linewidth=5, foreground="black")] if top else None)
    for x, column in enumerate(columns):
        ax.axvline(x, color="0.25", lw=1.0, zorder=1)
        # The metric's numbers sit left of its axis, as a y axis's do; a parameter's right of its axis.
        shift = transforms.offset_copy(ax.transData, fig=fig, x=-4 if x == 0 else 4, units="points")
        for y, text in column.ticks():
            ax.plot([x], [y], marker="_", color="0.25", ms=6, zorder=1)
            ax.text(x, y, text, transform=shift, ha="right" if x == 0 else "left", va="center", fontsize=TICK_PT,
                    zorder=4, bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))
        above = transforms.offset_copy(transforms.blended_transform_factory(ax.transData, ax.transAxes),
                                       fig=fig, y=6, units="points")
        ax.text(x, 1.0, _wrap(column.name, int((gap - 0.1) / CHAR_IN)), transform=above, ha="center",
                va="bottom", fontsize=NAME_PT, fontweight="bold" if x == 0 else "normal")
    return save(fig, path, tight=False)
