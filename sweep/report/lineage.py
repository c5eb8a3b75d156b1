"""PBT's part of the report: every exploit, the winner's schedule (the hyperparameters its weights were trained
under, epoch by epoch, across the trials it descends from) and the population's lineage."""
from __future__ import annotations

import os

from .. import lineage
from .folder import Sweep
from .plots import label, plt, save, scale
from .sections import cell, table


def lineage_section(sweep: Sweep) -> list[str]:
    found = lineage.exploits(sweep.history)
    lines = ["### Exploits", ""]
    if not found:
        lines += ["No trial copied another's weights (the population never reached a perturbation with a trial in "
                  "its bottom quantile).", ""]
    else:
        names = sorted({k for e in found for k in e["values"]})
        lines += [f"{len(found)} exploits: a trial in the bottom quantile took the checkpoint of one in the top and "
                  f"trained on under mutated values.", "",
                  table(["epoch", "trial", "copied", "at its epoch", *[f"`{n}`" for n in names]],
                        [[str(e["epoch"]), f"`{e['trial']}`", f"`{e['donor']}`", str(e["at"]),
                          *[cell(e["values"].get(n, "")) for n in names]] for e in found]), ""]
    plots = os.path.join(sweep.folder, "plots")
    if sweep.best:
        path = winner_plot(sweep, sweep.best["trial_id"], os.path.join(plots, "pbt_schedule.png"))
        if path:
            lines += [f"The winner's schedule: the values trial `{sweep.best['trial_id']}`'s weights were trained "
                      f"under at each epoch, through the trials it descends from (what `retrain: {{from: "
                      f"schedule}}` replays).", "", f"![winner's schedule]({os.path.relpath(path, sweep.folder)})", ""]
    path = lineage_plot(sweep, os.path.join(plots, "pbt_lineage.png"))
    if path:
        lines += [f"The population: each trial's `{sweep.metric}` by epoch; a dashed line where a trial took another's "
                  f"weights.", "", f"![population lineage]({os.path.relpath(path, sweep.folder)})", ""]
    return lines


def winner_plot(sweep: Sweep, trial_id: str, path: str) -> str | None:
    steps = lineage.schedule(sweep.history, trial_id)
    names = sorted({k for _, v, _ in steps for k, x in v.items() if isinstance(x, (int, float))})
    if not steps or not names:
        return None
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.9 * len(names) + 0.6), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        xs = [e for e, v, _ in steps if name in v]
        ax.step(xs, [float(v[name]) for _, v, _ in steps if name in v], where="post", color="tab:blue")
        for e, _, tid in steps:  # the epochs its weights were trained in another trial
            if tid != trial_id:
                ax.axvline(e, color="0.85", lw=0.6, zorder=0)
        ax.set_ylabel(name, fontsize=9)
        if sweep.spec.get("params", {}).get(name, {}).get("type") in ("loguniform", "logint"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch (grey: epochs trained by a trial it descends from)")
    return save(fig, path)


def lineage_plot(sweep: Sweep, path: str) -> str | None:
    metric, curves = sweep.metric, sweep.curves(sweep.metric)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = plt.get_cmap("tab20").colors
    for i, (tid, pts) in enumerate(sorted(curves.items())):
        ax.plot([e for e, _ in pts], [v * scale(metric) for _, v in pts], "-", marker=".", lw=1.2,
                color=colours[i % len(colours)], label=tid)
    for e in lineage.exploits(sweep.history):
        donor = dict(curves.get(e["donor"], []))
        mine = dict(curves.get(e["trial"], []))
        if e["at"] in donor and e["epoch"] in mine:
            ax.plot([e["at"], e["epoch"]], [donor[e["at"]] * scale(metric), mine[e["epoch"]] * scale(metric)],
                    "--", color="0.4", lw=0.9)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="trial", title_fontsize=7)
    return save(fig, path)
