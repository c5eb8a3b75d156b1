"""The parallel coordinates and the slices read at a page's width: checked on the drawn text, not eyeballed.

A sweep shaped like part 1 (report_util's wide16: 16 parameters, log-scaled, int, float, categorical strings and
booleans, conditional ones, one with a single value) is reported; each figure is drawn as the report draws it
and every piece of text matplotlib puts on it (tick labels, axis names) is measured after drawing: no two
overlap, and the PNG fits a page (at most MAX_PX wide at the report's DPI).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import re
import struct

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from report_util import build, make

from sweep import report
from sweep.report import axes, parallel, slices
from sweep.report.folder import load
from sweep.report.importance import measure

MAX_PX = 1600  # a page's width: 1,600 px is 8 in at 200 dpi, the most a printed page shows at full detail


def section(text: str, title_part: str) -> str:
    block = next(b for b in text.split("\n## ")[1:] if title_part in b.splitlines()[0])
    return block.split("\n## ")[0]


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    folder = make("wide16", tmp_path_factory.mktemp("wide"))
    text = report.write_report(folder)
    sweep = load(folder)
    return {"folder": folder, "text": text, "sweep": sweep, "shown": axes.shown(sweep, measure(sweep))}


def drawn_text(fig, monkeypatch) -> list[tuple[str, object]]:
    """(text, window extent in pixels) of every non-empty text matplotlib draws on `fig`."""
    seen = []
    real = Text.draw

    def draw(self, renderer):
        real(self, renderer)
        if self.get_visible() and self.get_text().strip():
            seen.append((self.get_text(), self.get_window_extent(renderer)))

    FigureCanvasAgg(fig)  # saving closed the figure, which took its canvas: draw as savefig did, at its DPI
    with monkeypatch.context() as m:
        m.setattr(Text, "draw", draw)
        fig.canvas.draw()
    return seen


def overlaps(texts) -> list[tuple[str, str]]:
    return [(a, b) for (a, ea), (b, eb) in itertools.combinations(texts, 2)
            if ea.x0 < eb.x1 - 1 and eb.x0 < ea.x1 - 1 and ea.y0 < eb.y1 - 1 and eb.y0 < ea.y1 - 1]  # 1 px: touching


def png_width(path: str) -> int:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", head[16:20])[0]  # IHDR: width, then height


def render(monkeypatch, module, *args) -> tuple[object, str]:
    """Draw with `module.draw(*args)` as the report does; returns the figure and the PNG it saved."""
    kept = {}
    real = module.save

    def save(fig, path, **kw):
        kept["fig"] = fig
        return real(fig, path, **kw)

    monkeypatch.setattr(module, "save", save)
    return kept, module.draw(*args)


def _categorical_first(shown: axes.Shown) -> axes.Shown:
    """The same trials with the choices and the conditional parameters first: what a sweep whose importance
    ranks them high draws (n/a ticks, shortened category labels)."""
    first = [a for a in shown.axes if a.kind == "choice" or a.has_na]
    return dataclasses.replace(shown, axes=first + [a for a in shown.axes if a not in first])


@pytest.mark.parametrize("case", ["parallel", "parallel, categorical and conditional first", "slices"])
def test_no_two_labels_overlap_and_the_figure_fits_a_page(wide, case, monkeypatch, tmp_path):
    shown = _categorical_first(wide["shown"]) if "first" in case else wide["shown"]
    path = str(tmp_path / "figure.png")
    if case.startswith("parallel"):
        kept, path = render(monkeypatch, parallel, wide["sweep"], shown, shown.axes[:parallel.TOP], path)
    else:
        kept, path = render(monkeypatch, slices, wide["sweep"], shown, path)
    texts = drawn_text(kept["fig"], monkeypatch)
    names = {a.name for a in shown.axes}
    assert len(texts) > 3 * len(names if case == "slices" else shown.axes[:parallel.TOP])  # ticks and names seen
    assert overlaps(texts) == []
    assert png_width(path) <= MAX_PX
    if "first" in case:
        assert any(t == axes.NA for t, _ in texts)  # a conditional parameter's unused trials: a category
        assert any(t.endswith("…") for t, _ in texts)  # trivialaugment and autoaugment, shortened


def test_the_figures_the_report_saved_fit_a_page(wide):
    for name in ("parallel_coordinates.png", "params.png"):
        assert png_width(os.path.join(wide["folder"], "plots", name)) <= MAX_PX


def test_single_valued_parameters_get_no_axis_and_the_rest_are_named(wide):
    shown, text = wide["shown"], wide["text"]
    assert "model" in shown.single and "model" not in [a.name for a in shown.axes]
    assert len(shown.axes) == 15  # every other parameter varied over 16 trials
    block = section(text, "Parallel coordinates")
    drawn = [a.name for a in shown.axes[:parallel.TOP]]
    named = re.findall(r"`(\w+)`", block.split("Not drawn, less important:")[1].split("(")[0])
    assert named == [a.name for a in shown.axes[parallel.TOP:]]  # the rest, named under the figure
    assert set(drawn) | set(named) == set(wide["sweep"].params) - {"model"}
    assert "`model` = simple_cnn" in block
    slices_block = section(text, "against each parameter")
    assert "No panel for a parameter with one value: `model`" in slices_block


def test_axes_follow_importance_and_each_parameters_scale(wide):
    shown, imp = wide["shown"], measure(wide["sweep"])
    ranked = [p for p in imp.ranking if p in {a.name for a in shown.axes}]
    assert [a.name for a in shown.axes][:len(ranked)] == ranked  # most important first
    kinds = {a.name: a.kind for a in shown.axes}
    assert kinds["lr"] == kinds["batch_size"] == "log"  # loguniform, logint
    assert kinds["scheduler"] == kinds["augmix"] == kinds["augmix_jsd"] == "choice"
    assert kinds["weight_decay"] == kinds["step_size"] == "linear"
    lr = next(a for a in shown.axes if a.name == "lr")
    ticks = [(y, label) for y, label in lr.ticks()]
    assert [label for _, label in ticks] == ["0.0001", "0.001", "0.01", "0.1"]
    gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) - min(gaps) < 1e-9  # a decade is a decade: log spacing
    step = next(a for a in shown.axes if a.name == "step_size")
    assert step.has_na and step.ticks()[0] == (0.0, axes.NA) and min(y for y, _ in step.ticks()[1:]) > 0.1


def test_slices_are_a_grid_of_the_varied_parameters_on_their_own_scales(wide, monkeypatch, tmp_path):
    kept, _ = render(monkeypatch, slices, wide["sweep"], wide["shown"], str(tmp_path / "s.png"))
    panels = [ax for ax in kept["fig"].axes if ax.get_xlabel()]
    labels = [ax.get_xlabel().split()[0] for ax in panels]
    assert labels == [a.name for a in wide["shown"].axes]  # most important first, `model` left out
    rows = {round(ax.get_position().y0, 3) for ax in panels}
    assert len(rows) == -(-len(panels) // slices.COLS)  # 4 a row, as many rows as needed
    scale = {ax.get_xlabel().split()[0]: ax.get_xscale() for ax in panels}
    assert scale["lr"] == scale["batch_size"] == "log" and scale["weight_decay"] == "linear"
    assert "(5 of 16 trials)" in next(ax.get_xlabel() for ax in panels if ax.get_xlabel().startswith("step_size"))


def test_without_importance_the_search_spaces_order_and_why(tmp_path):
    folder = build(tmp_path / "few", name="few", n=5, epochs=2, metric="ood_val_acc", ood=True, wide=True)
    text = report.write_report(folder)
    sweep = load(folder)
    shown = axes.shown(sweep, measure(sweep))
    assert [a.name for a in shown.axes] == [p for p in sweep.params if p in {a.name for a in shown.axes}]
    assert "in the search space's order (importance not measured: too few trials" in section(text, "Parallel")


def test_a_figure_that_cannot_be_drawn_is_a_sentence(wide, tmp_path):
    for n, errored in ((3, 2), (2, 2)):  # one trial with a value, none
        folder = build(tmp_path / str(n), name=f"e{n}", n=n, epochs=2, errored=errored)
        text = report.write_report(folder)
        assert f"Not drawn: {n - errored} trial(s) with a value" in section(text, "Parallel coordinates")
        assert f"Not drawn: {n - errored} trial(s) with a value" in section(text, "against each parameter")
        assert not os.path.exists(os.path.join(folder, "plots", "params.png"))
    lone = dataclasses.replace(wide["shown"], axes=wide["shown"].axes[:1])  # one parameter varied
    assert "Not drawn: only `" in "\n".join(parallel.section(wide["sweep"], lone, str(tmp_path)))
    flat = dataclasses.replace(wide["shown"], axes=[])  # none did
    assert "Not drawn: every parameter took one value" in "\n".join(slices.section(wide["sweep"], flat, str(tmp_path)))


def test_the_check_catches_what_the_issue_saw(wide, monkeypatch):
    """Optuna's own plots of the same trials (what the report drew before): labels run into each other."""
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    from sweep.report.study import valued_study

    study, _ = valued_study(wide["sweep"])
    with plt.rc_context(), pytest.warns(Warning):  # rc_context: Optuna's ggplot style stays here
        fig = vis.plot_parallel_coordinate(study).figure  # warns: Optuna marks its matplotlib plots experimental
        assert overlaps(drawn_text(fig, monkeypatch))
    plt.close(fig)
