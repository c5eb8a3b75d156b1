"""The report's pictures: how each is saved, Optuna's matplotlib plots run (importance, contour, Pareto front),
and the learning curves, drawn here because Optuna's intermediate-values plot has no legend per trial and no
marks for ASHA's stops. The parallel coordinates and the slices have files of their own."""
from __future__ import annotations

import os
import warnings

import matplotlib

matplotlib.use("Agg")  # files only, never a window (headless machines, Ray workers)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

from trainables import atomic  # noqa: E402

from .folder import Sweep  # noqa: E402

STYLE = {"completed": "-", "stopped_early": "--", "errored": ":"}


def scale(metric: str) -> float:
    """Accuracies are shown in percent everywhere in the report; losses as they are."""
    return 100.0 if metric.endswith("_acc") else 1.0


def label(metric: str) -> str:
    return f"{metric} (%)" if metric.endswith("_acc") else metric


def image(folder: str, path: str, alt: str) -> str:
    """The markdown of a picture, by its path relative to the report."""
    return f"![{alt}]({os.path.relpath(path, folder).replace(os.sep, '/')})"


def save(fig, path: str, dpi: int = 100, tight: bool = True) -> str:
    if tight:
        fig.tight_layout()
    with atomic.atomic_path(path) as tmp:  # a kill mid-write leaves the previous picture, not half a PNG
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def curves(sweep: Sweep, metrics: list[str], path: str) -> str:
    """One panel per metric, one line per trial (legend: id and status), a cross where ASHA stopped it."""
    status = {t["trial_id"]: t["status"] for t in sweep.trials}
    cols = min(2, len(metrics))  # two panels a row: a page stays readable at its width
    rows = -(-len(metrics) // cols)
    room = 0.0 if len(metrics) < rows * cols else 2.6  # the legend goes in an empty panel, else to the right
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols + room, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    colours = plt.get_cmap("tab20").colors
    colour_of = {tid: colours[i % len(colours)] for i, tid in enumerate(sorted(status))}  # one per trial, all panels
    for ax, metric in zip(axes.flat, metrics):
        for tid, pts in sorted(sweep.curves(metric).items()):
            xs = [e for e, _ in pts]
            ys = [v * scale(metric) for _, v in pts]
            st = status.get(tid, "")
            colour = colour_of.get(tid, "black")
            ax.plot(xs, ys, STYLE.get(st, "-"), color=colour, marker=".", lw=1.3, label=f"{tid} ({st})")
            if st == "stopped_early":
                ax.plot(xs[-1], ys[-1], "x", color=colour, ms=8, mew=2)
        last = max((e for pts in sweep.curves(metric).values() for e, _ in pts), default=1)
        if last <= 20:  # epochs are whole numbers: every one labelled (one epoch alone would get 0.96, 0.98, ...)
            ax.set_xticks(range(1, last + 1))
            ax.set_xlim(0.8, last + 0.2)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label(metric))
        ax.grid(alpha=0.3)
    entries = {}
    for ax in axes.flat[:len(metrics)]:  # every trial once, whichever panels it has values in
        entries.update({lab: h for h, lab in zip(*ax.get_legend_handles_labels())})
    spare = axes.flat[len(metrics)] if len(metrics) < axes.size else None  # an empty panel holds the legend
    where = spare or axes[0][cols - 1]
    where.legend(list(entries.values()), list(entries), fontsize=7, loc="upper left", ncol=1 + len(entries) // 24,
                 bbox_to_anchor=(0.0, 1.0) if spare else (1.02, 1.0),
                 title="trial (solid: completed, dashed + x: stopped by ASHA, dotted: errored)", title_fontsize=7)
    return save(fig, path)


def optuna_figure(draw, path: str, size: tuple[float, float] | None = None) -> str:
    """Run one of optuna.visualization.matplotlib's plots and save its figure."""
    import optuna

    # rc_context: Optuna's plots switch matplotlib to its ggplot style for the whole process; keep that here.
    with warnings.catch_warnings(), plt.rc_context():
        # Every matplotlib plot of Optuna is marked experimental; a parameter that took one value makes
        # matplotlib widen that axis, and says so. Neither is news to the reader.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        axes = draw()
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        fig = first.figure
        if size:
            fig.set_size_inches(*size)
        for ax in fig.axes:  # a log axis labels every minor tick too (2x10^-3, 3x10^-3, ...): unreadable
            if ax.get_xscale() == "log":
                ax.xaxis.set_minor_formatter(NullFormatter())
            if ax.get_yscale() == "log":
                ax.yaxis.set_minor_formatter(NullFormatter())
        return save(fig, path, tight=False)  # Optuna placed its colour bars itself: tight_layout would move them
